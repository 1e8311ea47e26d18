"""The small interface every backend implements."""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..training.config import TrainConfig

#: ``score_fn(proba) -> (score, metrics)`` scores dev-set probabilities (higher is better).
ScoreFn = Callable[[np.ndarray], tuple[float, dict[str, Any]]]


@dataclass
class SoftTargets:
    """A teacher's probabilities for the training rows, and how much the student listens to them.

    Attributes
    ----------
    proba:
        ``(n_rows, n_labels)``, columns in the student's label order.
    alpha:
        Weight of the true labels' loss; ``1 - alpha`` goes to matching the teacher.
    temperature:
        Both distributions are softened by it before they are compared.
    """

    proba: np.ndarray
    alpha: float
    temperature: float


@dataclass
class FitRun:
    """What a backend's ``fit`` needs besides the data.

    Attributes
    ----------
    labels:
        Label names; target ``j`` is ``labels[j]``.
    config:
        The run's training settings.
    eval_texts, score_fn:
        Dev texts and the function scoring probabilities on them (early stopping,
        blend weight); ``None`` without dev data.
    checkpoint_dir, resume:
        Where checkpoints go, and whether to continue the one there.
    progress:
        Show a progress bar.
    soft_targets:
        A teacher's probabilities for every training row, for knowledge distillation
        (rows whose target is ``-1`` have no label and learn from the teacher alone).
    monitor:
        Watches the training engine's run (:class:`~lmworks.training.engine.TrainMonitor`):
        a hyperparameter search prunes and budgets through it. Models without epochs ignore it.
    """

    labels: list[str]
    config: TrainConfig
    eval_texts: Sequence[str] | None = None
    score_fn: ScoreFn | None = None
    checkpoint_dir: Path | None = None
    resume: bool = False
    progress: bool = True
    soft_targets: SoftTargets | None = None
    monitor: Any = None

    def without_dev(self) -> FitRun:
        """The same run without dev data or a teacher (a model that needs neither: the blend's TF-IDF half)."""
        return dataclasses.replace(self, eval_texts=None, score_fn=None, soft_targets=None)


class Backend(abc.ABC):
    """Maps texts to an ``(n, n_labels)`` array of probabilities."""

    #: Name stored in ``lmworks.json`` under ``backend``.
    name: str = ""

    @abc.abstractmethod
    def fit(self, texts: Sequence[str], targets: np.ndarray, run: FitRun) -> dict[str, Any]:
        """Train on ``targets`` (class ids, or a multi-hot matrix); return run information."""

    def inputs(self, texts: Any) -> list[Any]:
        """What ``predict_proba`` reads, from what a user passes (strings for text backends)."""
        return [str(t) for t in texts]

    @abc.abstractmethod
    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities: softmax rows for single-label, independent sigmoids for multi-label."""

    def predict_proba_counted(self, texts: Sequence[str]) -> tuple[np.ndarray, int]:
        """Probabilities, and how many texts were cut at the token limit (0 for a model without one).

        Nothing is logged: a caller predicting a file chunk by chunk adds the counts up and
        warns once. :meth:`predict_proba` warns per call.
        """
        return self.predict_proba(texts), 0

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """What ``lmworks.json`` records about this fitted backend (head, max length, base model...)."""

    @abc.abstractmethod
    def save(self, directory: Path) -> None:
        """Write the backend's files into ``directory`` (an empty, temporary folder)."""

    @classmethod
    @abc.abstractmethod
    def load(cls, directory: Path, meta: dict[str, Any]) -> Backend:
        """Rebuild from a directory written by :meth:`save`."""


class TokenLimitedBackend(Backend):
    """A backend that reads at most ``max_length`` tokens per text: it counts what it cuts.

    Subclasses implement :meth:`predict_proba_counted`; :meth:`predict_proba` warns about
    truncated texts from its count.
    """

    def token_limit(self) -> int | None:
        """Tokens read per text (``max_length``)."""
        return getattr(self, "max_length", None)

    @abc.abstractmethod
    def predict_proba_counted(self, texts: Sequence[str]) -> tuple[np.ndarray, int]:
        """Probabilities and the number of truncated texts."""

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities; a warning names how many texts were truncated."""
        from ..tokens import warn_truncated

        proba, truncated = self.predict_proba_counted(texts)
        warn_truncated(truncated, len(texts), self.token_limit())
        return proba
