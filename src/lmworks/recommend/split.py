"""Index the catalogue and hold out what evaluation ranks.

Two protocols:

``leave-last-out``
    Each user's last positive (by time) is the test item and the one before it the
    validation item; everything else trains. Ranking is over the full catalogue,
    minus what the user already interacted with in training.
``cold-start``
    A random share of the items (with at least one positive) is removed from
    training entirely and split in two halves: validation-new and test-new items.
    Each user's positives among the test-new items are what the model must find
    when ranking *only the new items*, which no interaction has ever touched: the
    case where an ID-based model has nothing to go on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import sparse

from ..errors import ConfigError, DataError
from .data import Interactions, Items

PROTOCOLS = ("leave-last-out", "cold-start", "none")


@dataclass
class Holdout:
    """Per-user relevant item indices, and the candidate items to rank (``None``: all)."""

    relevant: dict[int, list[int]] = field(default_factory=dict)
    candidates: list[int] | None = None

    def to_json(self) -> dict:
        """JSON-friendly form (keys as strings)."""
        return {"relevant": {str(u): v for u, v in self.relevant.items()}, "candidates": self.candidates}

    @classmethod
    def from_json(cls, data: dict) -> Holdout:
        """Inverse of :meth:`to_json`."""
        return cls({int(u): [int(i) for i in v] for u, v in data["relevant"].items()}, data.get("candidates"))


@dataclass
class Dataset:
    """Interactions in index space: the training rows plus held-out validation and test sets.

    ``train`` has integer columns ``user``, ``item``, a float ``timestamp`` and a bool
    ``positive``; ``user_ids``/``item_ids`` map indices back to raw IDs; ``texts`` is the
    item text by item index.
    """

    user_ids: list[str]
    item_ids: list[str]
    texts: list[str]
    train: pd.DataFrame
    valid: Holdout
    test: Holdout
    protocol: str = "none"
    valid_rows: pd.DataFrame | None = None

    @property
    def n_users(self) -> int:
        """Users in the catalogue."""
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        """Items in the catalogue."""
        return len(self.item_ids)

    def with_valid(self) -> Dataset:
        """The data as the test set sees it: validation interactions join the training history.

        Validation comes before test in time (leave-last-out) or is an older batch of
        new items (cold-start), so at test time it is history, for every model alike.
        """
        if self.valid_rows is None or self.valid_rows.empty:
            return self
        train = pd.concat([self.train, self.valid_rows]).sort_values(["user", "timestamp", "item"], kind="stable")
        return Dataset(self.user_ids, self.item_ids, self.texts, train.reset_index(drop=True), Holdout(),
                       self.test, self.protocol, None)

    def positive_matrix(self) -> sparse.csr_matrix:
        """Users x items CSR matrix of training positives (1.0 each)."""
        pos = self.train[self.train["positive"]]
        data = np.ones(len(pos), dtype=np.float32)
        return sparse.csr_matrix((data, (pos["user"].to_numpy(), pos["item"].to_numpy())),
                                 shape=(self.n_users, self.n_items))

    def seen_matrix(self) -> sparse.csr_matrix:
        """Users x items CSR matrix of every training interaction (never recommended back)."""
        data = np.ones(len(self.train), dtype=np.float32)
        return sparse.csr_matrix((data, (self.train["user"].to_numpy(), self.train["item"].to_numpy())),
                                 shape=(self.n_users, self.n_items))

    def histories(self) -> list[np.ndarray]:
        """Each user's training positives, oldest first."""
        pos = self.train[self.train["positive"]].sort_values(["user", "timestamp", "item"], kind="stable")
        out: list[np.ndarray] = [np.zeros(0, dtype=np.int64) for _ in range(self.n_users)]
        for user, group in pos.groupby("user", sort=False):
            out[int(user)] = group["item"].to_numpy(dtype=np.int64)
        return out


def build_dataset(
    interactions: Interactions,
    items: Items,
    *,
    protocol: str = "leave-last-out",
    cold_fraction: float = 0.2,
    seed: int = 0,
) -> Dataset:
    """Index users and items and apply a hold-out protocol (see the module docstring)."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown evaluation protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    if interactions.positives.empty:
        raise DataError(f"{interactions.source}: no positive interactions (check --positive-threshold)")
    item_index = {item: i for i, item in enumerate(items.ids)}
    user_ids = sorted(pd.unique(interactions.frame["user"]).tolist(), key=_natural)
    user_index = {user: i for i, user in enumerate(user_ids)}
    frame = pd.DataFrame({
        "user": interactions.frame["user"].map(user_index).to_numpy(np.int64),
        "item": interactions.frame["item"].map(item_index).to_numpy(np.int64),
        "timestamp": interactions.frame["timestamp"].to_numpy(np.float64),
        "positive": interactions.frame["positive"].to_numpy(bool),
    })
    frame = frame.sort_values(["user", "timestamp", "item"], kind="stable").reset_index(drop=True)
    valid, test, valid_rows = Holdout(), Holdout(), None
    if protocol == "leave-last-out":
        frame, valid, test, valid_rows = _leave_last_out(frame)
    elif protocol == "cold-start":
        frame, valid, test, valid_rows = _cold_start(frame, cold_fraction, seed)
    return Dataset(user_ids, list(items.ids), list(items.texts), frame, valid, test, protocol, valid_rows)


def _natural(value: str) -> tuple:
    return (0, int(value), "") if value.lstrip("-").isdigit() else (1, 0, value)


Split = tuple[pd.DataFrame, Holdout, Holdout, pd.DataFrame]


def _leave_last_out(frame: pd.DataFrame) -> Split:
    pos = frame[frame["positive"]]
    rank_from_end = pos.groupby("user").cumcount(ascending=False)
    count = pos.groupby("user")["item"].transform("size")
    # A user keeps at least one training positive: test needs >= 2 positives, validation >= 3.
    test_rows = pos.index[(rank_from_end == 0) & (count >= 2)]
    valid_rows = pos.index[(rank_from_end == 1) & (count >= 3)]
    test = Holdout({int(u): [int(i)] for u, i in frame.loc[test_rows, ["user", "item"]].to_numpy()})
    valid = Holdout({int(u): [int(i)] for u, i in frame.loc[valid_rows, ["user", "item"]].to_numpy()})
    train = frame.drop(index=test_rows.union(valid_rows)).reset_index(drop=True)
    return train, valid, test, frame.loc[valid_rows].reset_index(drop=True)


def _cold_start(frame: pd.DataFrame, fraction: float, seed: int) -> Split:
    if not 0 < fraction < 1:
        raise ConfigError(f"--cold-fraction must be between 0 and 1, got {fraction}")
    with_positive = np.unique(frame.loc[frame["positive"], "item"].to_numpy())
    rng = np.random.default_rng(seed)
    cold = rng.permutation(with_positive)[: max(2, int(round(fraction * len(with_positive))))]
    half = len(cold) // 2
    valid_items, test_items = np.sort(cold[:half]), np.sort(cold[half:])
    train = frame[~frame["item"].isin(cold)].reset_index(drop=True)
    users_with_history = set(train.loc[train["positive"], "user"].tolist())

    def holdout(new_items: np.ndarray) -> Holdout:
        rows = frame[frame["positive"] & frame["item"].isin(new_items) & frame["user"].isin(users_with_history)]
        relevant = {int(u): sorted(g["item"].astype(int).tolist()) for u, g in rows.groupby("user")}
        return Holdout(relevant, [int(i) for i in new_items])

    # Interactions on validation-new items become history for the test set; test-new ones never do.
    return train, holdout(valid_items), holdout(test_items), frame[frame["item"].isin(valid_items)]
