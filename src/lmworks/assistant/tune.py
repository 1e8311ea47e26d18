"""Contrastive adaptation of the encoder to a knowledge base.

Pairs that should be close — a question and its answer, and two phrasings that share
an answer — are pulled together while every other pair in the batch is pushed apart
(in-batch negatives; the multiple-negatives ranking loss of sentence-transformers).
Batches never hold two pairs of the same answer, which would be false negatives.
With held-out queries, the tuned encoder is kept only if it ranks them better (top-1,
then top-3) than the original: tuning on a small, repetitive base can overfit, and a
user asked for a better assistant, not a different one.

Training runs on the one engine (:class:`~lmworks.training.engine.Trainer`) with
:class:`ContrastiveObjective`.
"""

from __future__ import annotations

import copy
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..embed import SentenceEncoder
from ..runtime import seed_everything, torch_threads
from ..tokens import pad_batch, tokenize
from ..training.config import TrainConfig
from ..training.objectives import Objective
from .assistant import Assistant

LOGGER = logging.getLogger("lmworks")

#: ``(anchor, positive, answer id)``
Pair = tuple[str, str, int]


@dataclass
class TuneConfig:
    """Contrastive tuning settings (sentence-transformers' defaults where they exist).

    Attributes
    ----------
    epochs:
        Passes over the pairs (rounded to a whole number, at least one).
    batch_size:
        Pairs per batch: each pair's positive is every other pair's negative.
    lr, warmup:
        Peak learning rate and the share of steps warming it up.
    scale:
        Inverse temperature of the cosine similarities in the softmax.
    seed:
        Seeds the pair sampling, the batches and the engine.
    max_pairs_per_answer:
        Pairs drawn per answer, so that a frequent answer does not dominate.
    num_threads:
        Torch threads (default: the usable CPUs).
    """

    epochs: float = 1.0
    batch_size: int = 32
    lr: float = 2e-5
    scale: float = 20.0
    warmup: float = 0.1
    seed: int = 42
    max_pairs_per_answer: int = 20
    num_threads: int | None = None

    def engine_config(self, *, epochs: int, total_steps: int) -> TrainConfig:
        """The engine's settings: AdamW with weight decay 0.01, clipping at 1.0, exactly ``total_steps`` steps."""
        return TrainConfig(epochs=epochs, max_steps=total_steps, batch_size=self.batch_size, lr=self.lr,
                           warmup_ratio=self.warmup, head_lr_multiplier=1.0, weight_decay=0.01, max_grad_norm=1.0,
                           seed=self.seed, num_threads=self.num_threads, patience=0, eval_fraction=0.0, blend="none")


def training_pairs(assistant: Assistant, max_per_answer: int, rng: random.Random) -> list[Pair]:
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


def answer_disjoint_batches(answers: Sequence[int], size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of pair indices without two pairs of the same answer (no false negatives)."""
    order = list(range(len(answers)))
    rng.shuffle(order)
    batches: list[list[int]] = []
    open_batches: list[tuple[list[int], set[int]]] = []
    for index in order:
        for batch, taken in open_batches:
            if answers[index] not in taken and len(batch) < size:
                batch.append(index)
                taken.add(answers[index])
                break
        else:
            open_batches.append(([index], {answers[index]}))
        full = [b for b in open_batches if len(b[0]) >= size]
        for b in full:
            batches.append(b[0])
            open_batches.remove(b)
    batches.extend(b for b, _ in open_batches if len(b) > 1)
    return batches


class ContrastiveObjective(Objective):
    """Multiple-negatives ranking loss over planned, answer-disjoint batches of pairs."""

    def __init__(self, encoder: SentenceEncoder, pairs: list[Pair], plan: list[list[list[int]]], scale: float) -> None:
        self.encoder, self.pairs, self.plan, self.scale = encoder, pairs, plan, scale

    def batches(self, epoch: int) -> list[list[int]]:  # noqa: D102
        return self.plan[epoch] if epoch < len(self.plan) else []

    def _embed(self, texts: list[str], what: str) -> torch.Tensor:
        ids = tokenize(self.encoder.tokenizer, texts, self.encoder.max_length, what=what)
        return self.encoder.forward(*pad_batch(ids, self.encoder.pad_id))

    def loss(self, model: nn.Module, batch: list[int]) -> torch.Tensor:  # noqa: D102
        anchors = self._embed([self.pairs[i][0] for i in batch], "anchors")
        positives = self._embed([self.pairs[i][1] for i in batch], "positives")
        logits = self.scale * anchors @ positives.T
        return torch.nn.functional.cross_entropy(logits, torch.arange(len(batch)))


def tune(
    assistant: Assistant,
    config: TuneConfig | None = None,
    dev_queries: Sequence[tuple[str, str | None]] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Fine-tune ``assistant.encoder`` in place, rebuild the index; return a before/after report."""
    from ..training.engine import Trainer

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
    plan = [answer_disjoint_batches([a for _, _, a in pairs], config.batch_size, rng) for _ in range(epochs)]
    total = sum(len(p) for p in plan)
    objective = ContrastiveObjective(encoder, pairs, plan, config.scale)
    with torch_threads(config.num_threads):
        result = Trainer(encoder.model, config.engine_config(epochs=epochs, total_steps=total), objective,
                         progress=progress, description="tuning").train()
    assistant.reindex()
    losses = result.step_losses
    report: dict[str, Any] = {
        "pairs": len(pairs), "steps": total, "epochs": epochs, "lr": config.lr, "batch_size": config.batch_size,
        "first_loss": round(sum(losses[:10]) / len(losses[:10]), 4),
        "last_loss": round(sum(losses[-10:]) / len(losses[-10:]), 4),
    }
    report.update(_keep_if_better(assistant, dev_queries, before, original))
    assistant.calibrate(dev_queries)
    if report["kept"]:
        assistant.tuning = report
    return report


def _keep_if_better(assistant: Assistant, dev_queries: Sequence[tuple[str, str | None]] | None,
                    before: dict[str, Any] | None, original: dict[str, Any] | None) -> dict[str, Any]:
    """Keep the tuned encoder only if it ranks the dev queries better; restore the original otherwise."""
    if not dev_queries:
        return {"kept": True, "note": "no held-out queries given: the tuned encoder is kept unchecked"}
    after = assistant.evaluate(dev_queries)
    out: dict[str, Any] = {
        "dev_before": {k: before[k] for k in ("top1_accuracy", "top3_accuracy")} if before else None,
        "dev_after": {k: after[k] for k in ("top1_accuracy", "top3_accuracy")},
    }

    def key(m: dict[str, Any]) -> tuple[float, float]:
        return (m["top1_accuracy"] or 0.0, m["top3_accuracy"] or 0.0)

    if before and key(after) <= key(before):
        LOGGER.warning("tuning did not improve top-1/top-3 on the dev queries (%.3f/%.3f -> %.3f/%.3f); "
                       "keeping the original encoder", *key(before), *key(after))
        assistant.encoder.model.load_state_dict(original)
        assistant.reindex()
        return {**out, "kept": False}
    return {**out, "kept": True}
