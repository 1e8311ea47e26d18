"""Nearest-neighbour search over unit vectors: exact numpy by default, HNSW optionally.

Exact cosine search over a few thousand questions is a matrix-vector product taking
well under a millisecond, and it is never wrong; an approximate index (hnswlib, extra
``ann``) only pays off for bases of hundreds of thousands of questions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import ConfigError

VECTORS_FILE = "vectors.npy"
HNSW_FILE = "hnsw.bin"


class ExactIndex:
    """Brute-force cosine similarity (vectors are unit length, so a dot product)."""

    kind = "exact"

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Scores and row ids of the ``k`` best matches per query, best first."""
        k = min(k, len(self.vectors))
        scores = queries @ self.vectors.T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        return np.take_along_axis(top_scores, order, axis=1), np.take_along_axis(top, order, axis=1)

    def save(self, directory: Path) -> None:
        """Vectors are always stored; the exact index needs nothing else."""

    @classmethod
    def load(cls, directory: Path, vectors: np.ndarray) -> ExactIndex:
        """Rebuild from the stored vectors."""
        return cls(vectors)


class HnswIndex(ExactIndex):
    """Approximate search with hnswlib (inner product on unit vectors = cosine)."""

    kind = "hnsw"

    def __init__(self, vectors: np.ndarray, graph=None) -> None:
        super().__init__(vectors)
        hnswlib = _require_hnswlib()
        if graph is None:
            graph = hnswlib.Index(space="ip", dim=self.vectors.shape[1])
            graph.init_index(max_elements=len(self.vectors), ef_construction=200, M=32)
            graph.add_items(self.vectors, np.arange(len(self.vectors)))
        graph.set_ef(max(64, 2 * 10))
        self.graph = graph

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-``k`` (scores recomputed exactly for the candidates)."""
        k = min(k, len(self.vectors))
        ids, _ = self.graph.knn_query(queries, k=k)
        ids = ids.astype(np.int64)
        scores = np.einsum("qd,qkd->qk", queries, self.vectors[ids])
        order = np.argsort(-scores, axis=1, kind="stable")
        return np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)

    def save(self, directory: Path) -> None:
        """Write the graph next to the vectors."""
        self.graph.save_index(str(directory / HNSW_FILE))

    @classmethod
    def load(cls, directory: Path, vectors: np.ndarray) -> HnswIndex:
        """Load the saved graph."""
        hnswlib = _require_hnswlib()
        graph = hnswlib.Index(space="ip", dim=vectors.shape[1])
        graph.load_index(str(directory / HNSW_FILE), max_elements=len(vectors))
        return cls(vectors, graph)


INDEXES = {"exact": ExactIndex, "hnsw": HnswIndex}


def make_index(kind: str, vectors: np.ndarray) -> ExactIndex:
    """An index of ``kind`` (``exact`` or ``hnsw``) over ``vectors``."""
    if kind not in INDEXES:
        raise ConfigError(f"unknown index {kind!r} (choose from: {', '.join(INDEXES)})")
    return INDEXES[kind](vectors)


def _require_hnswlib():
    try:
        import hnswlib
    except ImportError as err:
        raise ConfigError("--index hnsw needs hnswlib: pip install 'lmworks[ann]'") from err
    return hnswlib
