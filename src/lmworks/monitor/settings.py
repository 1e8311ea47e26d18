"""What a monitor store's alerts are computed with, kept in the store itself.

A store's alerts compare each window with that topic's previous windows, so every
command working on one store (ingest, alerts, summary, serve, report) must use the
same window size and rules. The first ingest records them in the store; later commands
read them back, and an ingest asking for another window size on a store that already
holds items is refused (its alerts would compare windows of two sizes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..errors import ConfigError
from .delivery import WebhookNotifier
from .ingest import Ingestor, OpinionClassifier
from .rules import DEFAULT_RULES, AlertRule, parse_rule, rule_from_json
from .store import Store
from .windows import format_window, parse_window

DEFAULT_WINDOW = "1h"


@dataclass
class MonitorSettings:
    """The alert window (seconds) and rules of a store."""

    window: int = 3600
    rules: list[AlertRule] = field(default_factory=lambda: [parse_rule(r) for r in DEFAULT_RULES])

    @classmethod
    def resolve(cls, store: Store, *, window: str | int | None = None,
                rules: Sequence[str] | None = None) -> MonitorSettings:
        """The given window and rules, else those recorded in ``store``, else the defaults."""
        stored_rules = store.get_setting("rules")
        if rules:
            parsed = [parse_rule(r) for r in rules]
        elif stored_rules:
            parsed = [rule_from_json(r) for r in stored_rules]
        else:
            parsed = [parse_rule(r) for r in DEFAULT_RULES]
        return cls(parse_window(window or store.get_setting("window") or DEFAULT_WINDOW), parsed)

    def check_store(self, store: Store) -> None:
        """Refuse a window size other than the one a non-empty store's alerts use."""
        recorded = store.get_setting("window")
        if recorded is not None and recorded != format_window(self.window) and store.count():
            raise ConfigError(f"this store's alerts use {recorded} windows; pass --window {recorded} "
                              "(or use a new --db)")

    def record(self, store: Store, classifier: OpinionClassifier | None = None) -> None:
        """Store the window, rules and models, so later commands on this store use the same ones."""
        store.set_setting("window", format_window(self.window))
        store.set_setting("rules", [r.to_json() for r in self.rules])
        if classifier is not None:
            store.set_setting("models", classifier.description)


@dataclass
class IngestConfig:
    """How a stream is classified and alerted on (the models and their options).

    Attributes
    ----------
    sentiment_model:
        An lmworks model directory with a negative and a positive label.
    topic_model:
        An optional topic model directory (else the item's ``topic``, else ``all``).
    negative_label, positive_label:
        The sentiment model's labels, when their names do not say it.
    batch_size:
        Items classified and stored per transaction.
    num_threads:
        Inference threads (default: the usable CPUs).
    webhook:
        URL every new alert is POSTed to (background thread, retries).
    """

    sentiment_model: str | Path
    topic_model: str | Path | None = None
    negative_label: str | None = None
    positive_label: str | None = None
    batch_size: int = 64
    num_threads: int | None = None
    webhook: str | None = None


def open_ingestor(store: Store, config: IngestConfig, settings: MonitorSettings, *, rejects: IO[str] | None = None,
                  on_alert: Callable[[dict[str, Any]], None] | None = None) -> Ingestor:
    """Load the models, check and record the settings in ``store``, and return the ingestor."""
    settings.check_store(store)
    classifier = OpinionClassifier(config.sentiment_model, config.topic_model, negative_label=config.negative_label,
                                   positive_label=config.positive_label, num_threads=config.num_threads)
    settings.record(store, classifier)
    webhook = WebhookNotifier(config.webhook, store) if config.webhook else None
    return Ingestor(store, classifier, window=settings.window, rules=settings.rules, batch_size=config.batch_size,
                    rejects=rejects, webhook=webhook, on_alert=on_alert)
