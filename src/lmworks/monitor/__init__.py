"""Financial opinion monitoring: classify a stream by topic and sentiment, aggregate, alert, chart.

:mod:`.ingest` parses and classifies a stream and stores it (:mod:`.store`); :mod:`.windows`
aggregates it per topic and window; :mod:`.rules` holds the alert statistics,
:mod:`.alerts` applies them to a store and :mod:`.delivery` posts new alerts to a
webhook; :mod:`.settings` keeps a store's window and rules; :mod:`.service` is the
dashboard; :mod:`.demo` replays a stream with a known surge.
"""

from .alerts import evaluate_rules
from .delivery import WebhookNotifier
from .ingest import Ingestor, OpinionClassifier, StreamItem, parse_item, parse_line
from .rules import AlertRule, SurgeRule, ThresholdRule, parse_rule
from .settings import IngestConfig, MonitorSettings, open_ingestor
from .store import PostgresStore, SQLiteStore, Store, open_store
from .windows import WindowStat, parse_window

__all__ = [
    "AlertRule", "IngestConfig", "Ingestor", "MonitorSettings", "OpinionClassifier", "PostgresStore", "SQLiteStore",
    "Store", "StreamItem", "SurgeRule", "ThresholdRule", "WebhookNotifier", "WindowStat", "evaluate_rules",
    "open_ingestor", "open_store", "parse_item", "parse_line", "parse_rule", "parse_window",
]
