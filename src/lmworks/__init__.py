"""lmworks: adapt pretrained transformer encoders to business text tasks, on a CPU, offline."""

from __future__ import annotations

from .classifier import TextClassifier
from .data import TextDataset, read_dataset
from .errors import ConfigError, DataError, LmworksError, ModelDirError
from .predictor import Predictor, load
from .runtime import lmworks_version
from .training.config import TrainConfig

__version__ = lmworks_version()

__all__ = [
    "ConfigError",
    "DataError",
    "LmworksError",
    "ModelDirError",
    "Predictor",
    "TextClassifier",
    "TextDataset",
    "TrainConfig",
    "load",
    "read_dataset",
    "__version__",
]
