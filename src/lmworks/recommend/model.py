"""The two-tower text recommender.

Item tower
    The shipped sentence encoder (all-MiniLM-L6-v2, mean pooled) reads each item's
    text once; a trained linear map takes that vector into the ranking space, and an
    optional ID embedding is added for items seen in training. The ID part is
    dropped at random while training (as in DropoutNet), so the text part alone
    must rank well: that is what lets a brand-new item, with text but no clicks,
    be recommended. The encoder itself stays frozen: on a 2-core CPU that keeps
    MovieLens-100K training to a minute, and all-MiniLM was trained for exactly
    this kind of semantic similarity.
User tower
    The user's most recent positives (up to ``history``), as item vectors, pooled
    with learned recency weights and passed through a small residual MLP. A user is
    their history, so anyone with a history (even one the model never saw) can be
    scored, and there are no per-user parameters to go stale.
Training
    Next-item prediction over each user's positives in time order, with a softmax
    over the batch's own targets (in-batch negatives) plus items sampled uniformly
    from the training catalogue. Early stopping on validation NDCG@10.
Retrieval
    Item vectors are precomputed; a user's scores are one matrix-vector product.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

LOGGER = logging.getLogger("lmworks")


@dataclass
class RecommenderConfig:
    """Training settings (the defaults are the ones documented in ``docs/research-log/benchmarks-history.md``)."""

    model: str = "minilm"
    dim: int = 64
    history: int = 50
    epochs: int = 40
    patience: int = 8
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-5
    negatives: int = 256
    id_dropout: float = 0.25
    use_ids: bool = True
    max_length: int = 64
    k: int = 10
    seed: int = 42


class TwoTower(nn.Module):
    """Item and user towers over frozen text vectors (``text``: items x text_dim)."""

    text: torch.Tensor
    has_id: torch.Tensor

    def __init__(self, text: torch.Tensor, has_id: torch.Tensor, dim: int, history: int, use_ids: bool) -> None:
        super().__init__()
        n_items, text_dim = text.shape
        self.register_buffer("text", text.float(), persistent=False)
        self.register_buffer("has_id", has_id.float() if use_ids else torch.zeros(n_items), persistent=False)
        self.n_items = n_items
        self.text_in = nn.Linear(text_dim, dim)
        self.text_out = nn.Linear(text_dim, dim)
        self.id_in = nn.Embedding(n_items, dim)
        self.id_out = nn.Embedding(n_items, dim)
        self.bias_text = nn.Linear(text_dim, 1)
        self.bias_id = nn.Embedding(n_items, 1)
        self.recency = nn.Parameter(torch.zeros(history))
        self.user_mlp = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))
        for emb in (self.id_in, self.id_out):
            nn.init.normal_(emb.weight, std=0.01)
        nn.init.zeros_(self.bias_id.weight)

    def item_tables(self, id_keep: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """History-side vectors, candidate-side vectors and biases of every item.

        ``id_keep`` (items, bool) drops ID parts for this step; items never seen in
        training have no ID part at all (their embeddings would be noise).
        """
        gate = self.has_id if id_keep is None else self.has_id * id_keep.float()
        gate = gate.unsqueeze(1)
        hist = self.text_in(self.text) + gate * self.id_in.weight
        cand = self.text_out(self.text) + gate * self.id_out.weight
        bias = (self.bias_text(self.text) + gate * self.bias_id.weight).squeeze(1)
        return hist, cand, bias

    def users(self, hist_table: torch.Tensor, histories: torch.Tensor) -> torch.Tensor:
        """User vectors from padded histories (``-1`` = padding; column 0 = most recent)."""
        valid = histories >= 0
        vectors = hist_table[histories.clamp(min=0)]
        logits = self.recency[: histories.shape[1]].expand_as(histories).masked_fill(~valid, -1e9)
        weights = torch.softmax(logits, dim=1) * valid.float()  # an empty history pools to zero
        pooled = (weights.unsqueeze(2) * vectors).sum(1)
        return pooled + self.user_mlp(pooled)


def pad_histories(histories: list[np.ndarray], length: int) -> torch.Tensor:
    """Most recent ``length`` items of each history, newest first, padded with -1."""
    out = np.full((len(histories), length), -1, dtype=np.int64)
    for row, items in enumerate(histories):
        recent = items[-length:][::-1]
        out[row, : len(recent)] = recent
    return torch.from_numpy(out)


def training_examples(histories: list[np.ndarray], length: int) -> tuple[np.ndarray, np.ndarray]:
    """(history matrix, target) for every positive: the items before it predict it."""
    rows, targets = [], []
    for items in histories:
        for position in range(len(items)):
            before = items[max(0, position - length):position][::-1]
            row = np.full(length, -1, dtype=np.int64)
            row[: len(before)] = before
            rows.append(row)
            targets.append(items[position])
    if not rows:
        return np.zeros((0, length), dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.stack(rows), np.asarray(targets, dtype=np.int64)


def train_epoch(
    model: TwoTower,
    optimizer: torch.optim.Optimizer,
    examples: tuple[np.ndarray, np.ndarray],
    train_items: np.ndarray,
    config: RecommenderConfig,
    rng: np.random.Generator,
) -> float:
    """One pass over the examples; returns the mean loss."""
    hist, targets = examples
    order = rng.permutation(len(targets))
    model.train()
    total, steps = 0.0, 0
    for start in range(0, len(order), config.batch_size):
        idx = order[start:start + config.batch_size]
        batch_targets = torch.from_numpy(targets[idx])
        sampled = torch.from_numpy(rng.choice(train_items, size=min(config.negatives, len(train_items))))
        candidates, inverse = torch.unique(torch.cat([batch_targets, sampled]), return_inverse=True)
        labels = inverse[: len(idx)]
        keep = torch.from_numpy(rng.random(model.n_items) >= config.id_dropout)
        hist_table, cand_table, bias = model.item_tables(keep)
        users = model.users(hist_table, torch.from_numpy(hist[idx]))
        logits = users @ cand_table[candidates].T + bias[candidates]
        loss = nn.functional.cross_entropy(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        total += loss.item()
        steps += 1
    return total / max(1, steps)


def cosine_lr(optimizer: torch.optim.Optimizer, base: float, epoch: int, epochs: int) -> None:
    """Half-cosine decay per epoch (no warm-up needed for these small towers)."""
    for group in optimizer.param_groups:
        group["lr"] = base * 0.5 * (1 + math.cos(math.pi * epoch / max(1, epochs)))
