"""Training core: config, batching, schedule, losses and the loop."""

from .config import ClassWeighting, TrainConfig

__all__ = ["ClassWeighting", "TrainConfig"]
