"""The few-shot recipe: contrastive fine-tuning of the sentence encoder, then a linear head.

With a few labels per class, plain fine-tuning has too few examples to move a classification
head and an encoder at once. SetFit's recipe (Tunstall et al., 2022) turns N labelled texts into
many pairs instead: two texts of one class should embed close, two of different classes apart, and
a logistic regression on the tuned embeddings is then the head. The regression's weights are written
into the mean-pooling head of the ordinary transformer classifier, so the result is a normal model
directory: evaluate, predict, export, serve and explain work on it unchanged.

The pairs are compared with the supervised contrastive loss (SupCon, Khosla et al., 2020) rather
than SetFit's cosine-similarity regression: each step embeds a batch of labelled texts and scores
every pair in it, each text pulled towards its classmates *relative to* the rest of the batch.
SetFit's loss pins unrelated classes at cosine 0, which a pretrained sentence space does not put
them at; on the nine emoji categories that cost the recipe its lead over plain fine-tuning, and
SupCon took it back at the same step budget (``bench/fewshot.py``, research log). The stage runs on
the one training engine (:class:`~lmworks.training.engine.Trainer`) with :class:`ContrastiveObjective`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..heads import mean_pool
from ..modes import ClassWeighting, Pooling
from ..runtime import seed_everything, torch_threads
from ..tokens import pad_batch, padded_batches, tokenize
from ..training.config import TrainConfig
from ..training.objectives import Objective
from .base import FitRun
from .transformer import TransformerBackend

LOGGER = logging.getLogger("lmworks")

#: The stage's length in SetFit's terms (``num_iterations`` 20: one same-class and one other-class pair
#: per text per round, at most 2,000 pairs, 16 pairs a step): at most 125 steps, about 2 minutes of
#: MiniLM on two cores, whatever the data size.
ROUNDS = 20
MAX_PAIRS = 2_000
PAIR_BATCH = 16
#: Texts per contrastive step; all pairs among them are scored.
CONTRAST_BATCH = 32
#: SupCon's temperature (Khosla et al.'s value) and the stage's learning rate (5e-5 beat SetFit's 2e-5 at 8
#: and 16 labels per class on the emoji categories, in a one-off sweep in the research log).
TEMPERATURE = 0.1
PAIR_LR = 5e-5
#: Stands for minus infinity in masked logits (a true -inf turns a fully masked row's gradient into NaN).
_MASKED = -1e9

#: A row's label set: ``(class,)`` for single-label data, the sorted on-labels for multi-label rows.
Key = tuple[int, ...]


def label_keys(targets: np.ndarray) -> list[Key]:
    """Each row's label set, from class indices (1-D) or a multi-hot matrix (2-D)."""
    if targets.ndim == 2:
        return [tuple(int(k) for k in np.flatnonzero(row)) for row in targets]
    return [(int(t),) for t in targets]


