"""Walk-forward evaluation: train before each test year, choose on the year before it, test on it.

For each of the last ``test_years`` calendar years Y: agents train on the data up to the
start of Y-1, the checkpoint with the best utility on Y-1 (the validation year, inside the
training window) is kept, with the weight of its profile's strategic mix that the same
year supports (:func:`choose_anchor`), and Y is the test. The baselines (skfolio's equal
weight, inverse volatility, minimum variance and hierarchical risk parity) are fitted on
the trailing year before every rebalance of Y; each profile's strategic mix (1/N at the
middle of its band) runs beside them as the static allocation with that profile's risk.
Every strategy decides on the same days (the first at the last close before Y, on prices
up to then only), trades ``execution_lag`` closes later, pays the same costs on the assets
it trades, and earns the same cash rate. Each strategy is **one continuous portfolio**
across the test years (the windows change the model, not the holdings): it starts in cash
once, at the first test year. Its daily returns over all test years are one out-of-sample
record (per seed for the agents: mean and spread over seeds), and every number gets a
stationary-bootstrap interval (:mod:`~lmworks.advisor.uncertainty`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from .agents import AgentConfig, AgentKind, train_agent
from .env import AllocationEnv, Market, action_weights
from .features import LOOKBACK, Scaler, observation
from .metrics import DAYS, performance, summarise_runs
from .portfolio import REBALANCE_DAYS, Decide, Run, run_strategy
from .prices import Prices
from .profile import FULL_BAND, RiskProfile, equity_band, risk_aversion
from .strategies import ANCHOR_WEIGHTS, BASELINES, WINDOW, MenuItem, menu, strategic_mix
from .uncertainty import deflated_sharpe, intervals

#: Name prefix of the profiles' strategic mixes in a backtest (``strategic_conservative``: 1/N
#: at the middle of the conservative band, rebalanced on the agents' days): the static
#: allocation with the agent's level of risk, against which its tactics are judged.
STRATEGIC = "strategic"

LOGGER = logging.getLogger("lmworks")


@dataclass
class BacktestConfig:
    """Settings of a walk-forward backtest (``to_dict`` is recorded with the results).

    Attributes
    ----------
    test_years:
        How many of the last calendar years are tested, one after the other.
    cost_bps:
        Trading cost in basis points of the turnover.
    rebalance_days:
        Trading days between decisions (21: monthly).
    seeds:
        Training seeds of every agent; results are the mean and spread over them.
    profiles, agents:
        Which risk profiles and agent families to train.
    episode_steps:
        Holding periods per training episode (default: a year of them).
    agent:
        Training settings of the agents.
    anchors:
        Candidate weights of the strategic mix in each agent's targets, chosen on the
        validation year (:data:`ANCHOR_WEIGHTS`; ``(0.0,)``: the agent alone).
    execution_lag:
        Closes between a decision and its trade (1: decide at a close, trade at the next).
    cash_rate:
        Annual rate cash earns (``None``: the price file's rate column if it has one, else 0).
    configurations_tried:
        How many configurations were tried before this one (design choices made after seeing
        test years included) for the deflated Sharpe ratio; ``None``: the strategies in this
        backtest only, which understates it.
    """

    test_years: int = 5
    cost_bps: float = 10.0
    rebalance_days: int = REBALANCE_DAYS
    seeds: tuple[int, ...] = (0, 1, 2)
    profiles: tuple[str, ...] = tuple(p.value for p in RiskProfile)
    agents: tuple[str, ...] = tuple(k.value for k in AgentKind)
    episode_steps: int | None = None
    agent: AgentConfig = field(default_factory=AgentConfig)
    anchors: tuple[float, ...] = ANCHOR_WEIGHTS
    execution_lag: int = 1
    cash_rate: float | None = None
    configurations_tried: int | None = None

    def __post_init__(self) -> None:
        check_anchors(self.anchors)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {**dataclasses.asdict(self), "seeds": list(self.seeds), "profiles": list(self.profiles),
                "agents": list(self.agents), "agent": self.agent.to_dict(), "anchors": list(self.anchors)}


@dataclass
class Window:
    """Rows (of the returns table) of one walk-forward step."""

    test_year: int
    validation_start: int
    test_start: int
    test_end: int


def walk_forward(market: Market, test_years: int) -> list[Window]:
    """The last ``test_years`` whole calendar years, each with the year before it for validation.

    Rows are return rows: a window's rows run from the last close before its year (where its
    first decision is taken) to the last close before the next year.
    """
    earned = market.prices.dates[1: len(market.returns) + 1]  # the day each return row is earned on
    years = sorted(set(earned.year))
    first_row = {year: int(np.flatnonzero(earned.year == year)[0]) for year in years}
    usable = [y for y in years[2:] if first_row[y - 1] >= max(LOOKBACK, WINDOW) + DAYS
              and (earned.year == y).sum() >= 200 and y - 1 in first_row]
    if not usable:
        raise DataError(f"{market.prices.source}: {len(earned) + 1} trading days is too short: a backtest needs "
                        f"{max(LOOKBACK, WINDOW)} days of trailing history, a year of training, a validation "
                        "year and a test year")
    windows = []
    for year in usable[-test_years:]:
        end = first_row[year + 1] if year + 1 in first_row else len(market.returns)
        windows.append(Window(year, first_row[year - 1], first_row[year], end))
    return windows


def daily_utility(run: Run, lam: float) -> np.ndarray:
    """What the agents maximise, day by day: net log return minus ``lam / 2`` times the squared return."""
    return np.log1p(run.daily) - lam / 2 * np.square(run.daily)


def check_anchors(anchors: tuple[float, ...]) -> None:
    """Refuse an empty grid or a weight outside [0, 1]."""
    if not anchors or any(not 0.0 <= a <= 1.0 for a in anchors):
        raise ConfigError(f"anchor weights must be one or more numbers in [0, 1], got {list(anchors)}")


def policy_decide(model: Any, market: Market, scaler: Scaler, kind: AgentKind,
                  band: tuple[float, float] = FULL_BAND, anchor: float = 0.0) -> Decide:
    """``decide`` for :func:`run_strategy` from an agent trained in ``band`` (deterministic actions).

    ``anchor`` blends that share of the band's strategic mix into the agent's target; a
    blend of two allocations inside the band stays inside it.
    """
    items, strategic = menu(band), strategic_mix(band)
    if anchor >= 1.0:  # the strategic mix alone: the agent is not consulted
        return mix_decide(market, strategic)

    def decide(k: int, row: int, weights: np.ndarray) -> np.ndarray:
        obs = observation(scaler.transform(market.features[row]), weights)
        action, _ = model.predict(obs, deterministic=True)
        target = (action_weights(action, band, market.eligible[row]) if kind is AgentKind.PPO
                  else market.menu_target(row, items[int(action)]))
        return (1.0 - anchor) * target + anchor * market.menu_target(row, strategic) if anchor > 0 else target

    return decide


def validator(market: Market, scaler: Scaler, kind: AgentKind, band: tuple[float, float], lam: float,
              rows: np.ndarray, end: int, cost_bps: float) -> Callable[..., np.ndarray]:
    """``days(model, anchor=0) -> daily utilities``: the agent run deterministically over the validation ``rows``."""
    def days(model: Any, anchor: float = 0.0) -> np.ndarray:
        run = run_strategy(policy_decide(model, market, scaler, kind, band, anchor), market.returns, rows, end,
                           cost_bps, lag=market.execution_lag)
        return daily_utility(run, lam)

    return days


def total(days: Callable[..., np.ndarray]) -> Callable[[Any], float]:
    """``validate(model) -> utility`` (the validation year's sum) for checkpoint selection."""
    return lambda model: float(days(model).sum())


def choose_anchor(model: Any, days: Callable[..., np.ndarray], anchors: tuple[float, ...]) -> tuple[float, float]:
    """The weight of the strategic mix to keep (one of ``anchors``), and its validation utility.

    The one-standard-error rule (Hastie, Tibshirani & Friedman, *Elements of Statistical
    Learning*, 7.10): among the weights whose validation utility is within one standard
    error of the best one's, keep the largest, the simplest allocation. The standard error
    is that of the summed daily utility difference to the best weight. A year of
    validation is short: an agent's tactic is followed only where it beat its profile's
    strategic mix there by more than the noise, the remedy DeMiguel, Garlappi & Uppal
    (2009) point to for estimation error. With a single weight nothing is chosen; weight
    0's utility is then the one :func:`~lmworks.advisor.agents.train_agent` chose the
    checkpoint by (``model.validation_utility_``).
    """
    if len(anchors) == 1:
        only = anchors[0]
        return only, float(model.validation_utility_ if only == 0.0 else days(model, only).sum())
    series = {a: days(model, a) for a in sorted(set(anchors))}
    best = max(series, key=lambda a: series[a].sum())

    def within(a: float) -> bool:
        gap = series[a] - series[best]
        spread = gap.std(ddof=1) * np.sqrt(len(gap)) if len(gap) > 1 else 0.0
        return bool(gap.sum() >= -spread)

    chosen = max(a for a in series if within(a))
    return chosen, float(series[chosen].sum())


def mix_decide(market: Market, item: MenuItem) -> Decide:
    """``decide`` holding one menu item, e.g. a profile's strategic mix."""
    def decide(k: int, row: int, current: np.ndarray) -> np.ndarray:
        return market.menu_target(row, item)

    return decide


def rule_decide(market: Market, name: str) -> Decide:
    """``decide`` for a rule of :data:`~lmworks.advisor.strategies.RULES` (the baselines among them)."""
    def decide(k: int, row: int, current: np.ndarray) -> np.ndarray:
        return market.rules_at(row)[name]

    return decide


#: Each strategy's weights where its portfolio stands, per seed: carried from one test year to the next.
Holdings = dict[str, list[np.ndarray]]


def run_window(market: Market, window: Window, config: BacktestConfig, holdings: Holdings | None = None,
               on_agent: Callable[[str], None] | None = None) -> tuple[dict[str, list[Run]], dict[str, list[float]]]:
    """Every strategy's test-year runs for one window (agents: one run per seed), and the agents' anchor weights.

    ``holdings`` (updated in place) is where each strategy's portfolio ended the year before;
    a strategy not in it starts in cash.
    """
    holdings = {} if holdings is None else holdings
    test_rows = market.rows_between(window.test_start, window.test_end)

    def test(name: str, seed_index: int, decide: Decide) -> Run:
        carried = holdings.get(name, [])
        run = run_strategy(decide, market.returns, test_rows, window.test_end, config.cost_bps,
                           lag=market.execution_lag, start=carried[seed_index] if seed_index < len(carried) else None)
        assert run.end_weights is not None  # run_strategy always says where it ended
        holdings.setdefault(name, [])[seed_index:seed_index + 1] = [run.end_weights]
        return run

    runs: dict[str, list[Run]] = {name: [test(name, 0, rule_decide(market, name))] for name in BASELINES}
    for profile in config.profiles:  # the same-risk comparator of each profile's agents
        name = f"{STRATEGIC}_{profile}"
        runs[name] = [test(name, 0, mix_decide(market, strategic_mix(equity_band(profile))))]
    scaler = Scaler.fit(market.features, slice(LOOKBACK, window.validation_start))
    validation_rows = market.rows_between(window.validation_start, window.test_start)
    anchors: dict[str, list[float]] = {}
    for profile in config.profiles:
        lam, band = risk_aversion(profile), equity_band(profile)
        for kind in (AgentKind.parse(a) for a in config.agents):
            name = f"{kind.value}_{profile}"
            runs[name], anchors[name] = [], []
            for i, seed in enumerate(config.seeds):
                env = AllocationEnv(market, scaler, risk_aversion=lam, start=LOOKBACK,
                                    end=window.validation_start, cost_bps=config.cost_bps,
                                    episode_steps=config.episode_steps, action=kind.action, band=band)
                days = validator(market, scaler, kind, band, lam, validation_rows, window.test_start,
                                 config.cost_bps)
                model = train_agent(kind, env, config.agent, seed, total(days))
                anchors[name].append(choose_anchor(model, days, config.anchors)[0])
                runs[name].append(test(name, i, policy_decide(model, market, scaler, kind, band, anchors[name][-1])))
                if on_agent is not None:
                    on_agent(f"{window.test_year} {name} seed {seed}")
    return runs, anchors


@dataclass
class BacktestResult:
    """The JSON summary, and every strategy's daily out-of-sample returns with their dates (for charts)."""

    summary: dict[str, Any]
    dates: list[str]
    daily: dict[str, list[np.ndarray]]


def backtest(prices: Prices, config: BacktestConfig | None = None, *, progress: bool = True) -> BacktestResult:
    """Run the walk-forward backtest; see the module docstring."""
    config = config or BacktestConfig()
    market = Market(prices, config.rebalance_days, config.execution_lag, config.cash_rate)
    windows = walk_forward(market, config.test_years)
    market.menu_weights()  # fitted once for every window, rules and agents alike
    bar = _bar(len(windows) * len(config.profiles) * len(config.agents) * len(config.seeds), progress)
    joined: dict[str, list[list[np.ndarray]]] = {}
    per_window: list[dict[str, Any]] = []
    totals: dict[tuple[str, int], list[float]] = {}
    holdings: Holdings = {}
    for window in windows:
        runs, anchors = run_window(market, window, config, holdings,
                                   on_agent=(lambda _: bar.update(1)) if bar is not None else None)
        cash = market.returns[window.test_start:window.test_end, -1]
        per_window.append({
            "test_year": window.test_year, "validation_year": window.test_year - 1,
            "train_from": str(market.prices.dates[LOOKBACK].date()),
            "train_until": str(market.prices.dates[window.validation_start].date()),
            "strategies": {name: summarise_runs([_metrics(r, cash) for r in rs]) for name, rs in runs.items()},
            "anchor_weights": anchors,
        })
        for name, rs in runs.items():
            seeds = joined.setdefault(name, [[] for _ in rs])
            for i, run in enumerate(rs):
                seeds[i].append(run.daily)
                totals.setdefault((name, i), [0.0, 0.0])
                totals[(name, i)][0] += run.turnover
                totals[(name, i)][1] += run.cost
    if bar is not None:
        bar.close()
    daily = {n: [np.concatenate(d) for d in s] for n, s in joined.items()}
    risk_free = market.returns[windows[0].test_start:windows[-1].test_end, -1]
    strategies = {}
    for name, series in daily.items():
        per_seed = [performance(days, turnover=totals[(name, i)][0], costs=totals[(name, i)][1], risk_free=risk_free)
                    for i, days in enumerate(series)]
        strategies[name] = summarise_runs(per_seed)
        if len(per_seed) > 1:
            strategies[name]["per_seed"] = per_seed
    _add_uncertainty(strategies, daily, risk_free, config)
    dates = [str(d.date()) for d in market.prices.dates[windows[0].test_start + 1: windows[-1].test_end + 1]]
    summary = {"strategies": strategies, "windows": per_window, "config": config.to_dict(),
               "assets": prices.assets, "source": prices.source,
               "test_period": [dates[0], dates[-1]] if dates else None,
               "cash_rate": {"annual_mean": float(np.mean((1 + risk_free) ** DAYS - 1)) if len(risk_free) else 0.0},
               "intervals": {"method": "stationary bootstrap (Politis & Romano), mean block n^(1/3) days, paired "
                             "across strategies, percentile", "level": 0.95}}
    return BacktestResult(summary, dates, daily)


def _add_uncertainty(strategies: dict[str, dict[str, Any]], daily: dict[str, list[np.ndarray]],
                     risk_free: np.ndarray, config: BacktestConfig) -> None:
    """Intervals for every strategy, its Sharpe against 1/N (and an agent's against its own mix), deflated Sharpe."""
    references = {}
    for name in daily:
        kind, _, profile = name.partition("_")
        agent = kind in AgentKind.choices()  # an agent is also judged against its own profile's mix
        references[name] = ["equal_weight", *([f"{STRATEGIC}_{profile}"] if agent else [])]
    for name, extra in intervals(daily, risk_free, references).items():
        strategies[name].update(extra)
    daily_sharpes = [strategies[n]["sharpe"] / np.sqrt(DAYS) for n in strategies]
    trials = config.configurations_tried or len(strategies)
    variance = float(np.var(daily_sharpes, ddof=1)) if len(daily_sharpes) > 1 else 0.0
    for name, seeds in daily.items():
        strategies[name]["deflated_sharpe"] = float(np.mean([deflated_sharpe(s - risk_free, trials, variance)
                                                             for s in seeds]))
        strategies[name]["configurations_tried"] = trials


def _metrics(run: Run, risk_free: np.ndarray) -> dict[str, Any]:
    return performance(run.daily, turnover=run.turnover, costs=run.cost, risk_free=risk_free)


def _bar(total: int, enabled: bool) -> Any:
    if not enabled or total == 0:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="agents trained", unit="agent", dynamic_ncols=True)


__all__ = ["BacktestConfig", "BacktestResult", "Window", "backtest", "walk_forward"]
