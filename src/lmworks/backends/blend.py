"""Blend a fine-tuned encoder with the TF-IDF baseline, weighted on dev data.

The two models make different mistakes: the encoder reads meaning but sees at most
``max_length`` tokens, TF-IDF weighs every exact word and character n-gram of the
whole text. Combining them with a weight chosen on the dev data is a standard, cheap
ensemble (TF-IDF trains in seconds and predicts in microseconds); the weight may come
out 0, in which case the model is the encoder alone and no TF-IDF files are written.

How they are combined (``mix``):

* ``"log"`` (new models): a weighted average of the two models' *log*-probabilities
  (their logits, for sigmoid outputs), renormalised. A confident model then
  outweighs an unsure one, which averaging probabilities flattens; for two logistic
  models it is the weighted average of their logits.
* ``"proba"``: a weighted average of probabilities (models saved before ``mix`` existed).

The weight is the one with the lowest dev log-loss. Log-loss scores every dev text by how
much probability it gets, so its optimum moves smoothly with the weight; accuracy or F1
on a dev set of a thousand texts changes only when a prediction flips, and the weight it
picks jumps between seeds (``docs/research-log/benchmarks-history.md`` compares the rules).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..modes import BlendMix
from .base import Backend, FitRun, ScoreFn, TokenLimitedBackend
from .tfidf import TfidfBackend

BLEND_DIR = "blend"
WEIGHT_GRID = np.round(np.arange(0.0, 1.0001, 0.05), 2)
MIXES = tuple(BlendMix.choices())
_EPS = 1e-7


def mix(primary: np.ndarray, secondary: np.ndarray, weight: float, *, kind: BlendMix | str = BlendMix.LOG,
        multi_label: bool = False) -> np.ndarray:
    """Combine two probability matrices with ``weight`` on ``secondary`` (see the module doc).

    ``kind`` is a :class:`~lmworks.modes.BlendMix` (or its value); anything else is an error, never
    silently the log mix.
    """
    kind = BlendMix.parse(kind)
    if weight == 0:
        return primary
    if kind is BlendMix.PROBA:
        return (1 - weight) * primary + weight * secondary
    p = np.clip(primary.astype(np.float64), _EPS, 1 - _EPS)
    q = np.clip(secondary.astype(np.float64), _EPS, 1 - _EPS)
    if multi_label:
        z = (1 - weight) * (np.log(p) - np.log1p(-p)) + weight * (np.log(q) - np.log1p(-q))
        return (1 / (1 + np.exp(-z))).astype(np.float32)
    z = (1 - weight) * np.log(p) + weight * np.log(q)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return (z / z.sum(axis=1, keepdims=True)).astype(np.float32)


def best_blend_weight(primary: np.ndarray, secondary: np.ndarray, score_fn: ScoreFn, *,
                      kind: BlendMix | str = BlendMix.LOG,
                      multi_label: bool = False) -> tuple[float, dict[str, Any]]:
    """Weight ``w`` of ``secondary`` with the lowest dev log-loss, and the dev metrics it gives.

    Ties go to the smaller weight, so the encoder alone is kept unless blending helps.
    """
    best_w, best_loss, best_metrics = 0.0, np.inf, {}
    for w in WEIGHT_GRID:
        _, metrics = score_fn(mix(primary, secondary, float(w), kind=kind, multi_label=multi_label))
        loss = metrics["log_loss"]
        if loss < best_loss - 1e-12:
            best_w, best_loss, best_metrics = float(w), loss, metrics
    return best_w, best_metrics


class BlendBackend(TokenLimitedBackend):
    """The encoder's and TF-IDF's probabilities combined with a dev-chosen weight."""

    def __init__(self, primary: Backend, secondary: TfidfBackend | None = None, weight: float = 0.0,
                 kind: BlendMix | str = BlendMix.LOG, multi_label: bool = False) -> None:
        self.primary = primary
        self.secondary = secondary or TfidfBackend()
        self.weight = weight
        self.kind = BlendMix.parse(kind)
        self.multi_label = multi_label
        self.name = primary.name

    def fit(self, texts: Sequence[str], targets: np.ndarray, run: FitRun) -> dict[str, Any]:
        """Train both models, then choose the weight on the dev data."""
        info = self.primary.fit(texts, targets, run)
        score_fn = run.score_fn
        if info.get("interrupted") or not run.eval_texts or score_fn is None:
            self.weight = 0.0
            return info
        self.multi_label = run.config.multi_label
        labelled = (np.flatnonzero(targets >= 0) if targets.ndim == 1 else np.arange(len(texts))).tolist()
        self.secondary.fit([texts[i] for i in labelled], targets[labelled], run.without_dev())
        primary_dev = self.primary.predict_proba(run.eval_texts)
        secondary_dev = self.secondary.predict_proba(run.eval_texts)
        alone_score, alone = score_fn(primary_dev)
        self.weight, blended = best_blend_weight(primary_dev, secondary_dev, score_fn, kind=self.kind,
                                                 multi_label=self.multi_label)
        info["blend"] = {
            "model": "tfidf", "mix": self.kind.value, "weight": self.weight, "chosen_by": "dev log-loss",
            "dev_encoder_alone": {k: alone[k] for k in ("log_loss", "accuracy", "macro_f1") if k in alone},
            "dev_blended": {k: blended[k] for k in ("log_loss", "accuracy", "macro_f1") if k in blended},
        }
        return info

    def token_limit(self) -> int | None:
        """The encoder's ``max_length`` (TF-IDF reads every word)."""
        return self.primary.token_limit() if isinstance(self.primary, TokenLimitedBackend) else None

    def predict_proba_counted(self, texts: Sequence[str]) -> tuple[np.ndarray, int]:
        """The encoder's probabilities, combined with TF-IDF's when the weight is > 0; the encoder's truncations."""
        proba, truncated = self.primary.predict_proba_counted(texts)
        if self.weight > 0:
            proba = mix(proba, self.secondary.predict_proba(texts), self.weight, kind=self.kind,
                        multi_label=self.multi_label)
        return proba, truncated

    def describe(self) -> dict[str, Any]:
        """The encoder's record, plus the blend's weight and formula when its weight is > 0."""
        meta = self.primary.describe()
        if self.weight > 0:
            formula = ("proba = (1 - weight) * encoder_proba + weight * tfidf_proba" if self.kind is BlendMix.PROBA else
                       "proba = sigmoid((1 - weight) * logit(encoder_proba) + weight * logit(tfidf_proba))"
                       if self.multi_label else
                       "proba = softmax((1 - weight) * log(encoder_proba) + weight * log(tfidf_proba))")
            meta["blend"] = {"model": "tfidf", "mix": self.kind.value, "weight": self.weight, "path": f"{BLEND_DIR}/",
                             "formula": formula}
        return meta

    def save(self, directory: Path) -> None:
        """The encoder's files as usual; TF-IDF under ``blend/`` when its weight is > 0."""
        self.primary.save(directory)
        if self.weight > 0:
            (directory / BLEND_DIR).mkdir()
            self.secondary.save(directory / BLEND_DIR)

    @classmethod
    def load(cls, directory: Path, meta: dict[str, Any]) -> Backend:
        """Load the encoder backend named in ``lmworks.json`` and attach the blend."""
        from .registry import backend_class

        return cls.attach(backend_class(meta.get("backend", "transformer")).load(directory, meta), directory, meta)

    @classmethod
    def attach(cls, primary: Backend, directory: Path, meta: dict[str, Any]) -> Backend:
        """Wrap a loaded backend with the blend recorded in ``lmworks.json``, if any."""
        blend = meta.get("blend")
        if not blend:
            return primary
        secondary = TfidfBackend.load(directory / blend.get("path", BLEND_DIR), meta)
        # Directories written before ``mix`` existed averaged probabilities.
        return cls(primary, secondary, float(blend["weight"]), kind=blend.get("mix", "proba"),
                   multi_label=meta.get("task") == "multi_label")
