"""Blend a fine-tuned encoder with the TF-IDF baseline, weighted on dev data.

The two models make different mistakes: the encoder reads meaning but sees at most
``max_length`` tokens, TF-IDF weighs every exact word and character n-gram of the
whole text. Averaging their probabilities with a weight chosen on the dev data is
a standard, cheap ensemble (TF-IDF trains in seconds and predicts in microseconds);
the weight may come out 0, in which case the model is the encoder alone and no
TF-IDF files are written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..training.config import TrainConfig
from .base import Backend, ScoreFn
from .tfidf import TfidfBackend

BLEND_DIR = "blend"
WEIGHT_GRID = np.round(np.arange(0.0, 1.0001, 0.05), 2)


def best_blend_weight(primary: np.ndarray, secondary: np.ndarray, score_fn: ScoreFn) -> tuple[float, float]:
    """Weight ``w`` of ``secondary`` in ``(1-w)*primary + w*secondary`` with the best dev score.

    Ties go to the smaller weight, so the encoder alone is kept unless blending helps.
    """
    best_w, best_score = 0.0, -np.inf
    for w in WEIGHT_GRID:
        score = score_fn((1 - w) * primary + w * secondary)[0]
        if score > best_score + 1e-12:
            best_w, best_score = float(w), score
    return best_w, float(best_score)


class BlendBackend(Backend):
    """``(1 - weight) * primary + weight * TF-IDF`` probabilities."""

    def __init__(self, primary: Backend, secondary: TfidfBackend | None = None, weight: float = 0.0) -> None:
        self.primary = primary
        self.secondary = secondary or TfidfBackend()
        self.weight = weight
        self.name = primary.name

    def fit(
        self,
        texts: Sequence[str],
        targets: np.ndarray,
        *,
        labels: list[str],
        config: TrainConfig,
        eval_texts: Sequence[str] | None,
        score_fn: ScoreFn | None,
        checkpoint_dir: Path | None = None,
        resume: bool = False,
        progress: bool = True,
    ) -> dict[str, Any]:
        """Train both models, then choose the weight on the dev data."""
        info = self.primary.fit(
            texts, targets, labels=labels, config=config, eval_texts=eval_texts, score_fn=score_fn,
            checkpoint_dir=checkpoint_dir, resume=resume, progress=progress,
        )
        if info.get("interrupted") or not eval_texts or score_fn is None:
            self.weight = 0.0
            return info
        self.secondary.fit(texts, targets, labels=labels, config=config, eval_texts=None, score_fn=None)
        primary_dev = self.primary.predict_proba(eval_texts)
        secondary_dev = self.secondary.predict_proba(eval_texts)
        alone = score_fn(primary_dev)[0]
        self.weight, blended = best_blend_weight(primary_dev, secondary_dev, score_fn)
        info["blend"] = {"model": "tfidf", "weight": self.weight, "dev_score_encoder_alone": round(alone, 6),
                         "dev_score_blended": round(blended, 6)}
        return info

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Weighted average of the two models' probabilities."""
        proba = self.primary.predict_proba(texts)
        if self.weight > 0:
            proba = (1 - self.weight) * proba + self.weight * self.secondary.predict_proba(texts)
        return proba

    def save(self, directory: Path) -> dict[str, Any]:
        """The encoder's files as usual; TF-IDF under ``blend/`` when its weight is > 0."""
        meta = self.primary.save(directory)
        if self.weight > 0:
            (directory / BLEND_DIR).mkdir()
            self.secondary.save(directory / BLEND_DIR)
            meta["blend"] = {
                "model": "tfidf", "weight": self.weight, "path": f"{BLEND_DIR}/",
                "formula": "proba = (1 - weight) * encoder_proba + weight * tfidf_proba",
            }
        return meta

    @classmethod
    def load(cls, directory: Path, meta: dict[str, Any]) -> Backend:
        """Load the encoder backend named in ``lmworks.json`` and attach the blend."""
        from .base import backend_class

        return cls.attach(backend_class(meta.get("backend", "transformer")).load(directory, meta), directory, meta)

    @classmethod
    def attach(cls, primary: Backend, directory: Path, meta: dict[str, Any]) -> Backend:
        """Wrap a loaded backend with the blend recorded in ``lmworks.json``, if any."""
        blend = meta.get("blend")
        if not blend:
            return primary
        secondary = TfidfBackend.load(directory / blend.get("path", BLEND_DIR), meta)
        return cls(primary, secondary, float(blend["weight"]))
