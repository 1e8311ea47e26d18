"""The few-shot recipe: contrastive fine-tuning of the sentence encoder on pairs, then a linear head.

With 8 to 64 labels per class, plain fine-tuning has too few examples to move a classification
head and an encoder at once. SetFit's recipe (Tunstall et al., 2022) turns N labelled texts into
many pairs instead: two texts of one class should embed close (cosine 1), two of different classes
apart (cosine 0). The encoder learns that geometry with a cosine-similarity loss on mean-pooled
embeddings, which is how the shipped encoders were trained to begin with, and a logistic regression
on the tuned embeddings is then the head. The regression's weights are written into the mean-pooling
head of the ordinary transformer classifier, so the result is a normal model directory: evaluate,
predict, export, serve and explain work on it unchanged.

Pairs are sampled as SetFit does (for every text, one partner of its class and one of another,
repeated), capped so that a larger data set does not buy hours of pairs; the contrastive stage runs
on the one training engine (:class:`~lmworks.training.engine.Trainer`) with :class:`PairObjective`.
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

#: Sampling rounds per text (SetFit's ``num_iterations``): each gives one same-class and one other-class pair.
ROUNDS = 20
#: At most this many pairs, whatever the data size (about 2 minutes of MiniLM on two cores at batch 16).
MAX_PAIRS = 2_000
#: The contrastive stage's settings: SetFit's defaults for a sentence-transformers body.
PAIR_BATCH = 16
PAIR_LR = 2e-5

#: ``(text index, text index, target cosine)``
Pair = tuple[int, int, float]


def sample_pairs(targets: np.ndarray, *, seed: int, rounds: int = ROUNDS, max_pairs: int = MAX_PAIRS) -> list[Pair]:
    """Same-class (1.0) and different-class (0.0) pairs, balanced, for single- or multi-label targets.

    Multi-label rows (a multi-hot matrix) are "same" when their label sets are equal and "different"
    when they share no label; partial overlaps are left out (neither target is true of them).
    """
    rng = random.Random(seed)
    n = len(targets)
    keys: list[tuple[int, ...]] = ([tuple(int(k) for k in np.flatnonzero(row)) for row in targets]
                                   if targets.ndim == 2 else [(int(t),) for t in targets])
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    rounds = max(1, min(rounds, max_pairs // max(1, 2 * n)))
    pairs: list[Pair] = []
    for _ in range(rounds):
        for i in range(n):
            mates = [j for j in groups[keys[i]] if j != i]
            if mates:
                pairs.append((i, rng.choice(mates), 1.0))
            others = [j for key, rows in groups.items() if not set(key) & set(keys[i]) for j in rows]
            if others:
                pairs.append((i, rng.choice(others), 0.0))
    rng.shuffle(pairs)
    return pairs[:max_pairs]


class _Pooled(nn.Module):
    """The classifier's encoder with mean pooling, unit length: what the pairs train."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        return nn.functional.normalize(mean_pool(hidden, mask), dim=-1)


class PairObjective(Objective):
    """Cosine-similarity loss (sentence-transformers' ``CosineSimilarityLoss``) over sampled pairs."""

    def __init__(self, input_ids: list[list[int]], pairs: list[Pair], *, pad_id: int, batch_size: int,
                 seed: int) -> None:
        self.input_ids = input_ids
        self.pairs = pairs
        self.pad_id = pad_id
        self.batch_size = batch_size
        self.seed = seed

    def batches(self, epoch: int) -> list[list[int]]:  # noqa: D102
        order = list(range(len(self.pairs)))
        random.Random(self.seed + epoch).shuffle(order)
        return [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]

    def loss(self, model: nn.Module, batch: list[int]) -> torch.Tensor:  # noqa: D102
        rows = sorted({i for b in batch for i in self.pairs[b][:2]})
        where = {r: k for k, r in enumerate(rows)}
        vectors = model(*pad_batch([self.input_ids[r] for r in rows], self.pad_id))
        left = vectors[[where[self.pairs[b][0]] for b in batch]]
        right = vectors[[where[self.pairs[b][1]] for b in batch]]
        target = torch.tensor([self.pairs[b][2] for b in batch], dtype=vectors.dtype)
        return nn.functional.mse_loss((left * right).sum(-1), target)


class FewShotBackend(TransformerBackend):
    """A transformer classifier fitted by the few-shot recipe; saved and loaded as any transformer model."""

    def fit(self, texts: Sequence[str], targets: np.ndarray, run: FitRun) -> dict[str, Any]:
        """Contrastive stage on pairs, then the logistic-regression head; report dev metrics if there is dev data."""
        from ..training.engine import Trainer

        config = run.config
        if Pooling.parse(config.head) is not Pooling.MEAN:
            raise ConfigError("the few-shot recipe trains the mean-pooling head: use --head mean or --few-shot off")
        if run.soft_targets is not None:
            raise ConfigError("distillation and the few-shot recipe do not combine: pass --few-shot off")
        self.prepare(run.labels, config)
        start = time.perf_counter()
        ids = tokenize(self.tokenizer, texts, config.max_length, what="training texts")
        pairs = sample_pairs(targets, seed=config.seed)
        stage = TrainConfig(epochs=1, batch_size=PAIR_BATCH, lr=PAIR_LR, warmup_ratio=0.1, seed=config.seed,
                            num_threads=config.num_threads, max_length=config.max_length, eval_fraction=0.0,
                            log_every=config.log_every)
        info: dict[str, Any] = {}
        if pairs:
            objective = PairObjective(ids, pairs, pad_id=self.tokenizer.pad_token_id, batch_size=PAIR_BATCH,
                                      seed=config.seed)
            trainer = Trainer(_Pooled(self.network.encoder), stage, objective, progress=run.progress,
                              description="few-shot pairs", monitor=run.monitor)
            with torch_threads(config.num_threads):
                info = trainer.train().info()
        self._fit_head(ids, targets, config)
        seconds = time.perf_counter() - start
        dev = run.score_fn(self._proba(tokenize(self.tokenizer, run.eval_texts, config.max_length,
                                                what="eval texts")))[1] \
            if run.eval_texts and run.score_fn else None
        return {"train_seconds": round(seconds, 2), "samples_per_second": round(len(texts) / max(seconds, 1e-9), 2),
                "steps": info.get("steps", 0), "interrupted": bool(info.get("interrupted", False)),
                "dev_metrics": dev,
                "few_shot": {"pairs": len(pairs), "pair_steps": info.get("steps", 0), "pair_lr": PAIR_LR,
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
