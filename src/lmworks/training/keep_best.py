"""Keep the best weights seen on validation, and stop when patience runs out.

The rule every lmworks learner validates by: the text classifier's training engine, the
recommender's epochs and the advisor's agents. An evaluation that improves on the best score
so far snapshots the weights; ``patience`` evaluations without one end training; at the end
the best weights are put back, so a model is never returned in a worse state than its best
validated one.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class KeepBest:
    """Best validation score, the weights that made it, where, and the evaluations since.

    ``patience`` 0 never stops early.
    """

    patience: int = 0
    best_score: float = -math.inf
    best_at: int = 0
    since_best: int = 0
    best_state: dict[str, Any] | None = None

    def update(self, score: float, state: Callable[[], dict[str, Any]], at: int) -> bool:
        """Record one evaluation; snapshot ``state()`` (a deep copy) when it improves. Returns whether it did."""
        if score > self.best_score:
            self.best_score, self.best_at, self.since_best = score, at, 0
            self.best_state = copy.deepcopy(state())
            return True
        self.since_best += 1
        return False

    @property
    def exhausted(self) -> bool:
        """Whether ``patience`` evaluations in a row have not improved on the best."""
        return self.patience > 0 and self.since_best >= self.patience

    def restore(self, load: Callable[[dict[str, Any]], Any]) -> None:
        """Put the best weights back (``load(state)``), if any evaluation ran."""
        if self.best_state is not None:
            load(self.best_state)
