"""Model backends behind :class:`lmworks.TextClassifier`.

A backend turns texts into class probabilities and knows its own files; label
handling, thresholds, metrics and the model directory's ``lmworks.json`` live in the
classifier, so every backend gets them for free.
"""

from __future__ import annotations

from .base import Backend, FitRun, ScoreFn, SoftTargets
from .registry import backend_class, backend_for_model

__all__ = ["Backend", "FitRun", "ScoreFn", "SoftTargets", "backend_class", "backend_for_model"]
