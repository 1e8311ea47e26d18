"""Answer questions from a knowledge base, or hand off to a person.

A new question is embedded and matched against every known question; candidates
are grouped by answer (several phrasings of one question share an answer), so the
top-3 are three *different* answers. The assistant answers when the best match is
confident enough and clearly ahead of the runner-up; otherwise it hands off with
suggestions, as Rasa's two-stage fallback does with its threshold and ambiguity
margin. Both numbers are chosen on held-out queries for a target precision (or, with
none given, by leave-one-out over the knowledge base itself) and stored with the index.

The match score mixes the encoder's cosine similarity with a character n-gram TF-IDF
cosine (hybrid dense + sparse retrieval). The lexical half needs no training and
no word segmentation, so it carries languages the encoder reads poorly (the
shipped MiniLM is English-only; Chinese questions share characters, not
subwords) and exact product names; its weight is chosen on the same held-out
queries, 0 when it does not help.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_dir
from ..errors import ConfigError, DataError
from ..model_dir import check_output_dir, read_manifest, write_manifest
from .embed import SentenceEncoder
from .index import VECTORS_FILE, ExactIndex, make_index
from .kb import FaqEntry, normalise_question

LOGGER = logging.getLogger("lmworks")
META_FILE = "assistant.json"
ENTRIES_FILE = "entries.jsonl"
ENCODER_DIR = "encoder"
FORMAT = "lmworks-assistant"
MARGINS = (0.0, 0.01, 0.02, 0.03, 0.05, 0.08)
MAX_CALIBRATION = 3000  # leave-one-out queries sampled from large bases
LEXICAL_WEIGHTS = tuple(round(0.1 * i, 1) for i in range(11))
ANSWER_WEIGHTS = (0.0, 0.25, 0.5, 0.75)
QA_VECTORS_FILE = "qa_vectors.npy"
CANDIDATES = 50  # questions retrieved before grouping by answer


@dataclass
class AssistantConfig:
    """How the assistant is built.

    Attributes
    ----------
    model:
        Encoder name or directory (mean pooling; ``minilm`` is a sentence-embedding model).
    max_length:
        Tokens read per question.
    index:
        ``exact`` (numpy, default) or ``hnsw`` (approximate, extra ``ann``).
    target_precision:
        Precision the answered questions should reach; sets the hand-off threshold.
    threshold, margin:
        Fixed values instead of calibrated ones.
    intent_model:
        Directory of an lmworks intent classifier (``lmworks train`` on question/intent);
        its prediction is returned with every answer and re-ranks candidates.
    intent_weight:
        Weight of the intent model's probability when re-ranking (with an intent model).
    answer_weight:
        Weight of the question+answer embedding in the dense score
        ``(1 - a) * cos(query, question) + a * cos(query, question + answer)``; the answer
        often names what a paraphrase asks about. ``None`` chooses it on calibration queries.
    lexical_weight:
        Weight of character n-gram TF-IDF similarity in the match score
        ``(1 - w) * dense + w * lexical``; ``None`` chooses it on the calibration queries.
    """

    model: str = "minilm"
    max_length: int = 128
    index: str = "exact"
    target_precision: float = 0.9
    threshold: float | None = None
    margin: float | None = None
    intent_model: str | None = None
    intent_weight: float = 0.1
    answer_weight: float | None = None
    lexical_weight: float | None = None

    def __post_init__(self) -> None:
        if not 0 < self.target_precision <= 1:
            raise ConfigError(f"target_precision must be in (0, 1], got {self.target_precision}")


class Assistant:
    """A question index with a calibrated hand-off rule. Build with :meth:`build`."""

    def __init__(self, entries: list[FaqEntry], encoder: SentenceEncoder, question_vectors: np.ndarray,
                 qa_vectors: np.ndarray, config: AssistantConfig) -> None:
        self.entries = entries
        self.encoder = encoder
        self.config = config
        self.question_vectors, self.qa_vectors = question_vectors, qa_vectors
        self.answer_weight = config.answer_weight if config.answer_weight is not None else 0.5
        self.vectors: np.ndarray
        self.index: ExactIndex
        self._set_answer_weight(self.answer_weight)
        answers: dict[str, int] = {}
        self.answer_ids = np.asarray([answers.setdefault(normalise_question(e.answer), len(answers)) for e in entries])
        self._by_question = {normalise_question(e.question): i for i, e in enumerate(entries)}
        self.threshold = 0.0
        self.margin = 0.0
        self.calibration: dict[str, Any] = {}
        self.intent_model: Any = None
        if config.intent_model:
            from ..classifier import TextClassifier

            self.intent_model = TextClassifier.load(config.intent_model)
        self.tuning: dict[str, Any] | None = None
        self.lexical_weight = config.lexical_weight if config.lexical_weight is not None else 0.0
        self._fit_lexical()

    def _set_answer_weight(self, weight: float, index: ExactIndex | None = None) -> None:
        """Dense scores are linear in the entry vectors, so the mix is one combined matrix."""
        self.answer_weight = weight
        self.vectors = ((1 - weight) * self.question_vectors + weight * self.qa_vectors).astype(np.float32)
        self.index = index if index is not None else make_index(self.config.index, self.vectors)

    def _fit_lexical(self) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.lexical = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True, lowercase=True)
        self.lexical_matrix = self.lexical.fit_transform([e.question for e in self.entries])

    # -- building ------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        entries: list[FaqEntry],
        config: AssistantConfig | None = None,
        calibration: Sequence[tuple[str, str | None]] | None = None,
        encoder: SentenceEncoder | None = None,
    ) -> Assistant:
        """Embed the questions and calibrate the hand-off rule."""
        config = config or AssistantConfig()
        if not entries:
            raise DataError("the knowledge base is empty")
        encoder = encoder or SentenceEncoder(config.model, max_length=config.max_length)
        self = cls(entries, encoder, *_embed_entries(encoder, entries), config)
        self.calibrate(calibration)
        return self

    def reindex(self) -> None:
        """Re-embed every entry (after the encoder changed); call :meth:`calibrate` next."""
        self.question_vectors, self.qa_vectors = _embed_entries(self.encoder, self.entries)
        self._set_answer_weight(self.answer_weight)

    # -- ranking -------------------------------------------------------------------------
    def rank(self, queries: Sequence[str], k: int = 3, *, exclude_self: bool = False,
             vectors: np.ndarray | None = None) -> list[list[tuple[int, float]]]:
        """Per query, up to ``k`` ``(entry index, score)`` with distinct answers, best first.

        ``exclude_self`` drops each query's own row (leave-one-out; queries must then
        be the knowledge-base questions in order).
        """
        if vectors is None:
            vectors = self.encoder.encode(list(queries), what="queries")
        n_candidates = min(len(self.entries), CANDIDATES + (1 if exclude_self else 0))
        scores, ids = self._search(vectors, list(queries), n_candidates)
        intent_bonus = self._intent_bonus(queries) if self.intent_model is not None else None
        out = []
        for row, (s_row, i_row) in enumerate(zip(scores, ids)):
            bonus = (lambda entry, r=row: intent_bonus(r, entry)) if intent_bonus is not None else None
            out.append(self._by_answer(s_row, i_row, k, skip=row if exclude_self else None, bonus=bonus))
        return out

    def _by_answer(self, scores: np.ndarray, entries: np.ndarray, k: int, *, skip: int | None = None,
                   bonus=None) -> list[tuple[int, float]]:
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

    def _search(self, vectors: np.ndarray, texts: list[str], k: int,
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

    def _intent_bonus(self, queries: Sequence[str]):
        proba = self.intent_model.predict_proba(list(queries))
        column = {label: j for j, label in enumerate(self.intent_model.labels_)}
        weight = self.config.intent_weight

        def bonus(row: int, entry: int) -> float:
            j = column.get(self.entries[entry].intent)
            return weight * float(proba[row, j]) if j is not None else 0.0

        return bonus

    def decide(self, ranked: list[tuple[int, float]]) -> tuple[bool, str | None]:
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

    def ask(self, question: str) -> dict[str, Any]:
        """The answer (or a hand-off) for one question."""
        return self.ask_many([question])[0]

    def ask_many(self, questions: Sequence[str]) -> list[dict[str, Any]]:
        """Answers for several questions (one batched encoder pass)."""
        for i, q in enumerate(questions):
            if not isinstance(q, str) or not q.strip():
                raise DataError(f"question {i + 1} is empty")
        results = []
        intents = self.intent_model.predict(list(questions)) if self.intent_model is not None else None
        for n, ranked in enumerate(self.rank(questions)):
            handoff, reason = self.decide(ranked)
            options = [self._option(entry, score) for entry, score in ranked]
            top = options[0] if options else None
            results.append({
                "handoff": handoff,
                "reason": reason,
                "answer": None if handoff or top is None else top["answer"],
                "matched_question": top["question"] if top else None,
                "intent": top["intent"] if top else None,
                "answer_id": top["id"] if top else None,
                "confidence": round(top["score"], 4) if top else 0.0,
                "alternatives": options,
                "suggestions": options if handoff else [],
                "predicted_intent": intents[n] if intents is not None else None,
            })
        return results

    def _option(self, entry: int, score: float) -> dict[str, Any]:
        e = self.entries[entry]
        return {"id": entry, "question": e.question, "answer": e.answer, "intent": e.intent,
                "score": round(float(score), 4)}

    # -- calibration and evaluation ------------------------------------------------------
    def expected_answer(self, question: str | None, where: str = "") -> int | None:
        """Answer id of a knowledge-base question (``None``: out of scope)."""
        if question is None:
            return None
        entry = self._by_question.get(normalise_question(question))
        if entry is None:
            raise DataError(f"{where}expected_question {question!r} is not in the knowledge base")
        return int(self.answer_ids[entry])

    def _outcomes(self, queries: Sequence[tuple[str, str | None]] | None, vectors: np.ndarray | None = None,
                  with_top3: bool = False) -> tuple[np.ndarray, ...]:
        """Top-1 answer, scores of the first two answers and expected answer per query.

        ``vectors`` are the queries' embeddings, when the caller has them already.
        """
        if queries:
            ranked = self.rank([q for q, _ in queries], vectors=vectors)
            expected = [self.expected_answer(e, f"query {i + 1}: ") for i, (_, e) in enumerate(queries)]
        else:
            ranked, expected = self._leave_one_out()
        top = np.asarray([int(self.answer_ids[r[0][0]]) if r else -1 for r in ranked])
        s1 = np.asarray([r[0][1] if r else -1.0 for r in ranked])
        s2 = np.asarray([r[1][1] if len(r) > 1 else -1.0 for r in ranked])
        exp = np.asarray([-1 if e is None else e for e in expected])
        if with_top3:
            top3 = np.asarray([e in [int(self.answer_ids[x]) for x, _ in r] for r, e in zip(ranked, expected)])
            return top, s1, s2, exp, top3
        return top, s1, s2, exp

    def _leave_one_out(self) -> tuple[list[list[tuple[int, float]]], list[int | None]]:
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
            scores, ids = self._search(self.question_vectors[chunk], texts, min(n, CANDIDATES + 1))
            for row, s_row, i_row in zip(chunk.tolist(), scores, ids):
                ranked_all.append(self._by_answer(s_row, i_row, 3, skip=row))
        expected = [int(self.answer_ids[r]) if counts[self.answer_ids[r]] > 1 else None for r in rows.tolist()]
        return ranked_all, expected

    def choose_weights(self, queries: Sequence[tuple[str, str | None]] | None,
                       vectors: np.ndarray | None = None) -> tuple[float, float]:
        """Answer and lexical weights with the best top-1 (then top-3) on the calibration queries.

        Ties go to the simpler model (smaller weights). Fixed weights in the config are kept.
        """
        answer_grid = ANSWER_WEIGHTS if self.config.answer_weight is None and self.config.index == "exact" \
            else (self.answer_weight,)
        lexical_grid = LEXICAL_WEIGHTS if self.config.lexical_weight is None else (self.config.lexical_weight,)
        best = None
        for a in answer_grid:
            self._set_answer_weight(a)
            for w in lexical_grid:
                self.lexical_weight = w
                top, _, _, exp, top3 = self._outcomes(queries, vectors, with_top3=True)
                answerable = exp >= 0
                if not answerable.any():
                    break
                key = (float((top == exp)[answerable].mean()), float(top3[answerable].mean()), -w, -a)
                if best is None or key > best[0]:
                    best = (key, a, w)
        if best is None:  # no answerable calibration query: keep the documented defaults
            a = self.config.answer_weight if self.config.answer_weight is not None else 0.5
            w = self.config.lexical_weight if self.config.lexical_weight is not None else 0.0
        else:
            a, w = best[1], best[2]
        self._set_answer_weight(a)
        self.lexical_weight = w
        return a, w

    def calibrate(self, queries: Sequence[tuple[str, str | None]] | None = None) -> dict[str, Any]:
        """Choose lexical weight, threshold and margin for ``config.target_precision``; store the report."""
        # the weights and the rule are chosen on many rankings of the same queries: embed them once
        vectors = self.encoder.encode([q for q, _ in queries], what="queries") if queries else None
        self.choose_weights(queries, vectors)
        top, s1, s2, exp = self._outcomes(queries, vectors)
        answerable = exp >= 0
        target = self.config.target_precision
        if not queries and (~answerable).any() and self.config.threshold is None:
            return self._calibrate_leave_one_out(s1, answerable, target)
        thresholds = np.unique(np.concatenate([[-1.0], np.round(s1, 4)]))
        margins = (self.config.margin,) if self.config.margin is not None else MARGINS
        if self.config.threshold is not None:
            thresholds = np.asarray([self.config.threshold])
        best = None
        for m in margins:
            clear = (s1 - s2) >= m
            for t in thresholds:
                answered = (s1 >= t) & clear
                n_answered = int(answered.sum())
                correct = int((answered & (top == exp) & answerable).sum())
                precision = correct / n_answered if n_answered else 1.0
                coverage = n_answered / max(1, len(s1))
                key = (precision >= target, coverage if precision >= target else precision, -m, -t)
                if best is None or key > best[0]:
                    best = (key, float(t), float(m), precision, coverage)
        assert best is not None
        _, self.threshold, self.margin, precision, coverage = best
        if not answerable.any():
            LOGGER.warning("no answerable calibration query (leave-one-out needs questions that share an answer); "
                           "every question will be handed off until you calibrate with held-out queries "
                           "(--calibration) or set --threshold")
        elif precision < target:
            LOGGER.warning("no threshold reaches precision %.2f on the calibration queries (best %.3f); "
                           "the assistant will hand off often", target, precision)
        self.calibration = {
            "source": "queries" if queries else "leave-one-out over the knowledge base",
            "n": int(len(s1)), "answerable": int(answerable.sum()), "out_of_scope": int((~answerable).sum()),
            "target_precision": target, "threshold": round(self.threshold, 4), "margin": self.margin,
            "lexical_weight": self.lexical_weight, "answer_weight": self.answer_weight,
            "precision": round(precision, 4), "answered_fraction": round(coverage, 4),
        }
        return self.calibration

    def _calibrate_leave_one_out(self, s1: np.ndarray, answerable: np.ndarray, target: float) -> dict[str, Any]:
        """Threshold from knowledge-base questions that play "out of scope".

        A question whose answer no other question shares, asked against the rest of the
        base, can only be matched to a wrong answer: its best score is what an in-domain
        out-of-scope question scores. The threshold is the ``target`` quantile of those
        scores, so about ``1 - target`` of such questions would be answered. Questions
        that share an answer are not used as positives: a shared answer ("Good.") does
        not make two questions paraphrases.
        """
        negatives = s1[~answerable]
        self.threshold = float(np.quantile(negatives, target))
        self.margin = self.config.margin if self.config.margin is not None else 0.0
        self.calibration = {
            "source": "leave-one-out over the knowledge base (no held-out queries given)",
            "rule": "threshold = target_precision quantile of the best wrong-answer score of questions "
                    "whose answer no other question shares",
            "n": int(len(s1)), "out_of_scope_like": int(len(negatives)), "target_precision": target,
            "threshold": round(self.threshold, 4), "margin": self.margin,
            "lexical_weight": self.lexical_weight, "answer_weight": self.answer_weight,
        }
        return self.calibration

    def evaluate(self, queries: Sequence[tuple[str, str | None]]) -> dict[str, Any]:
        """Top-1/top-3 retrieval, hand-off precision/recall and a coverage-accuracy curve."""
        ranked = self.rank([q for q, _ in queries])
        expected = [self.expected_answer(e, f"query {i + 1}: ") for i, (_, e) in enumerate(queries)]
        answerable = np.asarray([e is not None for e in expected])
        ids = [[int(self.answer_ids[entry]) for entry, _ in r] for r in ranked]
        top1 = np.asarray([bool(r) and r[0] == e for r, e in zip(ids, expected)])
        top3 = np.asarray([e in r[:3] for r, e in zip(ids, expected)])
        decisions = [self.decide(r)[0] for r in ranked]
        handoff = np.asarray(decisions)
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
            "threshold": self.threshold, "margin": self.margin, "lexical_weight": self.lexical_weight,
            "answer_weight": self.answer_weight,
        }
        curve = []
        for t in np.unique(np.quantile(s1, np.linspace(0, 1, 21))):
            answered = s1 >= t
            if answered.any():
                curve.append({"threshold": round(float(t), 4), "coverage": round(float(answered.mean()), 4),
                              "accuracy": round(float((answered & answerable & top1).sum() / answered.sum()), 4)})
        metrics["coverage_accuracy_curve"] = curve
        return metrics

    # -- persistence ---------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write the index directory atomically (entries, vectors, settings, tuned encoder)."""
        directory = Path(directory)
        check_output_dir(directory, meta_file=META_FILE)
        with atomic_dir(directory) as tmp:
            with open(tmp / ENTRIES_FILE, "w", encoding="utf-8") as fh:
                for e in self.entries:
                    fh.write(json.dumps(asdict(e), ensure_ascii=False) + "\n")
            np.save(tmp / VECTORS_FILE, self.question_vectors)
            np.save(tmp / QA_VECTORS_FILE, self.qa_vectors)
            self.index.save(tmp)
            encoder = str(self.encoder.path)
            if self.tuning is not None:
                self.encoder.save(tmp / ENCODER_DIR)
                encoder = ENCODER_DIR
            write_manifest(tmp, META_FILE, {
                "format": FORMAT, "config": asdict(self.config), "encoder": encoder,
                "threshold": self.threshold, "margin": self.margin, "lexical_weight": self.lexical_weight,
                "answer_weight": self.answer_weight, "calibration": self.calibration,
                "tuning": self.tuning, "n_entries": len(self.entries)})
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> Assistant:
        """Load and verify an index directory."""
        directory = Path(directory)
        meta = read_manifest(directory, META_FILE, FORMAT, "an assistant index")
        known = {f.name for f in fields(AssistantConfig)}
        config = AssistantConfig(**{k: v for k, v in meta["config"].items() if k in known})
        with open(directory / ENTRIES_FILE, encoding="utf-8") as fh:
            entries = [FaqEntry(**json.loads(line)) for line in fh]
        question_vectors = np.load(directory / VECTORS_FILE)
        qa_vectors = np.load(directory / QA_VECTORS_FILE)
        encoder_path = directory / meta["encoder"] if meta["encoder"] == ENCODER_DIR else meta["encoder"]
        encoder = SentenceEncoder(encoder_path, max_length=config.max_length)
        config.answer_weight = float(meta.get("answer_weight", 0.0))  # as calibrated at build time
        self = cls(entries, encoder, question_vectors, qa_vectors, config)
        from .index import INDEXES

        index_class: Any = INDEXES[config.index]
        self._set_answer_weight(self.answer_weight, index_class.load(directory, self.vectors))
        self.threshold, self.margin = float(meta["threshold"]), float(meta["margin"])
        self.lexical_weight = float(meta.get("lexical_weight", 0.0))
        self.calibration, self.tuning = meta.get("calibration", {}), meta.get("tuning")
        return self


def _embed_entries(encoder: SentenceEncoder, entries: list[FaqEntry]) -> tuple[np.ndarray, np.ndarray]:
    """Question vectors and question+answer vectors of every entry."""
    questions = encoder.encode([e.question for e in entries], what="knowledge-base questions")
    with_answers = encoder.encode([f"{e.question} {e.answer}" for e in entries], what="question+answer texts")
    return questions, with_answers
