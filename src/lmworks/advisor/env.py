"""The allocation environment (gymnasium 1.x API) and the market data behind it.

A step is one holding period: from a decision day to the next one (every ``rebalance_days``
trading days, default 21: monthly; the grid restarts each year, so a year-end period may be
shorter). At the close of the decision day ``t`` the agent sees the standardised trailing
features of every asset (prices up to ``t`` only) and its current weights; its action sets
the target weights (long-only, summing to 1, the last one cash), with the share in assets
inside the profile's ``band``, over the assets that trade (:attr:`Market.eligible`); the
portfolio trades to them ``execution_lag`` closes later paying ``cost_bps`` of the turnover
in assets, and earns the days' returns, drifting, until the next decision. Every day is
rewarded exactly once. The reward is the period's net log return
minus ``risk_aversion / 2`` times the sum of its squared daily returns. Two action forms
share the environment: continuous scores (the policy-gradient agent: a softmax over the
assets, and the share in assets) and a choice from a menu of allocation rules fitted on
trailing returns, each at a few shares in assets (the Q-learning agent).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from ..errors import ConfigError
from .features import LOOKBACK, Scaler, observation, raw_features
from .metrics import DAYS
from .portfolio import REBALANCE_DAYS, all_cash, rebalance, with_cash
from .prices import Prices
from .profile import FULL_BAND
from .strategies import CASH, RULES, WINDOW, MenuItem, at_share, menu, rule_weights


def steps_per_year(rebalance_days: int) -> int:
    """Holding periods in a year of ``rebalance_days``-day periods (at least one)."""
    return max(1, round(DAYS / rebalance_days))


@dataclass
class Market:
    """Prices turned into what agents and backtests need, decision days every ``rebalance_days``.

    ``features[t]`` depends on prices up to ``t`` only; ``returns[t]`` (cash last) is earned
    from close ``t`` to close ``t + 1`` (0 for an asset without both prices); ``decisions``
    are the decision rows: every ``rebalance_days`` trading days, counted afresh from the last
    close before each calendar year, so every year (a validation or test year) starts with a
    decision taken on the prices before it. ``eligible[t]`` marks the assets a decision at
    ``t`` may hold: priced at ``t`` and a year (:data:`WINDOW`) before, the history the rules
    and features need. Cash earns ``cash_rate`` (annual; ``None``: the price file's rate
    column, else 0). A decision is executed ``execution_lag`` closes after it is taken.
    """

    prices: Prices
    rebalance_days: int = REBALANCE_DAYS
    execution_lag: int = 1
    cash_rate: float | None = None
    features: np.ndarray = field(init=False)
    returns: np.ndarray = field(init=False)
    eligible: np.ndarray = field(init=False)
    decisions: np.ndarray = field(init=False)
    rule_table: dict[str, np.ndarray] | None = field(init=False, default=None)
    off_decision: dict[int, dict[str, np.ndarray]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 <= self.execution_lag < self.rebalance_days:
            raise ConfigError(f"execution lag {self.execution_lag} must be >= 0 and shorter than the "
                              f"{self.rebalance_days} days between decisions")
        self.features = raw_features(self.prices.frame)
        self.returns = with_cash(np.nan_to_num(self.prices.returns(), nan=0.0), self.cash_returns())
        listed = self.prices.listed()
        seasoned = np.zeros_like(listed)  # priced a year before, too
        seasoned[WINDOW:] = listed[: max(0, len(listed) - WINDOW)]
        self.eligible = listed & seasoned
        earned = np.asarray(self.prices.dates.year[1:])  # the year each return row is earned in
        starts = np.flatnonzero(np.r_[True, earned[1:] != earned[:-1]])
        position = np.arange(len(self.returns)) - np.repeat(starts, np.diff(np.r_[starts, len(self.returns)]))
        rows = np.flatnonzero(position % self.rebalance_days == 0)
        self.decisions = rows[rows >= max(LOOKBACK, WINDOW)]

    def cash_returns(self) -> np.ndarray:
        """Daily return of cash from each close to the next: the annual rate compounded over 252 days."""
        n = len(self.prices.dates) - 1
        if self.cash_rate is not None:
            annual = np.full(n, float(self.cash_rate))
        elif self.prices.rates is not None:
            annual = self.prices.rates.to_numpy(dtype=np.float64)[:n]
        else:
            annual = np.zeros(n)
        return (1.0 + annual) ** (1.0 / DAYS) - 1.0

    def next_stop(self, row: int, end: int) -> int:
        """Where the period of a decision at ``row`` ends: the next decision row, or ``end``."""
        index = int(np.searchsorted(self.decisions, row, side="right"))
        return min(int(self.decisions[index]), end) if index < len(self.decisions) else end

    @property
    def n_weights(self) -> int:
        """Assets plus cash."""
        return self.returns.shape[1]

    def rows_between(self, start: int, end: int) -> np.ndarray:
        """Decision rows in ``[start, end)``."""
        return self.decisions[(self.decisions >= start) & (self.decisions < end)]

    def menu_weights(self) -> dict[str, np.ndarray]:
        """Every rule's fully invested targets at every decision row (fitted once, each on the trailing window)."""
        if self.rule_table is None:
            self.rule_table = rule_weights(RULES, self.returns[:, :-1], self.decisions, self.eligible)
        return self.rule_table

    def rules_at(self, row: int) -> dict[str, np.ndarray]:
        """Every rule's fully invested targets at the close of ``row``, fitted on the window before it.

        A decision row's come from :meth:`menu_weights`; any other row (``allocate`` on a
        date between decisions, or the last close) is fitted afresh (once per row), never
        taken from the next decision row, which has seen later prices.
        """
        index = int(np.searchsorted(self.decisions, row))
        if index < len(self.decisions) and self.decisions[index] == row:
            return {name: weights[index] for name, weights in self.menu_weights().items()}
        if row not in self.off_decision:
            fitted = rule_weights(RULES, self.returns[:, :-1], np.array([row]), self.eligible)
            self.off_decision[row] = {name: weights[0] for name, weights in fitted.items()}
        return self.off_decision[row]

    def menu_target(self, row: int, item: MenuItem) -> np.ndarray:
        """The target weights of one menu item at the close of ``row``."""
        if item.rule == CASH:
            return at_share(np.zeros(self.n_weights), 0.0)
        return at_share(self.rules_at(row)[item.rule], item.share)

    def menu_at(self, row: int, band: tuple[float, float] = FULL_BAND) -> np.ndarray:
        """``(len(menu(band)), n_weights)``: the menu's targets at the close of ``row``."""
        return np.stack([self.menu_target(row, item) for item in menu(band)])


