"""Deciding: answer or hand off, and choosing that rule (and the retrieval weights) on held-out queries.

The assistant answers when the best match is confident enough and clearly ahead of
the runner-up; otherwise it hands off with suggestions, as Rasa's two-stage fallback
does with its threshold and ambiguity margin. Both numbers are chosen on held-out
queries for a target precision (or, with none given, by leave-one-out over the
knowledge base itself); so are the retrieval's mixing weights, 0 when mixing does
not help.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .retrieval import Ranked, Retriever

LOGGER = logging.getLogger("lmworks")
MARGINS = (0.0, 0.01, 0.02, 0.03, 0.05, 0.08)
LEXICAL_WEIGHTS = tuple(round(0.1 * i, 1) for i in range(11))
ANSWER_WEIGHTS = (0.0, 0.25, 0.5, 0.75)

#: ``(query, expected knowledge-base question or None for "should hand off")``
Query = tuple[str, str | None]


@dataclass
class HandoffRule:
    """Answer when the best score reaches ``threshold`` and leads the runner-up by ``margin``."""

    threshold: float = 0.0
    margin: float = 0.0

    def decide(self, ranked: Ranked) -> tuple[bool, str | None]:
        """``(handoff, reason)`` for one query's ranked candidates."""
        if not ranked:
            return True, "empty_knowledge_base"
        top = ranked[0][1]
        second = ranked[1][1] if len(ranked) > 1 else -1.0
        if top < self.threshold:
            return True, "low_confidence"
        if top - second < self.margin:
            return True, "ambiguous"
        return False, None


