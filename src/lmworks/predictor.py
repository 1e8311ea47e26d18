"""A loaded model, ready to answer: what :func:`lmworks.load` returns.

Training code needs :class:`~lmworks.TextClassifier`; services only need to turn
texts into labels and scores quickly. The predictor loads through the same code as
``TextClassifier.load`` (so checksums, labels and the blend are handled once) and
runs PyTorch or ONNX Runtime depending on what the directory holds.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .classifier import TextClassifier

LOGGER = logging.getLogger("lmworks")


class Predictor:
    """Batch inference over a model directory (PyTorch or exported ONNX).

    Texts are tokenised once, sorted by length and cut into batches under a token
    budget; results come back in input order. Texts longer than the model's
    ``max_length`` are truncated and counted (a warning, and ``truncated`` in
    :meth:`classify`).
    """

    def __init__(self, classifier: TextClassifier, directory: str | Path | None = None) -> None:
        classifier.check_fitted()
        self.classifier = classifier
        self.directory = Path(directory) if directory is not None else None
        self.meta: dict[str, Any] = classifier.meta_
        self.labels: list[str] = list(classifier.labels_)
        self.task: str = self.meta.get("task", "single_label")
        self.max_length = int(self.meta.get("max_length", 128))
        self.runtime: str = self.meta.get("backend", "transformer")
        backend: Any = classifier.backend_
        self.tokenizer = getattr(getattr(backend, "primary", backend), "tokenizer", None)

    @classmethod
    def load(cls, directory: str | Path, *, num_threads: int | None = None) -> Predictor:
        """Load and verify a model directory; ``num_threads`` defaults to the usable CPUs."""
        directory = Path(directory)
        classifier = TextClassifier.load(directory, num_threads=num_threads)
        return cls(classifier, directory)

    @property
    def name(self) -> str:
        """A short name for logs and API answers: the directory name (``in-memory`` for a fitted classifier)."""
        return self.directory.name if self.directory is not None else "in-memory"

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """``(n, n_labels)`` probabilities."""
        return self.classifier.predict_proba(texts)

    def predict(self, texts: Sequence[str]) -> list[Any]:
        """Labels (single-label) or lists of labels (multi-label)."""
        return self.classifier.predict(texts)

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text before truncation (whitespace words for a TF-IDF model)."""
        if self.tokenizer is None:
            return [len(t.split()) + 2 for t in texts]
        return [len(ids) for ids in self.tokenizer(list(texts), add_special_tokens=True, verbose=False)["input_ids"]]

    def classify(self, texts: Sequence[str], token_counts: Sequence[int] | None = None) -> list[dict[str, Any]]:
        """One ``{"label", "scores", "truncated"}`` dict per text, as the REST API answers."""
        proba = self.predict_proba(texts)
        decided = self.classifier.decide(proba)
        counts = token_counts if token_counts is not None else self.token_counts(texts)
        limit = self.max_length if self.tokenizer is not None else None
        return [
            {
                "label": label,
                "scores": {name: round(float(p), 6) for name, p in zip(self.labels, row)},
                "truncated": bool(limit is not None and n > limit),
            }
            for label, row, n in zip(decided, proba, counts)
        ]

    @property
    def reads_rows(self) -> bool:
        """Whether the model reads rows of several columns (multimodal) rather than texts."""
        return self.runtime == "multimodal"

    def classify_rows(self, rows: Sequence[Any]) -> list[dict[str, Any]]:
        """One ``{"label", "scores"}`` dict per row of a multimodal model."""
        proba = self.predict_proba(rows)
        return [{"label": label, "scores": {name: round(float(p), 6) for name, p in zip(self.labels, row)}}
                for label, row in zip(self.classifier.decide(proba), proba)]

    def explain(self, texts: Sequence[Any], *, target: str | None = None, **options: Any) -> list[Any]:
        """Which words made each decision (see :func:`lmworks.explain.explain`)."""
        return self.classifier.explain(texts, target=target, **options)

    def evaluate(self, texts: Sequence[str], labels: Sequence[Any]) -> dict[str, Any]:
        """The same metrics as :meth:`TextClassifier.evaluate`."""
        return self.classifier.evaluate(texts, labels)

    def describe(self) -> dict[str, Any]:
        """What ``GET /v1/model`` reports: labels, task, metrics, runtime, versions."""
        keys = ("task", "labels", "thresholds", "max_length", "head", "base_model", "backend", "blend",
                "metrics", "onnx", "export_check", "versions", "created", "columns", "data_columns")
        info = {k: self.meta[k] for k in keys if k in self.meta}
        info["name"] = self.name
        return info


def load(directory: str | Path, *, num_threads: int | None = None) -> Predictor:
    """Load a model directory written by ``lmworks train`` or ``lmworks export``."""
    return Predictor.load(directory, num_threads=num_threads)