#: Actions lie in [-1, 1] (what PPO works best with); scaled by this before the softmax, so one
#: asset can still take nearly all the weight (e^10 against e^-10).
SCORE_SCALE = 10.0


def action_weights(action: np.ndarray, band: tuple[float, float] = FULL_BAND,
                   eligible: np.ndarray | None = None) -> np.ndarray:
    """Long-only weights summing to 1 from an action in [-1, 1] per asset and one more for the share in assets.

    The scores of the ``eligible`` assets (default: all) go through a softmax, the others
    get nothing; the last entry maps linearly onto ``band`` (-1: its lowest share in assets,
    1: its highest), the rest is cash. With no asset eligible everything is cash.
    """
    action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
    mask = np.ones(len(action) - 1, dtype=bool) if eligible is None else np.asarray(eligible, dtype=bool)
    if not mask.any():
        return at_share(np.zeros(len(action)), 0.0)
    z = np.where(mask, action[:-1] * SCORE_SCALE, -np.inf)
    z = np.exp(z - z[mask].max())
    low, high = band
    return at_share(np.append(z / z.sum(), 0.0), low + (high - low) * (action[-1] + 1.0) / 2.0)


class AllocationEnv(gym.Env):
    """One episode: ``episode_steps`` holding periods (default: a year of them) from a random decision day.

    Decision days are drawn from ``[start, end)``.

    ``action="weights"``: a ``Box`` in [-1, 1] per asset and one for the share in assets
    (:func:`action_weights`). ``action="menu"``: a ``Discrete`` choice among
    :func:`~lmworks.advisor.strategies.menu` of ``band``. ``band`` bounds the share in assets
    (:data:`~lmworks.advisor.profile.EQUITY_BAND`).
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, market: Market, scaler: Scaler, *, risk_aversion: float, start: int, end: int,
                 cost_bps: float = 10.0, episode_steps: int | None = None, action: str = "weights",
                 band: tuple[float, float] = FULL_BAND) -> None:
        super().__init__()
        self.market, self.scaler, self.risk_aversion = market, scaler, risk_aversion
        self.cost_bps, self.action_kind, self.band, self.end = cost_bps, action, band, end
        self.items = menu(band)
        self.episode_steps = episode_steps or steps_per_year(market.rebalance_days)
        self.rows = market.rows_between(start, end - 1)
        if len(self.rows) < 2:
            raise ValueError("the training range holds fewer than two decision days")
        n_assets = market.n_weights - 1
        size = n_assets * market.features.shape[-1] + market.n_weights
        # standardised features are clipped to +-5 (Scaler.transform), weights lie in [0, 1]
        self.observation_space = gym.spaces.Box(-5.0, 5.0, (size,), dtype=np.float32)
        self.action_space = (gym.spaces.Box(-1.0, 1.0, (market.n_weights,), dtype=np.float32)
                             if action == "weights" else gym.spaces.Discrete(len(self.items)))
        self.position = 0
        self.steps = 0
        self.weights = np.zeros(market.n_weights)

    def _obs(self) -> np.ndarray:
        row = int(self.rows[self.position])
        return observation(self.scaler.transform(self.market.features[row]), self.weights)

    def target(self, action: Any) -> np.ndarray:
        """The weights an action asks for at the current decision row."""
        if self.action_kind == "weights":
            return action_weights(action, self.band, self.market.eligible[int(self.rows[self.position])])
        return self.market.menu_target(int(self.rows[self.position]), self.items[int(action)])

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start in cash at a random decision day (``options={"position": k}`` starts at the k-th)."""
        super().reset(seed=seed)
        last = max(1, len(self.rows) - self.episode_steps)
        start = (options or {}).get("position")
        self.position = int(start) if start is not None else int(self.np_random.integers(0, last))
        self.steps = 0
        self.weights = all_cash(self.market.n_weights)
        return self._obs(), {"row": int(self.rows[self.position])}

    def step(self, action: Any):
        """Trade to the target weights (``execution_lag`` closes later), hold until the next decision, score it."""
        row = int(self.rows[self.position])
        target = self.target(action)
        stop = self.market.next_stop(row, self.end)
        period = rebalance(target, self.weights, self.market.returns[row:stop], self.cost_bps,
                           self.market.execution_lag)
        reward = float(np.log1p(period.daily).sum() - self.risk_aversion / 2 * np.square(period.daily).sum())
        self.weights = period.end_weights
        self.position += 1
        self.steps += 1
        truncated = self.steps >= self.episode_steps
        terminated = self.position >= len(self.rows) - 1
        if terminated:
            self.position = len(self.rows) - 1
        info = {"turnover": period.turnover, "cost": period.cost, "row": row, "days": (row, stop)}
        return self._obs(), reward, terminated, truncated, info
