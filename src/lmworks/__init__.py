"""lmworks: adapt pretrained transformer encoders to business text tasks, on a CPU, offline."""

from __future__ import annotations

from .classifier import TextClassifier
from .data import TextDataset, read_dataset
from .errors import ConfigError, DataError, LmworksError, ModelDirError, NotFittedError
from .predictor import Predictor, load
from .runtime import lmworks_version
from .search import TuneConfig, tune
from .training.config import TrainConfig

__version__ = lmworks_version()

__all__ = [
    "ConfigError",
    "DataError",
    "LmworksError",
    "ModelDirError",
    "MultimodalClassifier",
    "NotFittedError",
    "Predictor",
    "TextClassifier",
    "TextDataset",
    "TrainConfig",
    "TuneConfig",
    "load",
    "read_dataset",
    "tune",
    "__version__",
]


def __getattr__(name: str) -> object:
    """``lmworks.MultimodalClassifier`` without importing the image stack for every ``import lmworks``."""
    if name == "MultimodalClassifier":
        from .fusion import MultimodalClassifier

        return MultimodalClassifier
    raise AttributeError(f"module 'lmworks' has no attribute {name!r}")
