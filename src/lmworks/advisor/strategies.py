"""Allocation rules fitted on trailing returns: the baselines, and the Q-learning agent's menu.

Each rule maps the ``window`` days of returns before a rebalance to target weights over
the assets plus cash (last). The four baselines are skfolio's estimators; the extra
entries of the menu give the Q-learning agent other risk levels to choose between.
"""

from __future__ import annotations

from collections.abc import Callable

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


def mixed_with_cash(rule: Callable[[np.ndarray], np.ndarray], share: float) -> Callable[[np.ndarray], np.ndarray]:
    """``rule`` scaled to ``1 - share`` of the portfolio, the rest in cash."""
    def fit(returns: np.ndarray) -> np.ndarray:
        weights = rule(returns) * (1.0 - share)
        weights[-1] += share
        return weights

    return fit


def cash(returns: np.ndarray) -> np.ndarray:
    """Everything in cash."""
    weights = np.zeros(returns.shape[1] + 1)
    weights[-1] = 1.0
    return weights


#: skfolio's baselines, compared against in every backtest.
BASELINES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    name: _skfolio(name) for name in ("equal_weight", "inverse_volatility", "min_variance", "hrp")
}

#: What the Q-learning agent chooses between at each rebalance.
MENU: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    **BASELINES,
    "momentum": momentum,
    "min_variance_half_cash": mixed_with_cash(BASELINES["min_variance"], 0.5),
    "equal_weight_half_cash": mixed_with_cash(BASELINES["equal_weight"], 0.5),
    "cash": cash,
}


def rule_weights(rules: dict[str, Callable[[np.ndarray], np.ndarray]], returns: np.ndarray,
                 decision_rows: np.ndarray) -> dict[str, np.ndarray]:
    """Per rule, ``(len(decision_rows), assets + 1)`` targets, each fitted on the ``WINDOW`` rows before it.

    ``decision_rows[k]`` is the first return row the target earns; the rule sees only
    ``returns[row - WINDOW:row]``.
    """
    out = {name: np.zeros((len(decision_rows), returns.shape[1] + 1)) for name in rules}
    for k, row in enumerate(decision_rows):
        window = returns[max(0, row - WINDOW):row]
        for name, rule in rules.items():
            out[name][k] = rule(window)
    return out
