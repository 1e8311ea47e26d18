"""Portfolio accounting: weights chosen at a close earn the next days' returns, and trading costs.

At the close of a rebalance day the portfolio moves from its drifted weights to the
target weights, paying ``cost_bps`` basis points of the turnover ``sum |target - drifted|``.
The new weights then earn the following days' returns and drift with them until the
next rebalance. The last column may be cash, which earns nothing. Everything here is
pure: the environment, the agents' backtests and the baselines share it, so every
strategy pays the same costs on the same days.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: Trading days between decisions by default: monthly, as robo-advisors rebalance. Weekly decisions
#: (5) let the agents trade 37-46 times their portfolio a year, about 4 % a year in costs at 10 bps
#: (``docs/research-log/benchmarks-history.md``); a month's return also says more about a choice than a week's noise.
REBALANCE_DAYS = 21


@dataclass
class Period:
    """What one holding period did: its daily net returns, the turnover traded at its start and its cost."""

    daily: np.ndarray
    turnover: float
    cost: float
    end_weights: np.ndarray


def with_cash(returns: np.ndarray) -> np.ndarray:
    """Append a cash column earning 0 to ``(days, assets)`` simple returns."""
    return np.concatenate([returns, np.zeros((len(returns), 1))], axis=1)


def hold(weights: np.ndarray, before: np.ndarray, returns: np.ndarray, cost_bps: float) -> Period:
    """Rebalance from ``before`` to ``weights`` (paying costs), then hold through ``returns`` (days x assets).

    The cost is taken from wealth on the rebalance day, so the first day's net return is
    ``(1 - cost) * (1 + r_p) - 1``.
    """
    turnover = float(np.abs(weights - before).sum())
    cost = turnover * cost_bps / 1e4
    daily = np.empty(len(returns))
    w = weights.astype(np.float64)
    for day, r in enumerate(returns):
        gross = float(w @ r)
        daily[day] = gross
        grown = w * (1.0 + r)
        total = grown.sum()
        w = grown / total if total > 0 else w
    if len(daily):
        daily[0] = (1.0 - cost) * (1.0 + daily[0]) - 1.0
    return Period(daily, turnover, cost, w)


#: ``decide(k, row, drifted_weights) -> target weights`` at the k-th decision row.
Decide = Callable[[int, int, np.ndarray], np.ndarray]


@dataclass
class Run:
    """A strategy over a date range: daily net returns, total turnover and costs, and its targets."""

    daily: np.ndarray
    turnover: float
    cost: float
    targets: list[np.ndarray]


def run_strategy(decide: Decide, returns: np.ndarray, rows: np.ndarray, end: int, cost_bps: float) -> Run:
    """Decide at each row (starting from cash) and hold until the next row, or ``end`` after the last.

    Every strategy, agent or rule, runs through here: same days, same costs, same drift.
    """
    weights = np.zeros(returns.shape[1])
    weights[-1] = 1.0
    daily, targets, turnover, cost = [], [], 0.0, 0.0
    for k, row in enumerate(rows):
        stop = int(rows[k + 1]) if k + 1 < len(rows) else end
        target = np.asarray(decide(k, int(row), weights), dtype=np.float64)
        period = hold(target, weights, returns[int(row):stop], cost_bps)
        daily.append(period.daily)
        targets.append(target)
        turnover += period.turnover
        cost += period.cost
        weights = period.end_weights
    return Run(np.concatenate(daily) if daily else np.zeros(0), turnover, cost, targets)
