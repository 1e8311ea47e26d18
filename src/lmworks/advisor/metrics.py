"""Performance of a portfolio's daily returns (pure functions, 252 trading days a year).

Sharpe and Sortino ratios are on *excess* returns: the portfolio's daily return minus the
cash rate's (``risk_free``), the return its cash would have earned. With cash at 0 a
fixed fraction of 1/N keeps 1/N's Sharpe by construction; with cash earning its rate,
holding cash is no longer free risk reduction in the ratio, and the comparison means
something.
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


def sharpe(returns: np.ndarray, risk_free: np.ndarray | None = None) -> float:
    """Annualised Sharpe ratio of the daily returns in excess of ``risk_free`` (0 without variation)."""
    excess = np.asarray(returns, dtype=np.float64) - (0.0 if risk_free is None else np.asarray(risk_free))
    spread = float(np.std(excess, ddof=1)) if len(excess) > 1 else 0.0
    return float(np.mean(excess)) / spread * np.sqrt(DAYS) if spread > 0 else 0.0


def performance(returns: np.ndarray, *, turnover: float = 0.0, costs: float = 0.0,
                years: float | None = None, risk_free: np.ndarray | None = None) -> dict[str, Any]:
    """Annualised return and volatility, Sharpe, Sortino, max drawdown, Calmar, turnover and costs.

    ``returns`` are the net daily returns; ``risk_free`` the cash rate's daily returns on
    the same days (Sharpe and Sortino are on the excess; default 0); ``turnover`` is the
    sum over trades of ``sum |w_new - w_before|`` over the assets, ``costs`` the fraction
    of wealth paid; both are reported per year.
    """
    r = np.asarray(returns, dtype=np.float64)
    excess = r - (0.0 if risk_free is None else np.asarray(risk_free, dtype=np.float64))
    years = years if years is not None else len(r) / DAYS
    growth = float(np.prod(1.0 + r))
    annual_return = growth ** (1.0 / years) - 1.0 if years > 0 and growth > 0 else -1.0
    vol = float(np.std(r, ddof=1) * np.sqrt(DAYS)) if len(r) > 1 else 0.0
    downside = float(np.sqrt(np.mean(np.minimum(excess, 0.0) ** 2)) * np.sqrt(DAYS)) if len(r) else 0.0
    mean = float(np.mean(excess) * DAYS) if len(r) else 0.0
    mdd = max_drawdown(r)
    return {
        "annual_return": annual_return,
        "annual_volatility": vol,
        "sharpe": sharpe(r, risk_free),
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
