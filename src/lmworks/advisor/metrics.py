"""Performance of a portfolio's daily returns (pure functions, 252 trading days a year, no risk-free rate).

With a cash asset that earns nothing, a zero risk-free rate keeps Sharpe ratios
comparable between a fully invested portfolio and one that holds cash.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

DAYS = 252


def max_drawdown(returns: np.ndarray) -> float:
    """Largest fall from a running peak of the wealth curve, as a positive fraction."""
    wealth = np.cumprod(1.0 + np.asarray(returns, dtype=np.float64))
    peaks = np.maximum.accumulate(np.concatenate([[1.0], wealth]))[1:]
    return float(np.max(1.0 - wealth / peaks)) if len(wealth) else 0.0


def drawdown_curve(returns: np.ndarray) -> np.ndarray:
    """Drawdown at each day (0 at a new peak), for charts."""
    wealth = np.cumprod(1.0 + np.asarray(returns, dtype=np.float64))
    peaks = np.maximum.accumulate(np.concatenate([[1.0], wealth]))[1:]
    return wealth / peaks - 1.0


def performance(returns: np.ndarray, *, turnover: float = 0.0, costs: float = 0.0,
                years: float | None = None) -> dict[str, Any]:
    """Annualised return and volatility, Sharpe, Sortino, max drawdown, Calmar, turnover and costs.

    ``returns`` are the net daily returns; ``turnover`` is the sum over rebalances of
    ``sum |w_new - w_before|``, ``costs`` the fraction of wealth paid; both are reported
    per year.
    """
    r = np.asarray(returns, dtype=np.float64)
    years = years if years is not None else len(r) / DAYS
    growth = float(np.prod(1.0 + r))
    annual_return = growth ** (1.0 / years) - 1.0 if years > 0 and growth > 0 else -1.0
    vol = float(np.std(r, ddof=1) * np.sqrt(DAYS)) if len(r) > 1 else 0.0
    downside = float(np.sqrt(np.mean(np.minimum(r, 0.0) ** 2)) * np.sqrt(DAYS)) if len(r) else 0.0
    mean = float(np.mean(r) * DAYS) if len(r) else 0.0
    mdd = max_drawdown(r)
    return {
        "annual_return": annual_return,
        "annual_volatility": vol,
        "sharpe": mean / vol if vol > 0 else 0.0,
        "sortino": mean / downside if downside > 0 else 0.0,
        "max_drawdown": mdd,
        "calmar": annual_return / mdd if mdd > 0 else 0.0,
        "turnover": turnover / years if years > 0 else 0.0,
        "costs": costs / years if years > 0 else 0.0,
        "days": int(len(r)),
    }


def summarise_runs(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean of each metric over runs (training seeds), with its standard deviation under ``<name>_std``."""
    keys = [k for k, v in runs[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    out: dict[str, Any] = {}
    for key in keys:
        values = np.asarray([run[key] for run in runs], dtype=np.float64)
        out[key] = float(values.mean())
        if len(runs) > 1:
            out[f"{key}_std"] = float(values.std(ddof=1))
    out["runs"] = len(runs)
    return out
