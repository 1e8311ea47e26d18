"""Time windows and per-topic window aggregates: what the alert rules and the dashboard read.

Pure values and functions (no store, no I/O), so the statistics built on them can be
tested alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import ConfigError

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_window(text: str | int) -> int:
    """``"1h"``, ``"30m"``, ``"1d"``, ``"1w"`` or seconds -> seconds."""
    if isinstance(text, int):
        seconds = text
    else:
        match = re.fullmatch(r"\s*(\d+)\s*([smhdw]?)\s*", str(text).lower())
        if not match:
            raise ConfigError(f"window must look like 30m, 1h, 6h, 1d or 1w, got {text!r}")
        seconds = int(match.group(1)) * UNITS[match.group(2) or "s"]
    if seconds < 60:
        raise ConfigError(f"window must be at least one minute, got {seconds} s")
    return seconds


def format_window(seconds: int) -> str:
    """Seconds -> the shortest unit string (86400 -> ``"1d"``)."""
    for unit in ("w", "d", "h", "m"):
        if seconds % UNITS[unit] == 0:
            return f"{seconds // UNITS[unit]}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class WindowStat:
    """Aggregates of one topic in one time window."""

    topic: str
    start: int
    volume: int
    negatives: int
    mean_sentiment: float

    @property
    def negative_share(self) -> float:
        """Negative items / items."""
        return self.negatives / self.volume if self.volume else 0.0


def by_topic(stats: Iterable[WindowStat]) -> dict[str, list[WindowStat]]:
    """Window aggregates grouped per topic, in the order they come (time order from the store)."""
    out: dict[str, list[WindowStat]] = {}
    for stat in stats:
        out.setdefault(stat.topic, []).append(stat)
    return out


def fill_gaps(series: list[WindowStat], window: int) -> list[WindowStat]:
    """Insert empty windows so "the previous N windows" means time, not rows."""
    out: list[WindowStat] = []
    for stat in series:
        while out and out[-1].start + window < stat.start:
            out.append(WindowStat(stat.topic, out[-1].start + window, 0, 0, 0.0))
        out.append(stat)
    return out
