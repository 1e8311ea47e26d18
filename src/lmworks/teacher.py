"""A teacher's soft targets, as :meth:`~lmworks.TextClassifier.fit` takes them (knowledge distillation)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .backends import SoftTargets
from .errors import ConfigError, DataError


@dataclass
class TeacherSignal:
    """A teacher's soft targets for :meth:`TextClassifier.fit` (knowledge distillation).

    Attributes
    ----------
    labels:
        The teacher's label order: the columns of ``proba`` and ``unlabeled_proba``.
        Its label set must be the training data's.
    proba:
        The teacher's probabilities for the texts given to ``fit``, row by row (before
        any dev split, which ``fit`` applies to them too).
    unlabeled_texts, unlabeled_proba:
        Extra texts without labels, learnt from the teacher alone.
    alpha, temperature:
        Weight of the true labels' loss, and the softening temperature (see
        :func:`lmworks.training.losses.distillation_loss`).
    record:
        What ``lmworks.json`` keeps about the teacher (under ``train_info.distillation``).
    """

    labels: list[str]
    proba: np.ndarray
    unlabeled_texts: list[str] = field(default_factory=list)
    unlabeled_proba: np.ndarray | None = None
    alpha: float = 0.5
    temperature: float = 2.0
    record: dict[str, Any] = field(default_factory=dict)

    def extend(self, texts: list[str], targets: np.ndarray, names: list[str], kept: list[int], *,
               multi_label: bool) -> tuple[list[str], np.ndarray, SoftTargets]:
        """Training texts and targets with the unlabelled texts appended (target -1), and the soft targets."""
        if multi_label:
            raise ConfigError("distillation supports single-label models")
        if sorted(self.labels) != sorted(names):
            raise DataError(f"the teacher was trained on labels {sorted(self.labels)} but the data has "
                            f"{sorted(names)}; distil from a teacher trained on the same labels")
        order = [self.labels.index(n) for n in names]
        proba = np.asarray(self.proba)[kept][:, order]
        if self.unlabeled_texts:
            assert self.unlabeled_proba is not None
            proba = np.vstack([proba, np.asarray(self.unlabeled_proba)[:, order]])
            targets = np.concatenate([targets, np.full(len(self.unlabeled_texts), -1, dtype=targets.dtype)])
        return texts + list(self.unlabeled_texts), targets, SoftTargets(proba, self.alpha, self.temperature)
