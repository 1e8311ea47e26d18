"""Text-aware recommendation: a two-tower model over item text and click history."""

from .data import Columns, Interactions, Items, align_items, read_interactions, read_items
from .model import RecommenderConfig
from .recommender import Recommendation, TextRecommender
from .split import Dataset, Holdout, build_dataset

__all__ = [
    "Columns", "Dataset", "Holdout", "Interactions", "Items", "Recommendation", "RecommenderConfig",
    "TextRecommender", "align_items", "build_dataset", "read_interactions", "read_items",
]
