"""Full-ranking evaluation: HR@k, NDCG@k, MRR and catalogue coverage.

Every candidate item is scored for every test user (no sampled negatives, which
overstate quality), items the user already interacted with in training are
removed, and ties are broken by a fixed random order so a model that scores
everything alike gets chance-level numbers rather than lucky or unlucky ones.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import sparse

from .split import Holdout

#: ``scores(user_indices) -> (len(users), n_items)`` float array.
Scorer = Callable[[np.ndarray], np.ndarray]


def evaluate_ranking(
    scores: Scorer,
    holdout: Holdout,
    seen: sparse.csr_matrix,
    *,
    k: int = 10,
    batch_size: int = 256,
    seed: int = 0,
) -> dict[str, float]:
    """Metrics of one scorer on one hold-out set (means over users with a relevant item)."""
    users = np.array(sorted(holdout.relevant), dtype=np.int64)
    n_items = seen.shape[1]
    allowed = np.ones(n_items, dtype=bool)
    if holdout.candidates is not None:
        allowed[:] = False
        allowed[np.asarray(holdout.candidates, dtype=np.int64)] = True
    jitter = np.random.default_rng(seed).random(n_items) * 1e-6
    hits, ndcgs, rrs = [], [], []
    recommended = np.zeros(n_items, dtype=bool)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    for start in range(0, len(users), batch_size):
        batch = users[start:start + batch_size]
        s = np.asarray(scores(batch), dtype=np.float64)
        s = s / (np.abs(s).max(axis=1, keepdims=True) + 1e-12) + jitter  # jitter only breaks exact ties
        s[:, ~allowed] = -np.inf
        rows, cols = seen[batch].nonzero()
        s[rows, cols] = -np.inf
        top = np.argpartition(-s, min(k, n_items - 1), axis=1)[:, :k]
        for row, user in enumerate(batch):
            relevant = np.asarray(holdout.relevant[int(user)], dtype=np.int64)
            row_scores = s[row]
            ranks = np.array([(row_scores > row_scores[i]).sum() for i in relevant])
            in_top = ranks[ranks < k]
            hits.append(float(in_top.size > 0))
            idcg = discounts[: min(k, relevant.size)].sum()
            ndcgs.append(float(discounts[in_top].sum() / idcg))
            rrs.append(1.0 / (1.0 + ranks.min()))
            picked = top[row][np.isfinite(row_scores[top[row]])]
            recommended[picked] = True
    n_candidates = int(allowed.sum())
    return {
        f"hr@{k}": float(np.mean(hits)) if hits else 0.0,
        f"ndcg@{k}": float(np.mean(ndcgs)) if ndcgs else 0.0,
        "mrr": float(np.mean(rrs)) if rrs else 0.0,
        "coverage": float(recommended[allowed].sum() / max(1, n_candidates)),
        "users": int(len(users)),
        "candidates": n_candidates,
    }
