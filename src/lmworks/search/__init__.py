"""Automatic model and hyperparameter search within a time budget (``lmworks tune``), on Optuna.

:func:`tune` runs ordinary ``train`` fits as Optuna trials: TPE (or random) chooses the model
and its settings, a pruner stops unpromising runs at equal shares of an epoch through the
training engine's monitor hook, the wall-clock budget stops the last run with its best
checkpoint, and the study lives in Optuna's own storage (SQLite, or PostgreSQL shared by
several workers).
"""

from __future__ import annotations

from .config import MIN_BUDGET_S, Objective, Pruner, Sampler, TuneConfig, parse_duration
from .output import TRIALS_FILE
from .run import TuneResult, tune

__all__ = ["MIN_BUDGET_S", "TRIALS_FILE", "Objective", "Pruner", "Sampler", "TuneConfig", "TuneResult",
           "parse_duration", "tune"]
