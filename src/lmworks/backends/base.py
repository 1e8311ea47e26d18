"""The small interface every backend implements."""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..training.config import TrainConfig

#: ``score_fn(proba) -> (score, metrics)`` scores dev-set probabilities (higher is better).
ScoreFn = Callable[[np.ndarray], tuple[float, dict[str, Any]]]


class Backend(abc.ABC):
    """Maps texts to an ``(n, n_labels)`` array of probabilities."""

    #: Name stored in ``lmworks.json`` under ``backend``.
    name: str = ""

    @abc.abstractmethod
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
        """Train on ``targets`` (class ids, or a multi-hot matrix); return run information."""

    @abc.abstractmethod
    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities: softmax rows for single-label, independent sigmoids for multi-label."""

    @abc.abstractmethod
    def save(self, directory: Path) -> dict[str, Any]:
        """Write the backend's files; return what ``lmworks.json`` should record about them."""

    @classmethod
    @abc.abstractmethod
    def load(cls, directory: Path, meta: dict[str, Any]) -> Backend:
        """Rebuild from a directory written by :meth:`save`."""


def backend_class(name: str) -> type[Backend]:
    """Backend class for a name stored in ``lmworks.json``."""
    from .onnx import OnnxBackend
    from .tfidf import TfidfBackend
    from .transformer import TransformerBackend

    classes: dict[str, type[Backend]] = {
        TransformerBackend.name: TransformerBackend, TfidfBackend.name: TfidfBackend, OnnxBackend.name: OnnxBackend,
    }
    if name not in classes:
        from ..errors import ModelDirError

        raise ModelDirError(f"unknown backend {name!r} in lmworks.json (known: {', '.join(classes)})")
    return classes[name]


def backend_for_model(model: str) -> Backend:
    """A fresh backend for the ``--model`` value (baseline name, encoder name or path)."""
    from .tfidf import TfidfBackend
    from .transformer import TransformerBackend

    if model == "tfidf":
        return TfidfBackend()
    return TransformerBackend(model)