def stage_steps(n_texts: int) -> int:
    """Steps of the contrastive stage for ``n_texts`` training texts (SetFit's pair budget)."""
    return max(1, min(ROUNDS * 2 * n_texts, MAX_PAIRS) // PAIR_BATCH)


def supcon_loss(vectors: torch.Tensor, keys: Sequence[Key], temperature: float = TEMPERATURE) -> torch.Tensor:
    """Supervised contrastive loss of unit ``vectors`` whose rows carry the label sets ``keys``.

    Two rows are positives when their label sets are equal and negatives when they share no label.
    Multi-label rows that overlap only in part are neither: they leave the softmax, as SetFit leaves
    them out of its pairs. A row is never its own negative, not even a row with no label (an empty set
    shares nothing with itself). Anchors with no positive in the batch do not count; a batch without any
    positive gives a zero loss that still has a gradient path (so every rank of a DDP run agrees).
    """
    n = len(keys)
    sets = [set(k) for k in keys]
    same = torch.tensor([[i != j and keys[i] == keys[j] for j in range(n)] for i in range(n)])
    apart = torch.tensor([[i != j and not sets[i] & sets[j] for j in range(n)] for i in range(n)])
    logits = (vectors @ vectors.T / temperature).masked_fill(~(same | apart), _MASKED)
    log_p = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    anchors = same.any(dim=1)
    if not bool(anchors.any()):
        return (vectors * 0).sum()
    per_anchor = -log_p.masked_fill(~same, 0.0).sum(dim=1) / same.sum(dim=1).clamp(min=1)
    return per_anchor[anchors].mean()


class _Pooled(nn.Module):
    """The classifier's encoder with mean pooling, unit length: what the contrastive stage trains."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        return nn.functional.normalize(mean_pool(hidden, mask), dim=-1)


class ContrastiveObjective(Objective):
    """SupCon over random batches of the labelled texts: ``steps`` batches an epoch, seeded per epoch.

    Random rather than class-balanced (P classes x K texts, the usual SupCon sampler): on 52 classes
    at 8 labels per class, where few texts in a random batch have a classmate, random batches still
    won (0.761 vs 0.747 for 16 x 2 and 0.743 for 8 x 4; research log).
    """

    def __init__(self, input_ids: list[list[int]], keys: list[Key], *, pad_id: int, steps: int, seed: int,
                 batch_size: int = CONTRAST_BATCH, temperature: float = TEMPERATURE) -> None:
        self.input_ids = input_ids
        self.keys = keys
        self.pad_id = pad_id
        self.steps = steps
        self.seed = seed
        self.batch_size = min(batch_size, len(input_ids))
        self.temperature = temperature

    def batches(self, epoch: int) -> list[list[int]]:  # noqa: D102
        rng = random.Random(self.seed + epoch)
        return [rng.sample(range(len(self.input_ids)), self.batch_size) for _ in range(self.steps)]

    def loss(self, model: nn.Module, batch: list[int]) -> torch.Tensor:  # noqa: D102
        vectors = model(*pad_batch([self.input_ids[r] for r in batch], self.pad_id))
        return supcon_loss(vectors, [self.keys[r] for r in batch], self.temperature)


class FewShotBackend(TransformerBackend):
    """A transformer classifier fitted by the few-shot recipe; saved and loaded as any transformer model."""

    def fit(self, texts: Sequence[str], targets: np.ndarray, run: FitRun) -> dict[str, Any]:
        """Contrastive stage, then the logistic-regression head; report dev metrics if there is dev data."""
        from ..training.engine import Trainer

        config = run.config
        if Pooling.parse(config.head) is not Pooling.MEAN:
            raise ConfigError("the few-shot recipe trains the mean-pooling head: use --head mean or --few-shot off")
        if run.soft_targets is not None:
            raise ConfigError("distillation and the few-shot recipe do not combine: pass --few-shot off")
        self.prepare(run.labels, config)
        start = time.perf_counter()
        ids = tokenize(self.tokenizer, texts, config.max_length, what="training texts")
        keys = label_keys(targets)
        steps = stage_steps(len(ids)) if len(set(keys)) < len(keys) else 0  # no classmates, nothing to pull
        stage = TrainConfig(epochs=1, batch_size=CONTRAST_BATCH, lr=PAIR_LR, warmup_ratio=0.1, seed=config.seed,
                            num_threads=config.num_threads, max_length=config.max_length, eval_fraction=0.0,
                            log_every=config.log_every)
        info: dict[str, Any] = {}
        objective = ContrastiveObjective(ids, keys, pad_id=self.tokenizer.pad_token_id, steps=steps, seed=config.seed)
        if steps:
            trainer = Trainer(_Pooled(self.network.encoder), stage, objective, progress=run.progress,
                              description="few-shot contrastive", monitor=run.monitor)
            with torch_threads(config.num_threads):
                info = trainer.train().info()
        self._fit_head(ids, targets, config)
        seconds = time.perf_counter() - start
        done = info.get("steps", 0)
        dev = run.score_fn(self._proba(tokenize(self.tokenizer, run.eval_texts, config.max_length,
                                                what="eval texts")))[1] \
            if run.eval_texts and run.score_fn else None
        return {"train_seconds": round(seconds, 2), "samples_per_second": round(len(texts) / max(seconds, 1e-9), 2),
                "steps": done, "interrupted": bool(info.get("interrupted", False)),
                "dev_metrics": dev,
                "few_shot": {"objective": "supervised contrastive (SupCon) over all pairs in a batch",
                             "pairs": done * objective.batch_size * (objective.batch_size - 1) // 2,
                             "pair_steps": done, "pair_batch": objective.batch_size,
                             "pair_lr": PAIR_LR, "temperature": TEMPERATURE,
                             "head": "logistic regression on the tuned mean-pooled embeddings"}}

    def _embed(self, ids: list[list[int]]) -> np.ndarray:
        """Mean-pooled embeddings (what the head reads), in input order."""
        out = np.zeros((len(ids), int(self.network.config.hidden_size)), dtype=np.float32)
        self.network.eval()
        with torch.inference_mode():
            for batch, x, mask in padded_batches(ids, self.tokenizer.pad_token_id, 4096):
                hidden = self.network.encoder(input_ids=x, attention_mask=mask).last_hidden_state
                out[batch] = mean_pool(hidden, mask).float().numpy()
        return out

    def _fit_head(self, ids: list[list[int]], targets: np.ndarray, config: TrainConfig) -> None:
        """Logistic regression on the embeddings, written into the network's linear head."""
        from sklearn.linear_model import LogisticRegression

        with torch_threads(config.num_threads):
            features = self._embed(ids)
        seed_everything(config.seed)
        balanced = "balanced" if config.class_weights is ClassWeighting.BALANCED else None
        n_labels = int(self.network.config.num_labels)
        weight = np.zeros((n_labels, features.shape[1]), dtype=np.float32)
        bias = np.zeros(n_labels, dtype=np.float32)
        columns = [targets[:, k] for k in range(n_labels)] if targets.ndim == 2 else [targets]
        for k, y in enumerate(columns):
            present = np.unique(y)
            if len(present) < 2:  # a multi-label column that is always on (or off) in this data
                bias[k] = 4.0 if present[0] else -4.0
                continue
            lr = LogisticRegression(C=1.0, max_iter=2000, class_weight=balanced, random_state=config.seed)
            lr.fit(features, y)
            if targets.ndim == 2:
                weight[k], bias[k] = lr.coef_[0], lr.intercept_[0]
            elif len(lr.classes_) == 2 and n_labels == 2:  # softmax over (-z/2, z/2) is sigmoid(z)
                weight[0], weight[1] = -lr.coef_[0] / 2, lr.coef_[0] / 2
                bias[0], bias[1] = -lr.intercept_[0] / 2, lr.intercept_[0] / 2
            else:
                seen = np.asarray(lr.classes_, dtype=int)
                weight[seen], bias[seen] = lr.coef_, lr.intercept_
                bias[np.setdiff1d(np.arange(n_labels), seen)] = -1e4
        with torch.no_grad():
            self.network.head.weight.copy_(torch.from_numpy(weight))
            self.network.head.bias.copy_(torch.from_numpy(bias))