def outcomes(retriever: Retriever, queries: Sequence[Query] | None, vectors: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per query: top-1 answer, scores of the first two answers, expected answer (-1: none), top-3 hit.

    Without ``queries``, leave-one-out over the knowledge base. ``vectors`` are the
    queries' embeddings, when the caller has them already.
    """
    if queries:
        ranked = retriever.rank([q for q, _ in queries], vectors=vectors)
        expected = [retriever.expected_answer(e, f"query {i + 1}: ") for i, (_, e) in enumerate(queries)]
    else:
        ranked, expected = retriever.leave_one_out()
    answers = retriever.answer_ids
    top = np.asarray([int(answers[r[0][0]]) if r else -1 for r in ranked])
    s1 = np.asarray([r[0][1] if r else -1.0 for r in ranked])
    s2 = np.asarray([r[1][1] if len(r) > 1 else -1.0 for r in ranked])
    exp = np.asarray([-1 if e is None else e for e in expected])
    top3 = np.asarray([e in [int(answers[x]) for x, _ in r] for r, e in zip(ranked, expected)])
    return top, s1, s2, exp, top3


def choose_weights(retriever: Retriever, queries: Sequence[Query] | None, vectors: np.ndarray | None = None, *,
                   answer_weight: float | None = None, lexical_weight: float | None = None) -> tuple[float, float]:
    """Answer and lexical weights with the best top-1 (then top-3) on the calibration queries; set them.

    Ties go to the simpler model (smaller weights). A fixed weight (not ``None``) is kept;
    the answer weight is also kept with an approximate index, whose graph is built once.
    """
    answer_grid = ANSWER_WEIGHTS if answer_weight is None and retriever.index_kind == "exact" \
        else (retriever.answer_weight,)
    lexical_grid = LEXICAL_WEIGHTS if lexical_weight is None else (lexical_weight,)
    best = None
    for a in answer_grid:
        retriever.set_answer_weight(a)
        for w in lexical_grid:
            retriever.lexical_weight = w
            top, _, _, exp, top3 = outcomes(retriever, queries, vectors)
            answerable = exp >= 0
            if not answerable.any():
                break
            key = (float((top == exp)[answerable].mean()), float(top3[answerable].mean()), -w, -a)
            if best is None or key > best[0]:
                best = (key, a, w)
    if best is None:  # no answerable calibration query: keep the documented defaults
        a = answer_weight if answer_weight is not None else 0.5
        w = lexical_weight if lexical_weight is not None else 0.0
    else:
        a, w = best[1], best[2]
    retriever.set_answer_weight(a)
    retriever.lexical_weight = w
    return a, w


def choose_rule(s1: np.ndarray, s2: np.ndarray, correct: np.ndarray, *, target: float,
                threshold: float | None = None, margin: float | None = None) -> tuple[HandoffRule, float, float]:
    """The rule answering the most queries at precision ``target`` (else the most precise one).

    ``correct`` says which queries the top answer gets right. Returns the rule, its
    precision and the share of queries it answers. Fixed ``threshold``/``margin`` are kept.
    """
    thresholds = np.asarray([threshold]) if threshold is not None else \
        np.unique(np.concatenate([[-1.0], np.round(s1, 4)]))
    margins = (margin,) if margin is not None else MARGINS
    best = None
    for m in margins:
        clear = (s1 - s2) >= m
        for t in thresholds:
            answered = (s1 >= t) & clear
            n_answered = int(answered.sum())
            precision = int((answered & correct).sum()) / n_answered if n_answered else 1.0
            coverage = n_answered / max(1, len(s1))
            key = (precision >= target, coverage if precision >= target else precision, -m, -t)
            if best is None or key > best[0]:
                best = (key, float(t), float(m), precision, coverage)
    assert best is not None
    return HandoffRule(best[1], best[2]), best[3], best[4]


def leave_one_out_threshold(s1: np.ndarray, answerable: np.ndarray, target: float) -> float:
    """Threshold from knowledge-base questions that play "out of scope".

    A question whose answer no other question shares, asked against the rest of the
    base, can only be matched to a wrong answer: its best score is what an in-domain
    out-of-scope question scores. The threshold is the ``target`` quantile of those
    scores, so about ``1 - target`` of such questions would be answered. Questions
    that share an answer are not used as positives: a shared answer ("Good.") does
    not make two questions paraphrases.
    """
    return float(np.quantile(s1[~answerable], target))


def evaluate(retriever: Retriever, rule: HandoffRule, queries: Sequence[Query]) -> dict[str, Any]:
    """Top-1/top-3 retrieval, hand-off precision/recall and a coverage-accuracy curve."""
    ranked = retriever.rank([q for q, _ in queries])
    expected = [retriever.expected_answer(e, f"query {i + 1}: ") for i, (_, e) in enumerate(queries)]
    answerable = np.asarray([e is not None for e in expected])
    ids = [[int(retriever.answer_ids[entry]) for entry, _ in r] for r in ranked]
    top1 = np.asarray([bool(r) and r[0] == e for r, e in zip(ids, expected)])
    top3 = np.asarray([e in r[:3] for r, e in zip(ids, expected)])
    handoff = np.asarray([rule.decide(r)[0] for r in ranked])
    s1 = np.asarray([r[0][1] if r else -1.0 for r in ranked])
    n_ans, n_oos = int(answerable.sum()), int((~answerable).sum())
    answered_ok = ~handoff & answerable & top1
    metrics: dict[str, Any] = {
        "n": len(queries), "answerable": n_ans, "out_of_scope": n_oos,
        "top1_accuracy": float(top1[answerable].mean()) if n_ans else None,
        "top3_accuracy": float(top3[answerable].mean()) if n_ans else None,
        "answered_fraction_of_answerable": float((~handoff[answerable]).mean()) if n_ans else None,
        "accuracy_when_answered": float(answered_ok.sum() / max(1, (~handoff).sum())),
        "handoff_recall_out_of_scope": float(handoff[~answerable].mean()) if n_oos else None,
        "handoff_precision": float((handoff & ~answerable).sum() / handoff.sum()) if handoff.any() else None,
        "threshold": rule.threshold, "margin": rule.margin, "lexical_weight": retriever.lexical_weight,
        "answer_weight": retriever.answer_weight,
    }
    metrics["coverage_accuracy_curve"] = coverage_accuracy_curve(s1, answerable & top1)
    return metrics


def coverage_accuracy_curve(s1: np.ndarray, correct: np.ndarray) -> list[dict[str, float]]:
    """Accuracy of the answered queries as the threshold rises through the score quantiles."""
    curve = []
    for t in np.unique(np.quantile(s1, np.linspace(0, 1, 21))):
        answered = s1 >= t
        if answered.any():
            curve.append({"threshold": round(float(t), 4), "coverage": round(float(answered.mean()), 4),
                          "accuracy": round(float((answered & correct).sum() / answered.sum()), 4)})
    return curve
