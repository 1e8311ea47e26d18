"""Answer questions from a knowledge base, or hand off to a person.

The :class:`Assistant` puts three parts together: retrieval (:mod:`.retrieval`: which
known questions match, one per answer), the decision (:mod:`.calibration`: answer
only when confident and unambiguous, with the rule chosen for a target precision on
held-out queries) and its directory (:mod:`.storage`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..embed import SentenceEncoder
from ..errors import ConfigError, DataError
from . import calibration, storage
from .calibration import HandoffRule, Query
from .kb import FaqEntry
from .retrieval import Retriever, embed_entries

LOGGER = logging.getLogger("lmworks")


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
        self.config = config
        intent_model = None
        if config.intent_model:
            from ..classifier import TextClassifier

            intent_model = TextClassifier.load(config.intent_model)
        self.retriever = Retriever(
            entries, encoder, question_vectors, qa_vectors, index_kind=config.index,
            answer_weight=config.answer_weight if config.answer_weight is not None else 0.5,
            lexical_weight=config.lexical_weight if config.lexical_weight is not None else 0.0,
            intent_model=intent_model, intent_weight=config.intent_weight,
        )
        self.rule = HandoffRule()
        self.calibration: dict[str, Any] = {}
        self.tuning: dict[str, Any] | None = None

    # -- what the parts hold ---------------------------------------------------------------
    @property
    def entries(self) -> list[FaqEntry]:
        """The knowledge base."""
        return self.retriever.entries

    @property
    def encoder(self) -> SentenceEncoder:
        """The sentence encoder (tuning changes it in place)."""
        return self.retriever.encoder

    @property
    def answer_ids(self) -> np.ndarray:
        """Per entry, the id of its (normalised) answer: entries sharing an answer share an id."""
        return self.retriever.answer_ids

    @property
    def intent_model(self) -> Any:
        """The intent classifier that re-ranks candidates (``None`` without one)."""
        return self.retriever.intent_model

    @property
    def threshold(self) -> float:
        """The hand-off rule's confidence threshold."""
        return self.rule.threshold

    @property
    def margin(self) -> float:
        """The hand-off rule's ambiguity margin."""
        return self.rule.margin

    @property
    def lexical_weight(self) -> float:
        """Weight of the character n-gram similarity in the match score."""
        return self.retriever.lexical_weight

    @property
    def answer_weight(self) -> float:
        """Weight of the question+answer embedding in the dense score."""
        return self.retriever.answer_weight

    # -- building ------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        entries: list[FaqEntry],
        config: AssistantConfig | None = None,
        calibration_queries: Sequence[Query] | None = None,
        encoder: SentenceEncoder | None = None,
    ) -> Assistant:
        """Embed the questions and calibrate the hand-off rule."""
        config = config or AssistantConfig()
        if not entries:
            raise DataError("the knowledge base is empty")
        encoder = encoder or SentenceEncoder(config.model, max_length=config.max_length)
        self = cls(entries, encoder, *embed_entries(encoder, entries), config)
        self.calibrate(calibration_queries)
        return self

    def reindex(self) -> None:
        """Re-embed every entry (after the encoder changed); call :meth:`calibrate` next."""
        self.retriever.reindex()

    # -- answering -----------------------------------------------------------------------
    def decide(self, ranked: list[tuple[int, float]]) -> tuple[bool, str | None]:
        """``(handoff, reason)`` for one query's ranked candidates."""
        return self.rule.decide(ranked)

    def ask(self, question: str) -> dict[str, Any]:
        """The answer (or a hand-off) for one question."""
        return self.ask_many([question])[0]

    def ask_many(self, questions: Sequence[str]) -> list[dict[str, Any]]:
        """Answers for several questions (one batched encoder pass)."""
        for i, q in enumerate(questions):
            if not isinstance(q, str) or not q.strip():
                raise DataError(f"question {i + 1} is empty")
        intent_model = self.retriever.intent_model
        intents = intent_model.predict(list(questions)) if intent_model is not None else None
        results = []
        for n, ranked in enumerate(self.retriever.rank(questions)):
            handoff, reason = self.rule.decide(ranked)
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

    def explain(self, question: str, result: dict[str, Any] | None = None) -> dict[str, Any]:
        """The words that led to the match (or, for a hand-off, to the best candidate's low score).

        Occlusion on the match score itself: each word's score is how much the question's
        score against the matched entry drops without it. The retrieval model is a sentence
        encoder plus character n-grams and an optional intent bonus, not a classifier, so
        this model-agnostic method explains exactly the number the hand-off rule reads.
        """
        from ..explain.occlusion import occlusion_drops
        from ..explain.words import split_words

        result = result or self.ask(question)
        entry = result["answer_id"]
        words = split_words(question)
        if entry is None or not len(words):
            return {"words": words.words, "scores": [0.0] * len(words), "method": "occlusion", "entry": None}
        scores = occlusion_drops(lambda texts, owners: self.retriever.entry_scores(texts, [entry] * len(texts)),
                                 [words])[0]
        return {"words": words.words, "scores": [round(float(s), 6) for s in scores], "method": "occlusion",
                "entry": entry, "matched_question": result["matched_question"], "confidence": result["confidence"],
                "threshold": round(self.threshold, 4)}

    def _option(self, entry: int, score: float) -> dict[str, Any]:
        e = self.entries[entry]
        return {"id": entry, "question": e.question, "answer": e.answer, "intent": e.intent,
                "score": round(float(score), 4)}

    # -- calibration and evaluation ------------------------------------------------------
    def calibrate(self, queries: Sequence[Query] | None = None) -> dict[str, Any]:
        """Choose the retrieval weights, threshold and margin for ``config.target_precision``; store the report."""
        cfg, retriever = self.config, self.retriever
        # the weights and the rule are chosen on many rankings of the same queries: embed them once
        vectors = retriever.embed([q for q, _ in queries]) if queries else None
        calibration.choose_weights(retriever, queries, vectors, answer_weight=cfg.answer_weight,
                                   lexical_weight=cfg.lexical_weight)
        top, s1, s2, exp, _ = calibration.outcomes(retriever, queries, vectors)
        answerable = exp >= 0
        weights = {"lexical_weight": retriever.lexical_weight, "answer_weight": retriever.answer_weight}
        if not queries and (~answerable).any() and cfg.threshold is None:
            self.rule = HandoffRule(calibration.leave_one_out_threshold(s1, answerable, cfg.target_precision),
                                    cfg.margin if cfg.margin is not None else 0.0)
            self.calibration = {
                "source": "leave-one-out over the knowledge base (no held-out queries given)",
                "rule": "threshold = target_precision quantile of the best wrong-answer score of questions "
                        "whose answer no other question shares",
                "n": int(len(s1)), "out_of_scope_like": int((~answerable).sum()),
                "target_precision": cfg.target_precision, "threshold": round(self.rule.threshold, 4),
                "margin": self.rule.margin, **weights,
            }
            return self.calibration
        self.rule, precision, coverage = calibration.choose_rule(
            s1, s2, (top == exp) & answerable, target=cfg.target_precision, threshold=cfg.threshold,
            margin=cfg.margin)
        self._warn_if_uncalibrated(answerable, precision)
        self.calibration = {
            "source": "queries" if queries else "leave-one-out over the knowledge base",
            "n": int(len(s1)), "answerable": int(answerable.sum()), "out_of_scope": int((~answerable).sum()),
            "target_precision": cfg.target_precision, "threshold": round(self.rule.threshold, 4),
            "margin": self.rule.margin, **weights, "precision": round(precision, 4),
            "answered_fraction": round(coverage, 4),
        }
        return self.calibration

    def _warn_if_uncalibrated(self, answerable: np.ndarray, precision: float) -> None:
        if not answerable.any():
            LOGGER.warning("no answerable calibration query (leave-one-out needs questions that share an answer); "
                           "every question will be handed off until you calibrate with held-out queries "
                           "(--calibration) or set --threshold")
        elif precision < self.config.target_precision:
            LOGGER.warning("no threshold reaches precision %.2f on the calibration queries (best %.3f); "
                           "the assistant will hand off often", self.config.target_precision, precision)

    def evaluate(self, queries: Sequence[Query]) -> dict[str, Any]:
        """Top-1/top-3 retrieval, hand-off precision/recall and a coverage-accuracy curve."""
        return calibration.evaluate(self.retriever, self.rule, queries)

    # -- persistence ---------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write the index directory atomically (entries, vectors, settings, tuned encoder)."""
        record = {"config": dataclasses.asdict(self.config), "threshold": self.threshold, "margin": self.margin,
                  "lexical_weight": self.lexical_weight, "answer_weight": self.answer_weight,
                  "calibration": self.calibration, "tuning": self.tuning}
        return storage.write_index(directory, self.retriever, record,
                                   tuned_encoder=self.encoder if self.tuning is not None else None)

    @classmethod
    def load(cls, directory: str | Path) -> Assistant:
        """Load and verify an index directory."""
        stored = storage.read_index(directory)
        meta = stored.meta
        known = {f.name for f in dataclasses.fields(AssistantConfig)}
        config = AssistantConfig(**{k: v for k, v in meta["config"].items() if k in known})
        # the answer weight as calibrated at build time (a later calibration keeps it)
        config = dataclasses.replace(config, answer_weight=float(meta.get("answer_weight", 0.0)))
        encoder = SentenceEncoder(stored.encoder_path, max_length=config.max_length)
        self = cls(stored.entries, encoder, stored.question_vectors, stored.qa_vectors, config)
        retriever = self.retriever
        retriever.set_answer_weight(retriever.answer_weight, stored.load_index(config.index, retriever.vectors))
        retriever.lexical_weight = float(meta.get("lexical_weight", 0.0))
        self.rule = HandoffRule(float(meta["threshold"]), float(meta["margin"]))
        self.calibration, self.tuning = meta.get("calibration", {}), meta.get("tuning")
        return self
