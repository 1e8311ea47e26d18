"""Domain-adaptive masked-LM pretraining: continue the encoder's training on the user's own text.

A bank's chat logs or a shop's reviews use words and phrasings the encoder saw
little of. Continuing masked-language-model training on that unlabelled text
(Gururangan et al. 2020, "Don't stop pretraining") lets a classifier trained later
on few labels start from a representation of *this* domain. The result is an
ordinary encoder directory: ``lmworks train --model DIR`` takes it.

Masking follows BERT: 15 % of the tokens (or of the words, with whole-word masking)
are chosen; of those 80 % become ``[MASK]``, 10 % a random token, 10 % stay. The
loss is computed at the chosen positions only, so the vocabulary-sized output
layer runs on a few tokens per text, which is most of the cost saved on a CPU.
The shipped MiniLM has no MLM head; a new one is initialised (tied to the word
embeddings) and saved with the encoder for further pretraining. While the new head
is still random its gradients would pull the encoder anywhere, so the encoder is
frozen for the first ``head_warmup`` share of the steps and only the head learns
(a first run without this, 1 epoch on Rotten Tomatoes, made the encoder worse for
fine-tuning: docs/benchmarks.md).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ._io import atomic_dir
from .errors import ConfigError, DataError

LOGGER = logging.getLogger("lmworks")


@dataclass
class PretrainConfig:
    """Settings of a pretraining run."""

    model: str = "minilm"
    epochs: float = 1.0
    batch_size: int = 32
    lr: float = 5e-5
    max_length: int = 128
    mlm_probability: float = 0.15
    whole_word_masking: bool = False
    warmup_ratio: float = 0.06
    head_warmup: float = 0.2
    seed: int = 42
    num_threads: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.head_warmup < 1:
            raise ConfigError(f"head_warmup must be in [0, 1), got {self.head_warmup}")
        if not 0 < self.mlm_probability < 1:
            raise ConfigError(f"mlm_probability must be in (0, 1), got {self.mlm_probability}")
        if self.epochs <= 0 or self.batch_size <= 0 or self.lr <= 0:
            raise ConfigError("epochs, batch_size and lr must be > 0")


def mask_tokens(ids: torch.Tensor, special: torch.Tensor, words: torch.Tensor | None, *, probability: float,
                mask_id: int, vocab_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking of a padded batch: returns (inputs, labels with -100 where no loss)."""
    if words is None:
        chosen = torch.rand(ids.shape, generator=generator) < probability
    else:
        # One draw per word; every sub-token of a chosen word is chosen.
        draws = torch.rand((ids.shape[0], int(words.max().item()) + 2), generator=generator) < probability
        chosen = torch.gather(draws, 1, words.clamp(min=0) + 1) & (words >= 0)
    chosen &= ~special
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    inputs = ids.clone()
    roll = torch.rand(ids.shape, generator=generator)
    inputs[chosen & (roll < 0.8)] = mask_id
    random_slots = chosen & (roll >= 0.8) & (roll < 0.9)
    inputs[random_slots] = torch.randint(vocab_size, (int(random_slots.sum()),), generator=generator)
    return inputs, labels


def pretrain(texts: Sequence[str], output: str | Path, config: PretrainConfig | None = None, *,
             progress: bool = True) -> dict[str, Any]:
    """Continue MLM training on ``texts`` and write an encoder directory to ``output``."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from .backends.transformer import _quiet_transformers
    from .model_dir import check_output_dir
    from .models import resolve_encoder
    from .training.batching import length_grouped_batches, pad_batch
    from .training.schedule import linear_warmup_decay
    from .training.trainer import seed_everything, torch_threads

    cfg = config or PretrainConfig()
    texts = [t for t in texts if t and t.strip()]
    if len(texts) < cfg.batch_size:
        raise DataError(f"pretraining needs at least {cfg.batch_size} non-empty texts, got {len(texts)}")
    check_output_dir(output, meta_file="config.json")
    encoder_dir = resolve_encoder(cfg.model)
    seed_everything(cfg.seed)
    with _quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(encoder_dir, local_files_only=True)
        model: Any = AutoModelForMaskedLM.from_pretrained(encoder_dir, local_files_only=True)
    head = getattr(model, "cls", None) or getattr(model, "lm_head", None)  # BERT / MPNet, RoBERTa
    if head is None:
        raise ConfigError(f"{encoder_dir}: unsupported architecture for masked-LM pretraining")
    if tokenizer.mask_token_id is None:
        raise ConfigError(f"{encoder_dir}: the tokenizer has no [MASK] token")
    encoded = tokenizer(list(texts), truncation=True, max_length=cfg.max_length, add_special_tokens=True)
    ids = encoded["input_ids"]
    word_ids = [encoded.word_ids(i) for i in range(len(ids))] if cfg.whole_word_masking else None
    batches_per_epoch = math.ceil(len(ids) / cfg.batch_size)
    total = max(1, math.ceil(cfg.epochs * batches_per_epoch))
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    warmup = int(cfg.warmup_ratio * total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: linear_warmup_decay(s, warmup_steps=warmup, total_steps=total))
    generator = torch.Generator().manual_seed(cfg.seed)
    special_ids = torch.tensor(sorted(set(tokenizer.all_special_ids)))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="step", desc="pretraining", dynamic_ncols=True)
    step, losses, started = 0, [], time.perf_counter()
    model.train()
    with torch_threads(cfg.num_threads):
        epoch = 0
        while step < total:
            for batch in length_grouped_batches([len(x) for x in ids], cfg.batch_size, seed=cfg.seed + epoch):
                padded, attention = pad_batch([ids[i] for i in batch], tokenizer.pad_token_id)
                words = None
                if word_ids is not None:
                    words = torch.full(padded.shape, -1, dtype=torch.long)
                    for row, i in enumerate(batch):
                        words[row, : len(word_ids[i])] = torch.tensor([-1 if w is None else w for w in word_ids[i]])
                special = torch.isin(padded, special_ids) | (attention == 0)
                inputs, labels = mask_tokens(padded, special, words, probability=cfg.mlm_probability,
                                             mask_id=tokenizer.mask_token_id, vocab_size=len(tokenizer),
                                             generator=generator)
                if not (labels != -100).any():
                    continue
                frozen = step < cfg.head_warmup * total
                for p in model.base_model.parameters():
                    p.requires_grad_(not frozen)
                hidden = model.base_model(input_ids=inputs, attention_mask=attention).last_hidden_state
                chosen = labels != -100
                logits = head(hidden[chosen])  # the vocabulary layer only where the loss is
                loss = torch.nn.functional.cross_entropy(logits, labels[chosen])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                losses.append(float(loss.detach()))
                step += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}")
                if step >= total:
                    break
            epoch += 1
    if bar is not None:
        bar.close()
    window = max(1, min(50, len(losses) // 4))  # mean loss over the first and the last quarter (<= 50 steps)
    info = {"steps": step, "texts": len(ids), "seconds": round(time.perf_counter() - started, 1),
            "first_loss": round(_mean(losses[:window]), 4), "last_loss": round(_mean(losses[-window:]), 4),
            "config": asdict(cfg), "base_model": str(encoder_dir)}
    with atomic_dir(Path(output)) as tmp, _quiet_transformers():
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "pretraining.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")
