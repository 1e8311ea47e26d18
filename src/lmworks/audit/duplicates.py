"""Exact and near-duplicate texts, inside a file and from a test file back into training (leakage).

Exact duplicates are found by a hash of the normalised text (Unicode NFKC, case folded, punctuation
dropped, spaces collapsed), so "Great film!" and "great film" are one text. Near-duplicates are
found in two steps that keep the work linear in the number of rows: candidates come from the nearest
neighbours of a random projection of TF-IDF vectors (the same index the FAQ assistant searches
with; a sparse random projection preserves dot products, as locality-sensitive hashing does), and
each candidate pair is then scored by the exact cosine similarity of its TF-IDF word and character
n-gram vectors. Character n-grams make a changed case, a typo or one replaced word
cost little, and bags of n-grams do not care about clause order.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

import numpy as np

from .config import AuditConfig

#: Neighbours looked at per row; a row with more near-copies than this still has its closest ones found.
NEIGHBOURS = 8
#: Dimensions of the random projection the index searches: it keeps dot products within about
#: 1/sqrt(256) = 0.06, so a pair at 0.8 stays far above unrelated texts of one topic (0.1-0.3).
PROJECTED = 256
_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """The form two texts must share to count as exact duplicates."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(" " if unicodedata.category(ch)[0] in "PS" else ch for ch in text)
    return _SPACE.sub(" ", text).strip()


@dataclass
class Pair:
    """Row ``row`` of ``file`` repeats row ``of_row`` of ``of_file`` (positions are 0-based here)."""

    file: int
    row: int
    of_file: int
    of_row: int
    similarity: float


def find_duplicates(files: list[list[str]], config: AuditConfig) -> list[Pair]:
    """Duplicates inside each file (a later row repeats an earlier one) and from file ``k>0`` into file 0.

    ``files[0]`` is the training data; each later file (the test data) is checked against itself and
    against ``files[0]``, which is what leaks. Every row is reported at most once per file it repeats,
    with its closest match.
    """
    owner = np.concatenate([np.full(len(t), k) for k, t in enumerate(files)])
    position = np.concatenate([np.arange(len(t)) for t in files])
    texts = [t for part in files for t in part]
    keys = [normalise(t) for t in texts]
    best: dict[tuple[int, int], tuple[float, int]] = {}

    def offer(a: int, b: int, similarity: float) -> None:
        """Keep the pair if ``a`` may repeat ``b`` and it beats what ``a`` already has in ``b``'s file."""
        if not _may_repeat(owner, a, b) or not keys[a] or not keys[b]:
            return
        slot = (a, int(owner[b]))
        if slot not in best or similarity > best[slot][0]:
            best[slot] = (similarity, b)

    first: dict[tuple[int, str], int] = {}
    for i, key in enumerate(keys):
        if not key:
            continue
        for k in {int(owner[i]), 0}:
            j = first.get((k, key))
            if j is not None:
                offer(i, j, 1.0)
        first.setdefault((int(owner[i]), key), i)
    for a, b, similarity in _near_pairs(texts, keys, config):
        if keys[a] != keys[b]:
            offer(a, b, similarity)
            offer(b, a, similarity)
    pairs = [Pair(int(owner[a]), int(position[a]), of_file, int(position[b]), round(float(s), 4))
             for (a, of_file), (s, b) in best.items()]
    return sorted(pairs, key=lambda p: (p.file, -p.similarity, p.row))


def _may_repeat(owner: np.ndarray, a: int, b: int) -> bool:
    """Row ``a`` repeats row ``b``: an earlier row of its own file, or any training row (file 0) for a test row."""
    if owner[a] == owner[b]:
        return b < a
    return owner[b] == 0


def _near_pairs(texts: list[str], keys: list[str], config: AuditConfig) -> list[tuple[int, int, float]]:
    """Candidate pairs from the nearest-neighbour index, kept where the exact TF-IDF cosine clears the bar."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_union
    from sklearn.random_projection import SparseRandomProjection

    from ..index import make_index

    live = [i for i, k in enumerate(keys) if k]
    if len(live) < 2:
        return []
    vectorizer = make_union(TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True),
                            TfidfVectorizer(sublinear_tf=True))
    matrix = vectorizer.fit_transform([keys[i] for i in live])
    matrix = _unit_rows(matrix)
    if matrix.shape[1] > PROJECTED:
        projected = SparseRandomProjection(PROJECTED, dense_output=True, random_state=config.seed).fit_transform(matrix)
    else:
        projected = matrix.toarray()
    projected /= np.maximum(np.linalg.norm(projected, axis=1, keepdims=True), 1e-12)
    index = make_index("exact", projected.astype(np.float32))
    out: dict[tuple[int, int], float] = {}
    k = min(NEIGHBOURS + 1, len(live))
    for start in range(0, len(live), 2048):
        block = projected[start:start + 2048].astype(np.float32)
        _, ids = index.search(block, k)
        a = np.repeat(np.arange(start, start + len(block)), k)
        b = ids.ravel()
        keep = a != b
        a, b = np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep])  # each unordered pair once
        if not len(a):
            continue
        exact = np.asarray(matrix[a].multiply(matrix[b]).sum(axis=1)).ravel()
        close = exact >= config.near_duplicate
        for x, y, s in zip(a[close], b[close], exact[close]):
            out[(live[int(x)], live[int(y)])] = float(s)
    return [(a, b, s) for (a, b), s in out.items()]


def _unit_rows(matrix: Any) -> Any:
    from sklearn.preprocessing import normalize

    return normalize(matrix, norm="l2", copy=False)
