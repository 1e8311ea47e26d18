"""The explanation of one decision: what ``explain`` returns, the CLI writes and the services answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Explanation:
    """Why one input got its answer.

    Attributes
    ----------
    label:
        The explained class (the prediction, or the class asked for).
    predicted:
        The model's decision (a list of labels for a multi-label model).
    probability:
        The model's probability of ``label``.
    words, scores:
        The text's words and one score each: positive supports ``label``.
    method:
        How the scores were computed (see the module doc).
    truncated, words_read:
        The model read only the first ``words_read`` words (its token limit); the rest score 0.
    delta:
        Integrated Gradients' convergence delta (``None`` for other methods).
    classes:
        Every class's scores, when all were asked for (the HTML report's toggle).
    modalities:
        A multimodal model's share of the decision per modality.
    columns:
        A multimodal model's words and scores per text column.
    """

    label: str
    predicted: Any
    probability: float
    words: list[str]
    scores: list[float]
    method: str
    truncated: bool = False
    words_read: int = 0
    delta: float | None = None
    classes: dict[str, list[float]] | None = None
    modalities: dict[str, float] | None = None
    columns: dict[str, dict[str, list[Any]]] | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object ``lmworks explain`` writes per row and ``/v1/explain`` answers per text."""
        out = {"label": self.label, "predicted": self.predicted, "probability": round(self.probability, 6),
               "words": self.words, "scores": [round(float(s), 6) for s in self.scores], "method": self.method,
               "truncated": self.truncated, "words_read": self.words_read}
        if self.delta is not None:
            out["delta"] = round(self.delta, 6)
        for key in ("classes", "modalities", "columns"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    def top(self, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` words that support ``label`` most."""
        order = np.argsort(-np.asarray(self.scores), kind="stable")[:k]
        return [(self.words[i], float(self.scores[i])) for i in order]
