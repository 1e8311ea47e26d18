"""``Advisor``: agents for every risk profile, trained on a price history, that answer "what now?".

``allocate`` answers only for the close the advisor was trained up to, or later ones (with
newer prices): an earlier date would be answered by agents, checkpoints and anchors chosen
on prices after it, an in-sample answer. ``fit(..., until=DATE)`` trains on the history up
to a date, for answers about that date.

``fit`` trains one agent per profile on all the history but its last year, keeping the
checkpoint that does best on that last year (validation), and the weight of the profile's
strategic mix that year supports (``backtest.choose_anchor``: the agent's tactic only where
it beat the strategic mix by more than the noise). ``allocate`` returns the
target weights for a profile at the close of a date, with the trailing features the
agent saw, so an adviser can explain the decision. The directory holds the prices it
was trained on (``allocate`` needs their history), the agents and ``advisor.json``.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..atomic import atomic_dir
from ..errors import ConfigError
from ..model_dir import check_output_dir, read_manifest, write_manifest
from .agents import AgentConfig, AgentKind, load_agent, train_agent
from .backtest import check_anchors, choose_anchor, policy_decide, total, validator
from .env import AllocationEnv, Market
from .features import LOOKBACK, RETURN_WINDOWS, VOL_WINDOWS, Scaler
from .metrics import DAYS
from .portfolio import REBALANCE_DAYS
from .prices import Prices, check_prices
from .profile import RiskProfile, equity_band, nearest_profile, risk_aversion
from .strategies import ANCHOR_WEIGHTS, menu, strategic_mix

LOGGER = logging.getLogger("lmworks")
META_FILE = "advisor.json"
FORMAT = "lmworks-advisor"
PRICES_FILE = "prices.csv"
#: Column of ``prices.csv`` holding the cash rate the advisor was trained with, if it came from the price file.
RATE_COLUMN = "lmworks_cash_rate"
VALIDATION_DAYS = DAYS  # the last year


@dataclass
class AdvisorConfig:
    """How an advisor is trained.

    Attributes
    ----------
    agent:
        ``dqn`` (chooses among allocation rules; its choice names the rule) or ``ppo``
        (continuous weights).
    default_risk:
        The profile ``allocate`` answers for when none is given.
    profiles:
        Profiles to train an agent for.
    cost_bps, rebalance_days, episode_steps:
        As in :class:`~lmworks.advisor.backtest.BacktestConfig`.
    seed:
        Training seed.
    training:
        The agents' training settings.
    anchors:
        Candidate weights of the profile's strategic mix in the agent's targets, chosen
        on the validation year (see :data:`~lmworks.advisor.strategies.ANCHOR_WEIGHTS`).
    execution_lag, cash_rate:
        As in :class:`~lmworks.advisor.backtest.BacktestConfig`: the terms the agents train under.
    """

    agent: str = "dqn"
    default_risk: str = "moderate"
    profiles: tuple[str, ...] = tuple(p.value for p in RiskProfile)
    cost_bps: float = 10.0
    rebalance_days: int = REBALANCE_DAYS
    episode_steps: int | None = None
    seed: int = 0
    training: AgentConfig = field(default_factory=AgentConfig)
    anchors: tuple[float, ...] = ANCHOR_WEIGHTS
    execution_lag: int = 1
    cash_rate: float | None = None

    def __post_init__(self) -> None:
        check_anchors(self.anchors)
        AgentKind.parse(self.agent)
        for profile in (self.default_risk, *self.profiles):
            RiskProfile.parse(profile)
        if self.default_risk not in self.profiles:
            raise ConfigError(f"default risk {self.default_risk!r} is not among the trained profiles "
                              f"{list(self.profiles)}")

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {**dataclasses.asdict(self), "profiles": list(self.profiles), "training": self.training.to_dict(),
                "anchors": list(self.anchors)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AdvisorConfig:
        """Inverse of :meth:`to_dict`."""
        training = data.get("training", {})
        return cls(**{**data, "profiles": tuple(data["profiles"]), "anchors": tuple(data.get("anchors", (0.0,))),
                      "training": AgentConfig(**{**training, "net": tuple(training.get("net", (64, 64)))})})


class Advisor:
    """Allocation agents per risk profile over one universe of assets."""

    def __init__(self, config: AdvisorConfig | None = None) -> None:
        self.config = config or AdvisorConfig()

    def fit(self, prices: Prices, *, until: str | None = None, progress: bool = True) -> Advisor:
        """Train an agent per profile on all but the last year; keep the best checkpoint on that year.

        ``until`` (an ISO date) trains on the prices up to that close only, so that
        :meth:`allocate` can answer for it and later dates out of sample.
        """
        cfg = self.config
        prices = prices.until(until) if until is not None else prices
        market = Market(prices, cfg.rebalance_days, cfg.execution_lag, cfg.cash_rate)
        validation_start = len(market.returns) - VALIDATION_DAYS
        if validation_start - LOOKBACK < 2 * VALIDATION_DAYS:
            raise ConfigError(f"{prices.source}: {len(market.returns) + 1} trading days is too short: training "
                              f"needs {LOOKBACK} days of trailing history, a year of training and a validation year")
        self.scaler_ = Scaler.fit(market.features, slice(LOOKBACK, validation_start))
        kind = AgentKind.parse(cfg.agent)
        rows = market.rows_between(validation_start, len(market.returns))
        self.agents_: dict[str, Any] = {}
        self.validation_: dict[str, float] = {}
        self.bands_: dict[str, tuple[float, float]] = {}
        self.anchors_: dict[str, float] = {}
        for profile in cfg.profiles:
            lam, band = risk_aversion(profile), equity_band(profile)
            self.bands_[profile] = band
            env = AllocationEnv(market, self.scaler_, risk_aversion=lam, start=LOOKBACK, end=validation_start,
                                cost_bps=cfg.cost_bps, episode_steps=cfg.episode_steps, action=kind.action, band=band)
            days = validator(market, self.scaler_, kind, band, lam, rows, len(market.returns), cfg.cost_bps)
            if progress:
                LOGGER.info("training the %s agent for the %s profile (risk aversion %g, %.0f-%.0f %% in assets)",
                            kind.value, profile, lam, 100 * band[0], 100 * band[1])
            self.agents_[profile] = train_agent(kind, env, cfg.training, cfg.seed, total(days))
            self.anchors_[profile], self.validation_[profile] = choose_anchor(self.agents_[profile], days,
                                                                              cfg.anchors)
        self.prices_ = prices
        return self

    def allocate(self, *, as_of: str | None = None, risk: str | float | None = None,
                 prices: Prices | None = None, current: np.ndarray | None = None) -> dict[str, Any]:
        """Target weights at the close of ``as_of`` (default: the last date) for a profile or risk aversion.

        ``current`` is the portfolio's weights now (assets then cash; default: all cash);
        ``prices`` replaces the stored history (same assets), e.g. with newer closes.
        """
        prices = prices or self.prices_
        if prices.assets != self.prices_.assets:
            raise ConfigError(f"prices have assets {prices.assets}, the advisor was trained on {self.prices_.assets}")
        profile, lam = self._profile(risk)
        market = Market(prices, self.config.rebalance_days, self.config.execution_lag, self.config.cash_rate)
        row = prices.position(as_of) if as_of is not None else len(prices.dates) - 1
        trained_until = self.prices_.dates[-1]
        if prices.dates[row] < trained_until:
            raise ConfigError(f"--as-of {prices.dates[row].date()} is before this advisor's training data ends "
                              f"({trained_until.date()}): its agents, checkpoints and anchors were chosen on later "
                              f"prices; train one with `lmworks advisor train --until {prices.dates[row].date()}`")
        if row < LOOKBACK:
            raise ConfigError(f"--as-of {prices.dates[row].date()} has less than {LOOKBACK} days of history before it")
        weights = np.zeros(market.n_weights)
        if current is None:
            weights[-1] = 1.0
        else:
            weights = np.asarray(current, dtype=np.float64)
        kind = AgentKind.parse(self.config.agent)
        band, anchor = self.bands_[profile], self.anchors_[profile]
        target = policy_decide(self.agents_[profile], market, self.scaler_, kind, band, anchor)(0, row, weights)
        out: dict[str, Any] = {
            "as_of": str(prices.dates[row].date()), "profile": profile, "risk_aversion": lam, "agent": kind.value,
            "asset_share_band": list(band),
            "weights": {name: round(float(w), 6) for name, w in zip([*prices.assets, "cash"], target)},
            "strategic_mix": {"name": strategic_mix(band).name, "weight": anchor},
            "features": self._explain(market.features[row], prices.assets),
        }
        if kind is AgentKind.DQN and anchor < 1.0:  # name the agent's own choice, before any blending
            own = target if anchor == 0.0 else policy_decide(self.agents_[profile], market, self.scaler_, kind,
                                                             band)(0, row, weights)
            out["rule"] = menu(band)[int(np.argmin(np.abs(market.menu_at(row, band) - own).sum(axis=1)))].name
        if risk is not None and (isinstance(risk, (int, float)) or _is_number(str(risk))):
            out["note"] = f"risk aversion {lam:g} answered with the nearest trained profile, {profile}"
        return out

    def _profile(self, risk: str | float | None) -> tuple[str, float]:
        """The trained profile that answers ``risk`` (a profile name, or a number: the nearest), and its lambda."""
        trained = list(self.agents_)
        if risk is None:
            return self.config.default_risk, risk_aversion(self.config.default_risk)
        if isinstance(risk, (int, float)) or _is_number(str(risk)):
            lam = risk_aversion(float(risk))
            return nearest_profile(lam, trained), lam
        profile = RiskProfile.parse(risk).value
        if profile not in trained:
            raise ConfigError(f"no agent for profile {profile!r}; this advisor has {', '.join(trained)}")
        return profile, risk_aversion(profile)

    @staticmethod
    def _explain(features: np.ndarray, assets: list[str]) -> dict[str, dict[str, float]]:
        names = [f"return_{w}d" for w in RETURN_WINDOWS] + [f"volatility_{w}d" for w in VOL_WINDOWS]
        return {asset: {n: round(float(v), 6) for n, v in zip(names, row)} for asset, row in zip(assets, features)}

    # -- persistence ----------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write the advisor directory atomically."""
        directory = Path(directory)
        check_output_dir(directory, meta_file=META_FILE)
        with atomic_dir(directory) as tmp:
            frame = self.prices_.frame.copy()
            if self.prices_.rates is not None:
                frame[RATE_COLUMN] = self.prices_.rates.to_numpy()
            frame.index.name = "date"
            frame.to_csv(tmp / PRICES_FILE)
            (tmp / "agents").mkdir()
            for profile, model in self.agents_.items():
                model.save(str(tmp / "agents" / f"{profile}.zip"))
            write_manifest(tmp, META_FILE, {"format": FORMAT, "config": self.config.to_dict(),
                                            "scaler": dataclasses.asdict(self.scaler_), "assets": self.prices_.assets,
                                            "validation_utility": self.validation_,
                                            "bands": {p: list(b) for p, b in self.bands_.items()},
                                            "anchor_weights": self.anchors_,
                                            "trained_until": str(self.prices_.dates[-1].date())})
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> Advisor:
        """Load and verify a directory written by :meth:`save`."""
        directory = Path(directory)
        meta = read_manifest(directory, META_FILE, FORMAT, "an advisor directory")
        self = cls(AdvisorConfig.from_dict(meta["config"]))
        self.scaler_ = Scaler(**meta["scaler"])
        frame = pd.read_csv(directory / PRICES_FILE, index_col="date", parse_dates=["date"])
        rates = frame.pop(RATE_COLUMN) if RATE_COLUMN in frame.columns else None
        self.prices_ = check_prices(frame, source=str(directory / PRICES_FILE), rates=rates)
        self.agents_ = {p: load_agent(self.config.agent, str(directory / "agents" / f"{p}.zip"))
                        for p in self.config.profiles}
        self.validation_ = meta.get("validation_utility", {})
        if "bands" not in meta:
            raise ConfigError(f"{directory}: trained by an older lmworks whose agents had no risk bands; "
                              "train it again with `lmworks advisor train`")
        self.bands_ = {p: (float(b[0]), float(b[1])) for p, b in meta["bands"].items()}
        # directories from before the strategic mix follow their agents alone, as they did
        self.anchors_ = {p: float(meta.get("anchor_weights", {}).get(p, 0.0)) for p in self.config.profiles}
        return self


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
