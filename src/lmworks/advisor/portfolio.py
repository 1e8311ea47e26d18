"""Portfolio accounting: weights chosen at a close earn the next days' returns, and trading costs.

A decision is taken at the close of a decision day and executed ``lag`` closes later
(default 1: decide on today's close, trade at tomorrow's). Until then the old weights keep
drifting. At the trade the portfolio moves from its drifted weights to the target weights,
paying ``cost_bps`` basis points of the turnover in the *assets*, ``sum |target - drifted|``
over every column but the last: the last column is cash, and the cash leg of a trade is
free (the usual convention; going from all cash to 1/N trades 1.0 of the portfolio, not
2.0). The new weights then earn the following days' returns and drift with them until the
next trade. Cash earns its own daily return (the cash rate). Everything here is pure: the
environment, the agents' backtests and the baselines share it, so every strategy pays the
same costs on the same days, and one portfolio is carried from each period to the next.
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


def with_cash(returns: np.ndarray, cash: np.ndarray | None = None) -> np.ndarray:
    """Append a cash column to ``(days, assets)`` simple returns: ``cash`` (daily returns), or 0."""
    column = np.zeros(len(returns)) if cash is None else np.asarray(cash, dtype=np.float64)[: len(returns)]
    return np.concatenate([returns, column[:, None]], axis=1)


def hold(weights: np.ndarray, before: np.ndarray, returns: np.ndarray, cost_bps: float) -> Period:
    """Rebalance from ``before`` to ``weights`` (paying costs), then hold through ``returns`` (days x assets).

    The last column is cash: its leg of the trade costs nothing. The cost is taken from
    wealth on the rebalance day, so the first day's net return is ``(1 - cost) * (1 + r_p) - 1``.
    """
    turnover = float(np.abs(weights[:-1] - before[:-1]).sum())
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


def rebalance(target: np.ndarray, before: np.ndarray, returns: np.ndarray, cost_bps: float, lag: int = 0) -> Period:
    """One decision's period: ``before`` drifts for ``lag`` days, then trades to ``target`` and holds to the end.

    ``returns`` runs from the decision's close to the next decision's. A trade that would
    fall at or after the period's end does not happen (the next decision replaces it).
    """
    lag = max(0, int(lag))
    wait = hold(before, before, returns[:lag], 0.0)
    if lag >= len(returns):
        return Period(wait.daily, 0.0, 0.0, wait.end_weights)
    period = hold(np.asarray(target, dtype=np.float64), wait.end_weights, returns[lag:], cost_bps)
    return Period(np.concatenate([wait.daily, period.daily]), period.turnover, period.cost, period.end_weights)


#: ``decide(k, row, drifted_weights) -> target weights`` at the k-th decision row.
Decide = Callable[[int, int, np.ndarray], np.ndarray]


def all_cash(n_weights: int) -> np.ndarray:
    """Weights that hold everything in cash (the last column)."""
    weights = np.zeros(n_weights)
    weights[-1] = 1.0
    return weights


@dataclass
class Run:
    """A strategy over a date range: daily net returns, total turnover and costs, its targets, where it ended."""

    daily: np.ndarray
    turnover: float
    cost: float
    targets: list[np.ndarray]
    end_weights: np.ndarray | None = None


def run_strategy(decide: Decide, returns: np.ndarray, rows: np.ndarray, end: int, cost_bps: float, *,
                 lag: int = 0, start: np.ndarray | None = None) -> Run:
    """Decide at each row and hold until the next row, or ``end`` after the last.

    The portfolio starts from ``start`` (default: all cash), e.g. where the same strategy
    ended the previous test year, so a walk-forward backtest is one continuous portfolio.
    Every strategy, agent or rule, runs through here: same days, same costs, same drift,
    same execution lag.
    """
    weights = all_cash(returns.shape[1]) if start is None else np.asarray(start, dtype=np.float64)
    daily, targets, turnover, cost = [], [], 0.0, 0.0
    for k, row in enumerate(rows):
        stop = int(rows[k + 1]) if k + 1 < len(rows) else end
        target = np.asarray(decide(k, int(row), weights), dtype=np.float64)
        period = rebalance(target, weights, returns[int(row):stop], cost_bps, lag)
        daily.append(period.daily)
        targets.append(target)
        turnover += period.turnover
        cost += period.cost
        weights = period.end_weights
    return Run(np.concatenate(daily) if daily else np.zeros(0), turnover, cost, targets, weights)
