"""The model in the labelling loop, and which text to ask about next.

The loop model must retrain in about a second, so the page never waits: the pool's
TF-IDF features (lmworks' own TF-IDF recipe, :func:`~lmworks.backends.tfidf.tfidf_pipeline`)
are computed once, unsupervised, over the whole pool, and each retrain fits only the
logistic regression on the rows labelled so far. A full ``lmworks train`` on the
exported file gives the production model.

Query strategies (small-text's names): ``margin`` ("breaking ties": the smallest gap
between the two most likely classes; the default, the strongest simple strategy in
Schröder et al., 2022), ``entropy``, ``random``, and ``diverse`` (the most uncertain
texts, of which the one least like anything labelled so far). Before any model
exists, texts come from a k-means clustering of the pool: the text nearest each
centroid, largest cluster first, so the first labels cover the pool's main themes.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError

#: Uncertain texts the ``diverse`` strategy chooses among.
DIVERSE_CANDIDATES = 20


class Strategy(str, enum.Enum):
    """Which unlabelled text is asked about next."""

    MARGIN = "margin"
    ENTROPY = "entropy"
    RANDOM = "random"
    DIVERSE = "diverse"

    @classmethod
    def parse(cls, value: str | Strategy) -> Strategy:
        """``value`` as a strategy, or a :class:`ConfigError` listing the choices."""
        try:
            return cls(value)
        except ValueError:
            raise ConfigError(f"unknown strategy {value!r}; choose one of "
                              f"{', '.join(s.value for s in cls)}") from None


def uncertainty(strategy: Strategy, probs: np.ndarray) -> np.ndarray:
    """Higher means more worth asking: ``1 - (p1 - p2)`` for margin, entropy for entropy."""
    if strategy is Strategy.ENTROPY:
        p = np.clip(probs, 1e-12, 1.0)
        return -(p * np.log(p)).sum(axis=1)
    top = np.sort(probs, axis=1)
    second = top[:, -2] if probs.shape[1] > 1 else np.zeros(len(probs))
    return 1.0 - (top[:, -1] - second)


def pick(strategy: Strategy, probs: np.ndarray | None, available: np.ndarray, rng: np.random.Generator, *,
         features: Any = None, labelled: Sequence[int] = (), cold_order: Sequence[int] = ()) -> int | None:
    """The index of the next text to ask about, among ``available`` (a boolean mask), or None when none is left.

    Without a model (``probs`` None) every strategy but ``random`` follows ``cold_order``.
    """
    candidates = np.flatnonzero(available)
    if len(candidates) == 0:
        return None
    if strategy is Strategy.RANDOM:
        return int(rng.choice(candidates))
    if probs is None:
        for index in cold_order:
            if available[index]:
                return int(index)
        return int(rng.choice(candidates))
    scores = uncertainty(Strategy.ENTROPY if strategy is Strategy.ENTROPY else Strategy.MARGIN, probs[candidates])
    if strategy is not Strategy.DIVERSE or features is None or not len(labelled):
        return int(candidates[int(np.argmax(scores))])
    top = candidates[np.argsort(-scores)[:DIVERSE_CANDIDATES]]
    similarity = (features[top] @ features[np.asarray(labelled)].T).max(axis=1)
    similarity = np.asarray(similarity.todense() if hasattr(similarity, "todense") else similarity).ravel()
    return int(top[int(np.argmin(similarity))])


def cold_start_order(features: Any, *, clusters: int, seed: int) -> list[int]:
    """Pool indices to ask about before any model exists: each k-means centroid's nearest text, biggest first."""
    from sklearn.cluster import MiniBatchKMeans
    from sklearn.decomposition import TruncatedSVD

    n = features.shape[0]
    clusters = max(1, min(clusters, n))
    dims = max(1, min(32, features.shape[1] - 1, n - 1))
    if dims > 1:
        reduced = TruncatedSVD(dims, n_iter=3, random_state=seed).fit_transform(features)
    else:
        reduced = features.toarray()
    reduced = reduced / np.maximum(np.linalg.norm(reduced, axis=1, keepdims=True), 1e-12)
    km = MiniBatchKMeans(clusters, random_state=seed, n_init=3, batch_size=1024).fit(reduced)
    sizes = np.bincount(km.labels_, minlength=clusters)
    order = []
    for cluster in np.argsort(-sizes):
        members = np.flatnonzero(km.labels_ == cluster)
        if len(members):
            distance = np.linalg.norm(reduced[members] - km.cluster_centers_[cluster], axis=1)
            order.append(int(members[int(np.argmin(distance))]))
    return order


class PoolModel:
    """TF-IDF features of the pool, fitted once; a logistic regression refitted on the labels so far."""

    def __init__(self, texts: Sequence[str], labels: Sequence[str], *, seed: int = 0) -> None:
        from ..backends.tfidf import tfidf_pipeline
        from ..training.config import TrainConfig

        if len(labels) < 2:
            raise ConfigError(f"at least two labels are needed, got {list(labels)}")
        self.labels = list(labels)
        self.seed = seed
        self._pipeline = tfidf_pipeline(TrainConfig(seed=seed))
        self.features = self._pipeline[0].fit_transform(list(texts)).tocsr()

    def transform(self, texts: Sequence[str]) -> Any:
        """Features of other texts (a test split), with the pool's vocabulary."""
        return self._pipeline[0].transform(list(texts))

    def fit(self, rows: Sequence[int], labels: Sequence[str]) -> Any | None:
        """A classifier fitted on pool ``rows`` with ``labels``; None while fewer than two classes are labelled.

        Only the feature columns present in those rows are fitted: under the L2 penalty every other
        weight is exactly zero anyway, and dropping them makes a refit on hundreds of labels take
        tens of milliseconds instead of seconds (the pool has hundreds of thousands of n-grams).
        """
        from sklearn.base import clone

        if len(set(labels)) < 2:
            return None
        x = self.features[np.asarray(rows)]
        columns = np.unique(x.indices)
        clf = clone(self._pipeline[-1])
        clf.fit(x[:, columns], [self.labels.index(y) for y in labels])
        clf.columns_ = columns
        return clf

    def proba(self, clf: Any, features: Any = None) -> np.ndarray:
        """Probabilities over every label (a class with no labels yet gets 0) for ``features`` (default: pool)."""
        features = self.features if features is None else features.tocsr()
        out = np.zeros((features.shape[0], len(self.labels)))
        out[:, clf.classes_] = clf.predict_proba(features[:, clf.columns_])
        return out


def wilson(correct: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval for a proportion (sensible at small ``total``, unlike the normal one)."""
    if total == 0:
        return 0.0, 1.0
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * np.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))
