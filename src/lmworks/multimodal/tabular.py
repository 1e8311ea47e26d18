"""Numbers and categories as a network reads them, with statistics from the training split only.

Numbers are standardised with the training rows' mean and standard deviation; a missing
number becomes 0 (the mean) and sets its own indicator, so "missing" can mean something.
Categories become indices into a vocabulary of the training values, with index 0 for
a value the training data never had (or a missing one): a new brand at prediction
time is "unseen", not an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass
class TabularStats:
    """What the training rows taught: per numeric column mean/std, per categorical column its values."""

    numeric: dict[str, tuple[float, float]] = field(default_factory=dict)
    categories: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def fit(cls, rows: Sequence[dict[str, Any]], numeric: Sequence[str], categorical: Sequence[str]) -> TabularStats:
        """Statistics of the training rows (NaN and missing values ignored)."""
        stats = cls()
        for column in numeric:
            values = np.asarray([row[column] for row in rows], dtype=np.float64)
            present = values[~np.isnan(values)]
            mean = float(present.mean()) if len(present) else 0.0
            std = float(present.std()) if len(present) > 1 else 1.0
            stats.numeric[column] = (mean, std if std > 0 else 1.0)
        for column in categorical:
            stats.categories[column] = sorted({row[column] for row in rows if row[column] is not None})
        return stats

    def numeric_matrix(self, rows: Sequence[dict[str, Any]]) -> np.ndarray:
        """``(n, 2 * columns)``: standardised values (0 where missing), then the missing indicators."""
        columns = list(self.numeric)
        if not columns:
            return np.zeros((len(rows), 0), dtype=np.float32)
        values = np.asarray([[row[c] for c in columns] for row in rows], dtype=np.float64)
        missing = np.isnan(values)
        means = np.asarray([self.numeric[c][0] for c in columns])
        stds = np.asarray([self.numeric[c][1] for c in columns])
        z = np.where(missing, 0.0, (values - means) / stds)
        return np.concatenate([np.clip(z, -10, 10), missing.astype(np.float64)], axis=1).astype(np.float32)

    def category_indices(self, rows: Sequence[dict[str, Any]]) -> np.ndarray:
        """``(n, categorical columns)`` indices: 1.. for training values, 0 for unseen or missing."""
        columns = list(self.categories)
        lookup = {c: {v: i + 1 for i, v in enumerate(self.categories[c])} for c in columns}
        return np.asarray([[lookup[c].get(row[c], 0) for c in columns] for row in rows],
                          dtype=np.int64).reshape(len(rows), len(columns))

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (saved with the model)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TabularStats:
        """Inverse of :meth:`to_dict`."""
        return cls({k: (float(v[0]), float(v[1])) for k, v in data.get("numeric", {}).items()},
                   {k: list(v) for k, v in data.get("categories", {}).items()})
