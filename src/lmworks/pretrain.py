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
fine-tuning: docs/research-log/benchmarks-history.md).

Training runs on the one engine (:class:`~lmworks.training.engine.Trainer`) with
:class:`MaskedLMObjective`: the same AdamW parameter groups, warm-up and decay,
clipping and progress bar as fine-tuning.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .atomic import atomic_dir
from .errors import ConfigError, DataError, check_known_fields
from .model_dir import check_output_dir
from .models import resolve_encoder
from .runtime import quiet_transformers, seed_everything, torch_threads
from .tokens import pad_batch
from .training.batching import length_grouped_batches
from .training.config import TrainConfig
from .training.objectives import Objective

LOGGER = logging.getLogger("lmworks")
INFO_FILE = "pretraining.json"


@dataclass
class PretrainConfig:
    """Settings of a pretraining run.

    Attributes
    ----------
    model:
        Encoder to continue (a name from ``lmworks models`` or a checkpoint directory).
    epochs, batch_size, lr, warmup_ratio:
        As for fine-tuning; the learning rate is lower (the encoder is already trained).
    max_length:
        Texts are truncated to this many tokens.
    mlm_probability:
        Share of tokens (or words) chosen for the loss.
    whole_word_masking:
        Choose whole words: every piece of a chosen word is masked together, so the
        model cannot guess a piece from its neighbours in the same word.
    head_warmup:
        Share of the steps during which only the (new) MLM head learns.
    seed, num_threads:
        Seed of the run; torch threads (default: the usable CPUs).
    """

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

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (recorded in ``pretraining.json``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PretrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        check_known_fields(cls, data, "pretraining")
        return cls(**data)

    def engine_config(self) -> TrainConfig:
        """The engine's settings for this run: AdamW with weight decay 0.01, clipping at 1.0, no dev data."""
        return TrainConfig(model=self.model, epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                           max_length=self.max_length, warmup_ratio=self.warmup_ratio, head_lr_multiplier=1.0,
                           weight_decay=0.01, max_grad_norm=1.0, seed=self.seed, num_threads=self.num_threads,
                           patience=0, eval_fraction=0.0, blend="none")


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
    if not chosen.any():
        # Every batch must teach something: a batch of very short texts can draw no token at all.
        chosen[torch.nonzero(~special)[:1].unbind(-1)] = True
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    inputs = ids.clone()
    roll = torch.rand(ids.shape, generator=generator)
    inputs[chosen & (roll < 0.8)] = mask_id
    random_slots = chosen & (roll >= 0.8) & (roll < 0.9)
    inputs[random_slots] = torch.randint(vocab_size, (int(random_slots.sum()),), generator=generator)
    return inputs, labels


class MaskedLMObjective(Objective):
    """Masked-LM loss at the chosen positions of length-grouped batches; the encoder frozen during head warm-up."""

    def __init__(self, model: Any, tokenizer: Any, texts: Sequence[str], config: PretrainConfig) -> None:
        head = getattr(model, "cls", None) or getattr(model, "lm_head", None)  # BERT / MPNet, RoBERTa
        if head is None:
            raise ConfigError(f"{config.model}: unsupported architecture for masked-LM pretraining")
        self.head: nn.Module = head
        if tokenizer.mask_token_id is None:
            raise ConfigError(f"{config.model}: the tokenizer has no [MASK] token")
        encoded = tokenizer(list(texts), truncation=True, max_length=config.max_length, add_special_tokens=True)
        self.ids: list[list[int]] = encoded["input_ids"]
        self.word_ids = [encoded.word_ids(i) for i in range(len(self.ids))] if config.whole_word_masking else None
        self.tokenizer, self.config = tokenizer, config
        self.special_ids = torch.tensor(sorted(set(tokenizer.all_special_ids)))
        self.generator = torch.Generator().manual_seed(config.seed)

    def batches(self, epoch: int) -> list[list[int]]:  # noqa: D102
        return length_grouped_batches([len(x) for x in self.ids], self.config.batch_size, seed=self.config.seed + epoch)

    def _words(self, batch: list[int], shape: torch.Size) -> torch.Tensor | None:
        if self.word_ids is None:
            return None
        words = torch.full(shape, -1, dtype=torch.long)
        for row, i in enumerate(batch):
            words[row, : len(self.word_ids[i])] = torch.tensor([-1 if w is None else w for w in self.word_ids[i]])
        return words

    def loss(self, model: nn.Module, batch: list[int]) -> torch.Tensor:  # noqa: D102
        padded, attention = pad_batch([self.ids[i] for i in batch], self.tokenizer.pad_token_id)
        special = torch.isin(padded, self.special_ids) | (attention == 0)
        inputs, labels = mask_tokens(padded, special, self._words(batch, padded.shape),
                                     probability=self.config.mlm_probability, mask_id=self.tokenizer.mask_token_id,
                                     vocab_size=len(self.tokenizer), generator=self.generator)
        hidden = model.base_model(input_ids=inputs, attention_mask=attention).last_hidden_state  # type: ignore[operator]
        chosen = labels != -100
        logits = self.head(hidden[chosen])  # the vocabulary layer only where the loss is
        return torch.nn.functional.cross_entropy(logits, labels[chosen])

    def before_step(self, network: nn.Module, step: int, total_steps: int) -> None:
        """Freeze the encoder while the new head warms up."""
        frozen = step < self.config.head_warmup * total_steps
        encoder: Any = network.base_model
        for p in encoder.parameters():
            p.requires_grad_(not frozen)


def pretrain(texts: Sequence[str], output: str | Path, config: PretrainConfig | None = None, *,
             progress: bool = True) -> dict[str, Any]:
    """Continue MLM training on ``texts`` and write an encoder directory to ``output``."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from .training.engine import Trainer

    cfg = config or PretrainConfig()
    texts = [t for t in texts if t and t.strip()]
    if len(texts) < cfg.batch_size:
        raise DataError(f"pretraining needs at least {cfg.batch_size} non-empty texts, got {len(texts)}")
    check_output_dir(output, meta_file="config.json")
    encoder_dir = resolve_encoder(cfg.model)
    seed_everything(cfg.seed)
    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(encoder_dir, local_files_only=True)
        model: Any = AutoModelForMaskedLM.from_pretrained(encoder_dir, local_files_only=True)
    objective = MaskedLMObjective(model, tokenizer, texts, cfg)
    started = time.perf_counter()
    with torch_threads(cfg.num_threads):
        result = Trainer(model, cfg.engine_config(), objective, progress=progress, description="pretraining").train()
    losses = result.step_losses
    window = max(1, min(50, len(losses) // 4))  # mean loss over the first and the last quarter (<= 50 steps)
    info = {"steps": result.state.step, "texts": len(objective.ids), "seconds": round(time.perf_counter() - started, 1),
            "first_loss": round(_mean(losses[:window]), 4), "last_loss": round(_mean(losses[-window:]), 4),
            "config": cfg.to_dict(), "base_model": str(encoder_dir)}
    for p in model.parameters():
        p.requires_grad_(True)
    with atomic_dir(Path(output)) as tmp, quiet_transformers():
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")
