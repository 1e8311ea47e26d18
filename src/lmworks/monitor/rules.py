"""Alert rules over one topic's window aggregates: pure statistics, no store and no I/O.

A rule looks at one topic's windows in time order and says which windows alert.
Two rules ship:

* :class:`ThresholdRule`: negative share >= ``share`` with at least ``min_volume``
  items. Simple, and right for a topic that should never be mostly negative.
* :class:`SurgeRule`: the window is far above the topic's *own* recent baseline.
  For ``metric="share"`` the test is a z-score whose variance adds the binomial
  noise of the window's volume to the baseline's extra window-to-window spread
  (news cycles), so a quiet window with 3 of 5 items negative does not alert and
  a topic that is always negative never does; ``metric="volume"`` does the same
  for the count of negative items with Poisson noise, relative to the other
  topics' volume in the window (so a busy news day is not a surge everywhere). Both also need a material
  rise (``min_increase`` share points, or ``min_ratio`` times the baseline count)
  and enough history (``min_baseline`` windows) before they speak.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from ..errors import ConfigError
from .windows import WindowStat


class AlertRule:
    """Base class: ``check(series)`` returns the alerts for the windows of one topic."""

    kind: ClassVar[str] = "rule"

    def check(self, series: Sequence[WindowStat], window: int,
              totals: dict[int, int] | None = None) -> list[dict[str, Any]]:
        """Alerts (dicts ready for :meth:`Store.insert_alert`) for windows in ``series``.

        ``totals`` maps a window start to the item count of *all* topics in that window
        (the stream's news flow), for rules that need it.
        """
        raise NotImplementedError

    @property
    def name(self) -> str:
        """Stable identifier: the kind and its parameters (part of the de-duplication key)."""
        params = ",".join(f"{k}={v}" for k, v in asdict(self).items())  # type: ignore[call-overload]
        return f"{self.kind}({params})"

    def to_json(self) -> dict[str, Any]:
        """Kind and parameters."""
        return {"kind": self.kind, **asdict(self)}  # type: ignore[call-overload]

    @staticmethod
    def _alert(rule: AlertRule, stat: WindowStat, window: int, value: float, baseline: float | None,
               message: str) -> dict[str, Any]:
        return {"rule": rule.name, "topic": stat.topic, "window_start": stat.start, "window_seconds": window,
                "value": round(value, 4), "baseline": None if baseline is None else round(baseline, 4),
                "volume": stat.volume, "message": message}


@dataclass
class ThresholdRule(AlertRule):
    """Negative share >= ``share`` in a window with at least ``min_volume`` items."""

    share: float = 0.7
    min_volume: int = 20
    kind: ClassVar[str] = "threshold"

    def check(self, series: Sequence[WindowStat], window: int,  # noqa: D102
              totals: dict[int, int] | None = None) -> list[dict[str, Any]]:
        return [
            self._alert(self, s, window, s.negative_share, None,
                        f"{s.topic}: {s.negative_share:.0%} negative ({s.negatives}/{s.volume}) "
                        f">= {self.share:.0%}")
            for s in series if s.volume >= self.min_volume and s.negative_share >= self.share
        ]


@dataclass
class SurgeRule(AlertRule):
    """Negative share (or negative count) far above the topic's rolling baseline.

    The baseline is the previous ``baseline_windows`` windows that had items
    (at least ``min_baseline`` of them); windows with no items are skipped so a
    quiet night does not drag it down.
    """

    metric: str = "share"
    z: float = 3.0
    min_increase: float = 0.15
    min_ratio: float = 2.0
    min_volume: int = 10
    baseline_windows: int = 14
    min_baseline: int = 3
    kind: ClassVar[str] = "surge"

    def __post_init__(self) -> None:
        if self.metric not in ("share", "volume"):
            raise ConfigError(f"surge metric must be 'share' or 'volume', got {self.metric!r}")

    def check(self, series: Sequence[WindowStat], window: int,  # noqa: D102
              totals: dict[int, int] | None = None) -> list[dict[str, Any]]:
        out = []
        for i, stat in enumerate(series):
            history = [s for s in series[max(0, i - self.baseline_windows):i] if s.volume > 0]
            if len(history) < self.min_baseline or stat.volume < self.min_volume:
                continue
            if self.metric == "share":
                alert = self._share(stat, history)
            else:
                alert = self._volume(stat, history, totals or {})
            if alert is not None:
                out.append(self._alert(self, stat, window, *alert))
        return out

    def _share(self, stat: WindowStat, history: list[WindowStat]) -> tuple[float, float, str] | None:
        total = sum(s.volume for s in history)
        p0 = sum(s.negatives for s in history) / total
        p0_clamped = min(max(p0, 0.02), 0.98)  # a perfectly calm history must not make any rise infinite
        # Window-to-window variance beyond what the windows' own sampling noise explains (news cycles).
        shares = [s.negative_share for s in history]
        observed = _variance(shares)
        sampling = sum(p0_clamped * (1 - p0_clamped) / s.volume for s in history) / len(history)
        sd = math.sqrt(p0_clamped * (1 - p0_clamped) / stat.volume + max(0.0, observed - sampling))
        share = stat.negative_share
        z = (share - p0) / sd
        if z >= self.z and share - p0 >= self.min_increase:
            return share, p0, (f"{stat.topic}: negative share {share:.0%} ({stat.negatives}/{stat.volume}) vs "
                               f"baseline {p0:.0%} (z = {z:.1f})")
        return None

    def _volume(self, stat: WindowStat, history: list[WindowStat], totals: dict[int, int]
                ) -> tuple[float, float, str] | None:
        """Negatives far above the usual count *and* above what the day's news flow explains.

        The second test uses the other topics' items in the window as exposure, so a day
        with twice the news is not a surge in every topic; the first keeps a quiet day in
        the other topics (small exposure) from making an ordinary count look like one.
        """
        plain = _poisson_z(stat.negatives, [float(s.negatives) for s in history], [1.0] * len(history), 1.0)
        others = [float(totals.get(s.start, s.volume) - s.volume) for s in history]
        now = float(totals.get(stat.start, stat.volume) - stat.volume)
        flow = _poisson_z(stat.negatives, [float(s.negatives) for s in history], others, now) if (
            now > 0 and all(o > 0 for o in others)) else plain
        z, expected = min(plain[0], flow[0]), plain[1]
        if z >= self.z and stat.negatives >= self.min_ratio * max(expected, 1.0):
            return float(stat.negatives), expected, (f"{stat.topic}: {stat.negatives} negative items vs a usual "
                                                     f"{expected:.1f} per window (z = {z:.1f})")
        return None


def _poisson_z(count: float, counts: list[float], exposures: list[float], exposure: float) -> tuple[float, float]:
    """z-score of ``count`` against a Poisson rate per unit of exposure, with extra-Poisson spread."""
    rate = sum(counts) / sum(exposures)
    expected = rate * exposure
    residuals = [c - rate * e for c, e in zip(counts, exposures)]
    excess = max(0.0, _variance(residuals) - sum(rate * e for e in exposures) / len(exposures))
    return (count - expected) / math.sqrt(max(expected, 1.0) + excess), expected


def _variance(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return sum((x - mean) ** 2 for x in values) / (len(values) - 1)


RULES: dict[str, type[AlertRule]] = {"threshold": ThresholdRule, "surge": SurgeRule}
#: Share catches a topic turning negative; volume catches a pile-up of negative items on a
#: topic that is often negative already (its share has little room to rise).
DEFAULT_RULES = ("surge", "surge:metric=volume")


def parse_rule(text: str) -> AlertRule:
    """``"surge"``, ``"surge:z=4,min_volume=20"``, ``"threshold:share=0.8"`` -> a rule object."""
    kind, _, rest = text.partition(":")
    if kind not in RULES:
        raise ConfigError(f"unknown alert rule {kind!r}: choose {', '.join(RULES)}")
    params: dict[str, Any] = {}
    for part in filter(None, rest.split(",")):
        key, eq, value = part.partition("=")
        if not eq:
            raise ConfigError(f"rule parameter {part!r} must look like name=value")
        params[key.strip()] = _number(value.strip())
    try:
        return RULES[kind](**params)
    except TypeError as err:
        raise ConfigError(f"rule {text!r}: {err}") from err


def rule_from_json(data: dict[str, Any]) -> AlertRule:
    """Inverse of :meth:`AlertRule.to_json`."""
    data = dict(data)
    return RULES[data.pop("kind")](**data)


def _number(value: str) -> Any:
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            continue
    return value
