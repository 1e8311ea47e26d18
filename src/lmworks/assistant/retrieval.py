"""Retrieval: rank knowledge-base entries for a question, one candidate per distinct answer.

A new question is embedded and matched against every known question; candidates
are grouped by answer (several phrasings of one question share an answer), so the
top-3 are three *different* answers.

The match score mixes the encoder's cosine similarity with a character n-gram TF-IDF
cosine (hybrid dense + sparse retrieval). The lexical half needs no training and
no word segmentation, so it carries languages the encoder reads poorly (the
shipped MiniLM is English-only; Chinese questions share characters, not
subwords) and exact product names. The dense half itself mixes the question's
vector with the question+answer vector (the answer often names what a paraphrase
asks about). Both weights are chosen on held-out queries (:mod:`.calibration`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..embed import SentenceEncoder
from ..errors import DataError
from ..index import ExactIndex, make_index
from .kb import FaqEntry, normalise_question

CANDIDATES = 50  # questions retrieved before grouping by answer
MAX_CALIBRATION = 3000  # leave-one-out queries sampled from large bases

#: One query's candidates: ``(entry index, score)``, distinct answers, best first.
Ranked = list[tuple[int, float]]


def embed_entries(encoder: SentenceEncoder, entries: Sequence[FaqEntry]) -> tuple[np.ndarray, np.ndarray]:
    """Question vectors and question+answer vectors of every entry."""
    questions = encoder.encode([e.question for e in entries], what="knowledge-base questions")
    with_answers = encoder.encode([f"{e.question} {e.answer}" for e in entries], what="question+answer texts")
    return questions, with_answers


class Retriever:
    """Entries, their vectors and lexical features, and the ranking over them.

    Parameters
    ----------
    entries, encoder:
        The knowledge base and the encoder that embedded it.
    question_vectors, qa_vectors:
        Unit vectors of each entry's question, and of question + answer.
    index_kind:
        ``exact`` or ``hnsw`` (:mod:`.index`).
    answer_weight, lexical_weight:
        The mixing weights (see the module docstring).
    intent_model, intent_weight:
        An lmworks intent classifier whose probability for an entry's intent is added,
        times ``intent_weight``, to that entry's score.
    """

    def __init__(self, entries: list[FaqEntry], encoder: SentenceEncoder, question_vectors: np.ndarray,
                 qa_vectors: np.ndarray, *, index_kind: str = "exact", answer_weight: float = 0.5,
                 lexical_weight: float = 0.0, intent_model: Any = None, intent_weight: float = 0.1) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.entries, self.encoder = entries, encoder
        self.question_vectors, self.qa_vectors = question_vectors, qa_vectors
        self.index_kind = index_kind
        self.intent_model, self.intent_weight = intent_model, intent_weight
        self.vectors: np.ndarray
        self.index: ExactIndex
        self.set_answer_weight(answer_weight)
        self.lexical_weight = lexical_weight
        answers: dict[str, int] = {}
        self.answer_ids = np.asarray([answers.setdefault(normalise_question(e.answer), len(answers)) for e in entries])
        self._by_question = {normalise_question(e.question): i for i, e in enumerate(entries)}
        self.lexical = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True, lowercase=True)
        self.lexical_matrix = self.lexical.fit_transform([e.question for e in entries])

    def set_answer_weight(self, weight: float, index: ExactIndex | None = None) -> None:
        """Dense scores are linear in the entry vectors, so the mix is one combined matrix."""
        self.answer_weight = weight
        self.vectors = ((1 - weight) * self.question_vectors + weight * self.qa_vectors).astype(np.float32)
        self.index = index if index is not None else make_index(self.index_kind, self.vectors)

    def reindex(self) -> None:
        """Re-embed every entry (after the encoder changed)."""
        self.question_vectors, self.qa_vectors = embed_entries(self.encoder, self.entries)
        self.set_answer_weight(self.answer_weight)

    def embed(self, queries: Sequence[str]) -> np.ndarray:
        """Query vectors (to rank the same queries several times without re-embedding them)."""
        return self.encoder.encode(list(queries), what="queries")

    # -- ranking -------------------------------------------------------------------------
    def rank(self, queries: Sequence[str], k: int = 3, *, exclude_self: bool = False,
             vectors: np.ndarray | None = None) -> list[Ranked]:
        """Per query, up to ``k`` ``(entry index, score)`` with distinct answers, best first.

        ``exclude_self`` drops each query's own row (leave-one-out; queries must then
        be the knowledge-base questions in order).
        """
        if vectors is None:
            vectors = self.embed(queries)
        n_candidates = min(len(self.entries), CANDIDATES + (1 if exclude_self else 0))
        scores, ids = self.search(vectors, list(queries), n_candidates)
        intent_bonus = self._intent_bonus(queries) if self.intent_model is not None else None
        out = []
        for row, (s_row, i_row) in enumerate(zip(scores, ids)):
            bonus = (lambda entry, r=row: intent_bonus(r, entry)) if intent_bonus is not None else None
            out.append(self.by_answer(s_row, i_row, k, skip=row if exclude_self else None, bonus=bonus))
        return out

    def by_answer(self, scores: np.ndarray, entries: np.ndarray, k: int, *, skip: int | None = None,
                  bonus: Callable[[int], float] | None = None) -> Ranked:
        """Best ``(entry, score)`` per distinct answer, top ``k``; ``skip`` leaves one entry out."""
        best: dict[int, tuple[int, float]] = {}
        for score, entry in zip(scores.tolist(), entries.tolist()):
            if entry == skip:
                continue
            if bonus is not None:
                score += bonus(entry)
            answer = int(self.answer_ids[entry])
            if answer not in best or score > best[answer][1]:
                best[answer] = (entry, score)
        return sorted(best.values(), key=lambda x: -x[1])[:k]

    def search(self, vectors: np.ndarray, texts: list[str], k: int,
               weight: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` entries by ``(1 - w) * dense + w * lexical`` similarity."""
        w = self.lexical_weight if weight is None else weight
        if w <= 0:
            return self.index.search(vectors, k)
        lexical = (self.lexical.transform(texts) @ self.lexical_matrix.T).toarray()
        if self.index.kind == "exact":
            combined = (1 - w) * (vectors @ self.vectors.T) + w * lexical
        else:  # approximate: re-score the dense candidates and the lexical ones
            d_scores, d_ids = self.index.search(vectors, k)
            combined = np.full(lexical.shape, -np.inf, dtype=np.float64)
            lex_top = np.argsort(-lexical, axis=1)[:, :k]
            for row in range(len(texts)):
                cand = np.union1d(d_ids[row], lex_top[row])
                combined[row, cand] = (1 - w) * (self.vectors[cand] @ vectors[row]) + w * lexical[row, cand]
        top = np.argsort(-combined, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(combined, top, axis=1), top

    def entry_scores(self, queries: Sequence[str], entries: Sequence[int]) -> np.ndarray:
        """The match score of query ``i`` against entry ``entries[i]``, as :meth:`rank` computes it.

        What an explanation of a match perturbs: the same dense, lexical and intent terms,
        for one chosen entry instead of the best ones.
        """
        rows = np.asarray(entries, dtype=np.int64)
        dense = np.einsum("ij,ij->i", self.embed(queries), self.vectors[rows])
        w = self.lexical_weight
        score = dense if w <= 0 else (1 - w) * dense + w * np.asarray(
            (self.lexical.transform(list(queries)).multiply(self.lexical_matrix[rows])).sum(axis=1)).ravel()
        if self.intent_model is not None:
            bonus = self._intent_bonus(queries)
            score = score + np.asarray([bonus(i, int(e)) for i, e in enumerate(rows)])
        return np.asarray(score, dtype=np.float64)

    def _intent_bonus(self, queries: Sequence[str]) -> Callable[[int, int], float]:
        proba = self.intent_model.predict_proba(list(queries))
        column = {label: j for j, label in enumerate(self.intent_model.labels_)}
        weight = self.intent_weight

        def bonus(row: int, entry: int) -> float:
            j = column.get(self.entries[entry].intent)
            return weight * float(proba[row, j]) if j is not None else 0.0

        return bonus

    # -- what a query should find ------------------------------------------------------------
    def expected_answer(self, question: str | None, where: str = "") -> int | None:
        """Answer id of a knowledge-base question (``None``: out of scope)."""
        if question is None:
            return None
        entry = self._by_question.get(normalise_question(question))
        if entry is None:
            raise DataError(f"{where}expected_question {question!r} is not in the knowledge base")
        return int(self.answer_ids[entry])

    def leave_one_out(self) -> tuple[list[Ranked], list[int | None]]:
        """Each question asked against the others: answerable if another question shares its answer."""
        n = len(self.entries)
        rows = np.arange(n)
        if n > MAX_CALIBRATION:
            rows = np.sort(np.random.default_rng(0).choice(n, MAX_CALIBRATION, replace=False))
        counts = np.bincount(self.answer_ids)
        ranked_all = []
        for start in range(0, len(rows), 512):
            chunk = rows[start:start + 512]
            texts = [self.entries[i].question for i in chunk.tolist()]
            scores, ids = self.search(self.question_vectors[chunk], texts, min(n, CANDIDATES + 1))
            for row, s_row, i_row in zip(chunk.tolist(), scores, ids):
                ranked_all.append(self.by_answer(s_row, i_row, 3, skip=row))
        expected = [int(self.answer_ids[r]) if counts[self.answer_ids[r]] > 1 else None for r in rows.tolist()]
        return ranked_all, expected
