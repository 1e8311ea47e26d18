"""lmworks: adapt pretrained transformer encoders to business text tasks, on a CPU, offline."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .classifier import TextClassifier
from .data import TextDataset, read_dataset
from .errors import ConfigError, DataError, LmworksError, ModelDirError
from .predictor import Predictor, load
from .training.config import TrainConfig

try:
    __version__ = version("lmworks")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+local"

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
