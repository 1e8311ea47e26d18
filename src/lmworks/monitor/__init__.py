"""Financial opinion monitoring: classify a stream by topic and sentiment, aggregate, alert, chart."""

from .alerts import AlertRule, SurgeRule, ThresholdRule, WebhookNotifier, evaluate_rules, parse_rule, parse_window
from .ingest import Ingestor, OpinionClassifier, StreamItem, parse_item, parse_line
from .store import PostgresStore, SQLiteStore, Store, WindowStat, open_store

__all__ = [
    "AlertRule", "Ingestor", "OpinionClassifier", "PostgresStore", "SQLiteStore", "Store", "StreamItem",
    "SurgeRule", "ThresholdRule", "WebhookNotifier", "WindowStat", "evaluate_rules", "open_store", "parse_item",
    "parse_line", "parse_rule", "parse_window",
]
