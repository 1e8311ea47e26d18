"""Settings of a labelling project (stored in its database, so a restart keeps them)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, check_known_fields
from .loop import Strategy


@dataclass
class LabelConfig:
    """How a labelling project asks, learns and estimates.

    Attributes
    ----------
        labels: the label names, in the order the keys 1-9 choose them.
        text_column: the pool file's text column.
        strategy: which text is asked next: margin (default), entropy, random or diverse.
        retrain_every: the loop model is refitted in the background after this many new labels.
        audit_every: every k-th text served is drawn at random from the pool and kept out of the
            loop model's training; the accuracy estimate comes from these only (0: no estimate).
        overlap: the share of texts shown to a second annotator as well, for agreement.
        lease_seconds: a text served to one annotator is not served to another for this long.
        clusters: k-means clusters of the cold start (texts asked before any model exists).
        seed: random seed of the audit draws, random strategy and clustering.
    """

    labels: list[str] = field(default_factory=list)
    text_column: str = "text"
    strategy: Strategy | str = Strategy.MARGIN
    retrain_every: int = 10
    audit_every: int = 10
    overlap: float = 0.0
    lease_seconds: float = 600.0
    clusters: int = 30
    seed: int = 0

    def __post_init__(self) -> None:
        self.strategy = Strategy.parse(self.strategy)
        self.labels = [str(x).strip() for x in self.labels]
        if len(self.labels) < 2 or any(not x for x in self.labels):
            raise ConfigError(f"--labels needs at least two non-empty names, got {self.labels}")
        if len(set(self.labels)) != len(self.labels):
            raise ConfigError(f"--labels names a label twice: {self.labels}")
        if self.retrain_every < 1:
            raise ConfigError(f"retrain_every must be >= 1, got {self.retrain_every}")
        if self.audit_every < 0 or self.audit_every == 1:
            raise ConfigError(f"audit_every must be 0 (off) or >= 2, got {self.audit_every}")
        if not 0.0 <= self.overlap < 1.0:
            raise ConfigError(f"overlap must be in [0, 1), got {self.overlap}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON, the strategy as its name."""
        data = dataclasses.asdict(self)
        data["strategy"] = Strategy.parse(self.strategy).value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabelConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        check_known_fields(cls, data, "labelling")
        return cls(**data)
