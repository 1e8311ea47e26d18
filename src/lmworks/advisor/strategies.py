"""Allocation rules fitted on trailing returns: the baselines, and the Q-learning agent's menu.

Each rule maps the ``window`` days of returns before a rebalance to target weights over
the assets plus cash (last). The four baselines are skfolio's estimators. The Q-learning
agent's menu is every rule at a few shares in assets inside its profile's band (the rest in
cash), so it learns both which allocation suits the market and how much of it to hold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: Trailing days of returns the rules are fitted on.
WINDOW = 252


def _skfolio(name: str) -> Callable[[np.ndarray], np.ndarray]:
    def fit(returns: np.ndarray) -> np.ndarray:
        from skfolio.optimization import EqualWeighted, HierarchicalRiskParity, InverseVolatility, MeanRisk

        estimator = {"equal_weight": EqualWeighted, "inverse_volatility": InverseVolatility,
                     "min_variance": MeanRisk, "hrp": HierarchicalRiskParity}[name]()
        weights = np.clip(np.asarray(estimator.fit(returns).weights_, dtype=np.float64), 0.0, None)
        return np.append(weights / weights.sum(), 0.0)

    return fit


def momentum(returns: np.ndarray) -> np.ndarray:
    """Equal weights on the half of the assets with the best 12-1 month momentum."""
    growth = np.prod(1.0 + returns[:-21], axis=0)
    top = np.argsort(-growth)[: max(1, returns.shape[1] // 2)]
    weights = np.zeros(returns.shape[1] + 1)
    weights[top] = 1.0 / len(top)
    return weights


#: skfolio's baselines, compared against in every backtest.
BASELINES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    name: _skfolio(name) for name in ("equal_weight", "inverse_volatility", "min_variance", "hrp")
}

#: The allocations of assets the Q-learning agent chooses between at each rebalance (skfolio's
#: baselines and a momentum tilt), each fitted on the trailing window and fully invested.
RULES: dict[str, Callable[[np.ndarray], np.ndarray]] = {**BASELINES, "momentum": momentum}

#: The menu item that holds everything in cash.
CASH = "cash"


@dataclass(frozen=True)
class MenuItem:
    """One choice of the Q-learning agent: a rule of :data:`RULES` (or :data:`CASH`) at a share in assets."""

    rule: str
    share: float

    @property
    def name(self) -> str:
        """``"min_variance at 45 %"``, or ``"cash"``."""
        return CASH if self.rule == CASH else f"{self.rule} at {self.share:.0%}"


def menu(band: tuple[float, float]) -> list[MenuItem]:
    """Every rule at the band's lowest, middle and highest share in assets (and all cash if the band allows it)."""
    low, high = band
    levels = sorted({low, (low + high) / 2, high} - {0.0})
    items = [MenuItem(rule, level) for level in levels for rule in RULES]
    return items + [MenuItem(CASH, 0.0)] if low == 0.0 else items


def strategic_mix(band: tuple[float, float]) -> MenuItem:
    """A profile's strategic allocation: 1/N at the middle of its band, the rest in cash.

    The textbook answer to "how much risk" (hold the same diversified portfolio, more or
    less of it) and the benchmark DeMiguel, Garlappi & Uppal (2009) found hard to beat.
    """
    return MenuItem("equal_weight", (band[0] + band[1]) / 2)


#: The default candidate weights of the profile's strategic mix in an agent's targets: 0
#: follows the agent, 1 holds the strategic mix. The validation year picks one by the
#: one-standard-error rule (``advisor.backtest.choose_anchor``): the agent's tactic is
#: followed only as far as it beat the strategic mix there by more than the noise.
#: ``(0.0,)`` is the agent alone (measured in ``docs/research-log/benchmarks-history.md``).
ANCHOR_WEIGHTS: tuple[float, ...] = (0.0, 0.5, 1.0)


def at_share(weights: np.ndarray, share: float) -> np.ndarray:
    """Fully invested ``weights`` (assets, then a cash entry of 0) scaled to ``share``, the rest in cash."""
    out = np.asarray(weights, dtype=np.float64) * share
    out[-1] = 1.0 - out[:-1].sum()
    return out


def rule_weights(rules: dict[str, Callable[[np.ndarray], np.ndarray]], returns: np.ndarray,
                 decision_rows: np.ndarray, eligible: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per rule, ``(len(decision_rows), assets + 1)`` targets, each fitted on the ``WINDOW`` rows before it.

    ``decision_rows[k]`` is the first return row the target earns; the rule sees only
    ``returns[row - WINDOW:row]`` of the assets ``eligible[row]`` marks (default: all), and
    gives the others nothing. With one eligible asset it holds that one; with none, cash.
    """
    out = {name: np.zeros((len(decision_rows), returns.shape[1] + 1)) for name in rules}
    for k, row in enumerate(decision_rows):
        columns = np.flatnonzero(eligible[row]) if eligible is not None else np.arange(returns.shape[1])
        window = returns[max(0, row - WINDOW):row][:, columns]
        for name, rule in rules.items():
            if len(columns) == 0:
                out[name][k, -1] = 1.0
            elif len(columns) == 1:
                out[name][k, columns[0]] = 1.0
            else:
                weights = rule(window)
                out[name][k, columns] = weights[:-1]
    return out
