"""The training engine and what it needs: config, batching, optimiser, losses, objectives."""

from .config import TrainConfig

__all__ = ["TrainConfig"]
