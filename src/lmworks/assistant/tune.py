"""Contrastive adaptation of the encoder to a knowledge base.

Pairs that should be close — a question and its answer, and two phrasings that share
an answer — are pulled together while every other pair in the batch is pushed apart
(in-batch negatives; the multiple-negatives ranking loss of sentence-transformers).
Batches never hold two pairs of the same answer, which would be false negatives.
With held-out queries, the tuned encoder is kept only if it ranks them better (top-1,
then top-3) than the original: tuning on a small, repetitive base can overfit, and a
user asked for a better assistant, not a different one.
"""

from __future__ import annotations

import copy
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..training.batching import pad_batch, tokenize
from ..training.schedule import linear_warmup_decay
from ..training.trainer import seed_everything, torch_threads
from .assistant import Assistant

LOGGER = logging.getLogger("lmworks")


@dataclass
class TuneConfig:
    """Contrastive tuning settings (sentence-transformers' defaults where they exist)."""

    epochs: float = 1.0
    batch_size: int = 32
    lr: float = 2e-5
    scale: float = 20.0
    warmup: float = 0.1
    seed: int = 42
    max_pairs_per_answer: int = 20
    num_threads: int | None = None


def training_pairs(assistant: Assistant, max_per_answer: int, rng: random.Random) -> list[tuple[str, str, int]]:
    """``(anchor, positive, answer id)``: question→answer, and question→question of one answer."""
    groups: dict[int, list[int]] = {}
    for i, a in enumerate(assistant.answer_ids.tolist()):
        groups.setdefault(a, []).append(i)
    pairs = []
    for answer, members in groups.items():
        answer_text = assistant.entries[members[0]].answer
        local = [(assistant.entries[i].question, answer_text, answer) for i in members]
        for i in members:
            for j in members:
                if i != j:
                    local.append((assistant.entries[i].question, assistant.entries[j].question, answer))
        rng.shuffle(local)
        pairs.extend(local[:max_per_answer])
    return pairs


def _batches(pairs: list[tuple[str, str, int]], size: int, rng: random.Random) -> list[list[tuple[str, str, int]]]:
    """Shuffled batches without two pairs of the same answer."""
    rng.shuffle(pairs)
    batches: list[list[tuple[str, str, int]]] = []
    open_batches: list[tuple[list[tuple[str, str, int]], set[int]]] = []
    for pair in pairs:
        for batch, answers in open_batches:
            if pair[2] not in answers and len(batch) < size:
                batch.append(pair)
                answers.add(pair[2])
                break
        else:
            open_batches.append(([pair], {pair[2]}))
        full = [b for b in open_batches if len(b[0]) >= size]
        for b in full:
            batches.append(b[0])
            open_batches.remove(b)
    batches.extend(b for b, _ in open_batches if len(b) > 1)
    return batches


def tune(
    assistant: Assistant,
    config: TuneConfig | None = None,
    dev_queries: Sequence[tuple[str, str | None]] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Fine-tune ``assistant.encoder`` in place, rebuild the index; return a before/after report."""
    from tqdm.auto import tqdm

    config = config or TuneConfig()
    rng = random.Random(config.seed)
    seed_everything(config.seed)
    encoder = assistant.encoder
    before = assistant.evaluate(dev_queries) if dev_queries else None
    original = copy.deepcopy(encoder.model.state_dict()) if dev_queries else None
    pairs = training_pairs(assistant, config.max_pairs_per_answer, rng)
    if len(pairs) < 2:
        raise ValueError("too few question/answer pairs to tune on")
    epochs = max(1, int(round(config.epochs)))
    plan = [_batches(list(pairs), config.batch_size, rng) for _ in range(epochs)]
    total = sum(len(p) for p in plan)
    model = encoder.model
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01)
    warmup = int(config.warmup * total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: linear_warmup_decay(s, warmup_steps=warmup, total_steps=total)
    )
    tok, pad_id = encoder.tokenizer, encoder.tokenizer.pad_token_id
    losses = []
    model.train()
    with torch_threads(config.num_threads), tqdm(total=total, desc="tuning", disable=not progress) as bar:
        for batches in plan:
            for batch in batches:
                anchors = tokenize(tok, [a for a, _, _ in batch], encoder.max_length, what="anchors")
                positives = tokenize(tok, [p for _, p, _ in batch], encoder.max_length, what="positives")
                a = encoder.forward(*pad_batch(anchors, pad_id))
                p = encoder.forward(*pad_batch(positives, pad_id))
                logits = config.scale * a @ p.T
                target = torch.arange(len(batch))
                loss = torch.nn.functional.cross_entropy(logits, target)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                losses.append(loss.item())
                bar.update(1)
                bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.4f}")
    model.eval()
    assistant.reindex()
    report: dict[str, Any] = {
        "pairs": len(pairs), "steps": total, "epochs": epochs, "lr": config.lr, "batch_size": config.batch_size,
        "first_loss": round(sum(losses[:10]) / len(losses[:10]), 4),
        "last_loss": round(sum(losses[-10:]) / len(losses[-10:]), 4),
    }
    if dev_queries:
        after = assistant.evaluate(dev_queries)
        report["dev_before"] = {k: before[k] for k in ("top1_accuracy", "top3_accuracy")} if before else None
        report["dev_after"] = {k: after[k] for k in ("top1_accuracy", "top3_accuracy")}
        def key(m):
            return (m["top1_accuracy"] or 0.0, m["top3_accuracy"] or 0.0)

        if before and key(after) <= key(before):
            LOGGER.warning("tuning did not improve top-1/top-3 on the dev queries (%.3f/%.3f -> %.3f/%.3f); "
                           "keeping the original encoder", *key(before), *key(after))
            model.load_state_dict(original)
            assistant.reindex()
            report["kept"] = False
        else:
            report["kept"] = True
    else:
        report["kept"] = True
        report["note"] = "no held-out queries given: the tuned encoder is kept unchecked"
    assistant.calibrate(dev_queries)
    if report["kept"]:
        assistant.tuning = report
    return report
