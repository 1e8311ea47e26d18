"""Alerts: run the rules (:mod:`.rules`) over a store's window aggregates and keep the new alerts.

Alerts are stored de-duplicated per rule, topic and window; the caller hands the new
ones to the log and, optionally, to :mod:`.delivery`'s webhook.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .rules import AlertRule
from .store import Store
from .windows import by_topic, fill_gaps


def evaluate_rules(store: Store, rules: Sequence[AlertRule], window: int, *, since: int | None = None,
                   topics: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Run every rule on every topic's windows; store and return the alerts that are new."""
    baseline = max((getattr(r, "baseline_windows", 0) for r in rules), default=0)
    start = None if since is None else (since // window - baseline) * window
    stats = store.window_stats(window, since=start)
    totals: dict[int, int] = {}
    for stat in stats:
        totals[stat.start] = totals.get(stat.start, 0) + stat.volume
    series = {t: v for t, v in by_topic(stats).items() if topics is None or t in topics}
    new = []
    for topic_series in series.values():
        filled = fill_gaps(topic_series, window)
        for rule in rules:
            for alert in rule.check(filled, window, totals):
                if since is not None and alert["window_start"] + window <= since:
                    continue  # an older window: judged when its own items arrived
                alert_id = store.insert_alert(alert)
                if alert_id is not None:
                    new.append({**alert, "id": alert_id})
    return new
