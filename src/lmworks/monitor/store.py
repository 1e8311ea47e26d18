"""Where classified items and alerts live: SQLite by default, PostgreSQL by URL.

One small interface (:class:`Store`) with the SQL written once: both engines
understand ``INSERT ... ON CONFLICT DO NOTHING`` and integer division of
``BIGINT`` epoch seconds, so the only dialect difference is the parameter marker.
Every write of a batch is one transaction: an item is *acknowledged* (reported
ingested, answered 200 over HTTP) only after its transaction committed, so a
crash loses nothing acknowledged, and re-ingesting is a no-op because ``id`` is
the primary key.
"""

from __future__ import annotations

import datetime as _dt
import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .windows import WindowStat

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS items (
        id TEXT PRIMARY KEY,
        ts BIGINT NOT NULL,
        timestamp TEXT NOT NULL,
        source TEXT,
        text TEXT NOT NULL,
        topic TEXT NOT NULL,
        topic_scores TEXT,
        sentiment_label TEXT NOT NULL,
        sentiment_scores TEXT NOT NULL,
        sentiment DOUBLE PRECISION NOT NULL,
        negative INTEGER NOT NULL,
        ingested_at TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS items_topic_ts ON items (topic, ts)",
    "CREATE INDEX IF NOT EXISTS items_ts ON items (ts)",
    """CREATE TABLE IF NOT EXISTS alerts (
        id {autoid},
        rule TEXT NOT NULL,
        topic TEXT NOT NULL,
        window_start BIGINT NOT NULL,
        window_seconds BIGINT NOT NULL,
        value DOUBLE PRECISION NOT NULL,
        baseline DOUBLE PRECISION,
        volume INTEGER NOT NULL,
        message TEXT NOT NULL,
        created_at TEXT NOT NULL,
        delivered INTEGER NOT NULL DEFAULT 0,
        UNIQUE (rule, topic, window_start, window_seconds)
    )""",
    "CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
]

ITEM_COLUMNS = ("id", "ts", "timestamp", "source", "text", "topic", "topic_scores", "sentiment_label",
                "sentiment_scores", "sentiment", "negative", "ingested_at")


def now_iso() -> str:
    """UTC now, ISO 8601 with milliseconds."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


class Store:
    """Items, alerts and settings behind a DB-API connection (subclasses open it)."""

    marker = "?"
    autoid = "INTEGER PRIMARY KEY AUTOINCREMENT"

    def __init__(self, conn: Any, url: str) -> None:
        self.conn = conn
        self.url = url
        self._lock = threading.RLock()  # one connection, shared by the HTTP threads
        with self._lock:
            cur = self.conn.cursor()
            for statement in SCHEMA:
                cur.execute(statement.replace("{autoid}", self.autoid))
            self.conn.commit()

    def _sql(self, sql: str) -> str:
        return sql if self.marker == "?" else sql.replace("?", self.marker)

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            cur = self.conn.cursor()
            cur.execute(self._sql(sql), tuple(params))
            rows = cur.fetchall()
            self.conn.commit()  # ends the read transaction (PostgreSQL would hold it open)
            return rows

    # -- items --------------------------------------------------------------------
    def existing_ids(self, ids: Iterable[str]) -> set[str]:
        """Which of ``ids`` are stored already (so re-ingesting skips classification)."""
        ids = list(ids)
        found: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(r[0] for r in self._query(f"SELECT id FROM items WHERE id IN ({marks})", chunk))
        return found

    def insert_items(self, rows: Sequence[dict[str, Any]]) -> int:
        """Insert a batch in one transaction; rows whose ``id`` exists are skipped. Returns rows added."""
        sql = self._sql(f"INSERT INTO items ({', '.join(ITEM_COLUMNS)}) VALUES ({', '.join('?' * len(ITEM_COLUMNS))}) "
                        "ON CONFLICT (id) DO NOTHING")
        added = 0
        with self._lock:
            cur = self.conn.cursor()
            try:
                for row in rows:
                    cur.execute(sql, tuple(row[c] for c in ITEM_COLUMNS))
                    added += max(0, cur.rowcount)
                self.conn.commit()
            except BaseException:
                self.conn.rollback()
                raise
        return added

    def count(self) -> int:
        """Stored items."""
        return int(self._query("SELECT COUNT(*) FROM items")[0][0])

    def window_stats(self, window: int, *, since: int | None = None, topics: Sequence[str] | None = None
                     ) -> list[WindowStat]:
        """Volume, negatives and mean sentiment per topic and window (windows start at multiples of ``window``)."""
        where: list[str] = []
        params: list[Any] = [window]
        if since is not None:
            where.append("ts >= ?")
            params.append(since)
        if topics:
            where.append(f"topic IN ({','.join('?' * len(topics))})")
            params.extend(topics)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._query(
            f"SELECT topic, ts / ? AS bucket, COUNT(*), SUM(negative), AVG(sentiment) FROM items {clause} "
            "GROUP BY topic, bucket ORDER BY topic, bucket", params)
        return [WindowStat(t, int(b) * window, int(n), int(neg), float(s)) for t, b, n, neg, s in rows]

    def topics(self) -> list[str]:
        """Topics seen so far."""
        return [r[0] for r in self._query("SELECT DISTINCT topic FROM items ORDER BY topic")]

    def last_ts(self) -> int | None:
        """Newest item time (epoch seconds)."""
        value = self._query("SELECT MAX(ts) FROM items")[0][0]
        return None if value is None else int(value)

    def most_negative(self, *, limit: int = 20, since: int | None = None) -> list[dict[str, Any]]:
        """The most negative items (lowest sentiment score), newest first among equals."""
        clause, params = ("WHERE ts >= ?", [since]) if since is not None else ("", [])
        rows = self._query(f"SELECT id, timestamp, source, topic, text, sentiment, sentiment_label FROM items {clause} "
                           "ORDER BY sentiment ASC, ts DESC LIMIT ?", [*params, limit])
        keys = ("id", "timestamp", "source", "topic", "text", "sentiment", "sentiment_label")
        return [dict(zip(keys, r)) for r in rows]

    def item(self, item_id: str) -> dict[str, Any] | None:
        """One stored item by id (``None`` when there is none)."""
        keys = ("id", "timestamp", "source", "topic", "text", "sentiment", "sentiment_label")
        rows = self._query(f"SELECT {', '.join(keys)} FROM items WHERE id = ?", [item_id])
        return dict(zip(keys, rows[0])) if rows else None

    def window_items(self, topic: str, start: int, seconds: int, *, negative: bool = True,
                     limit: int = 50) -> list[dict[str, Any]]:
        """Items of one topic and window (only the negative ones by default), most negative first."""
        keys = ("id", "timestamp", "source", "topic", "text", "sentiment", "sentiment_label")
        clause = " AND negative = 1" if negative else ""
        rows = self._query(f"SELECT {', '.join(keys)} FROM items WHERE topic = ? AND ts >= ? AND ts < ?{clause} "
                           "ORDER BY sentiment ASC, ts DESC LIMIT ?", [topic, start, start + seconds, limit])
        return [dict(zip(keys, r)) for r in rows]

    # -- alerts -------------------------------------------------------------------
    def insert_alert(self, alert: dict[str, Any]) -> int | None:
        """Store an alert unless one exists for its rule, topic and window; return its id if new."""
        columns = ("rule", "topic", "window_start", "window_seconds", "value", "baseline", "volume", "message",
                   "created_at")
        sql = (f"INSERT INTO alerts ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
               "ON CONFLICT (rule, topic, window_start, window_seconds) DO NOTHING")
        with self._lock:
            cur = self.conn.cursor()
            cur.execute(self._sql(sql), tuple(alert.get(c) for c in columns[:-1]) + (now_iso(),))
            self.conn.commit()
            if cur.rowcount <= 0:
                return None
        rows = self._query("SELECT id FROM alerts WHERE rule = ? AND topic = ? AND window_start = ? "
                           "AND window_seconds = ?", [alert["rule"], alert["topic"], alert["window_start"],
                                                      alert["window_seconds"]])
        return int(rows[0][0])

    def alerts(self, *, limit: int = 100, alert_id: int | None = None) -> list[dict[str, Any]]:
        """Stored alerts, newest window first (only alert ``alert_id`` when given)."""
        keys = ("id", "rule", "topic", "window_start", "window_seconds", "value", "baseline", "volume", "message",
                "created_at", "delivered")
        clause, params = ("WHERE id = ? ", [alert_id]) if alert_id is not None else ("", [])
        rows = self._query(f"SELECT {', '.join(keys)} FROM alerts {clause}ORDER BY window_start DESC, id DESC "
                           "LIMIT ?", [*params, limit])
        out = []
        for r in rows:
            a = dict(zip(keys, r))
            a["window"] = _dt.datetime.fromtimestamp(a["window_start"], _dt.timezone.utc).isoformat()
            a["delivered"] = bool(a["delivered"])
            out.append(a)
        return out

    def mark_delivered(self, alert_id: int) -> None:
        """Record that the webhook accepted an alert."""
        with self._lock:
            cur = self.conn.cursor()
            cur.execute(self._sql("UPDATE alerts SET delivered = 1 WHERE id = ?"), (alert_id,))
            self.conn.commit()

    # -- settings -----------------------------------------------------------------
    def get_setting(self, key: str, default: Any = None) -> Any:
        """A JSON setting (window, rules, model directories) recorded by ingest."""
        rows = self._query("SELECT value FROM settings WHERE key = ?", [key])
        return json.loads(rows[0][0]) if rows else default

    def set_setting(self, key: str, value: Any) -> None:
        """Record a JSON setting."""
        with self._lock:
            cur = self.conn.cursor()
            cur.execute(self._sql("INSERT INTO settings (key, value) VALUES (?, ?) "
                                  "ON CONFLICT (key) DO UPDATE SET value = excluded.value"), (key, json.dumps(value)))
            self.conn.commit()

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self.conn.close()


class SQLiteStore(Store):
    """A SQLite file in WAL mode: readers (the dashboard) never block the writer (ingest)."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        if path.parent and not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable at each commit's checkpoint
        except sqlite3.DatabaseError as err:
            raise ConfigError(f"{path}: not a usable SQLite database ({err})") from err
        super().__init__(conn, str(path))


class PostgresStore(Store):
    """PostgreSQL through psycopg 3 (``pip install 'lmworks[postgres]'``)."""

    marker = "%s"
    autoid = "BIGSERIAL PRIMARY KEY"

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError as err:
            raise ConfigError("a postgresql:// store needs psycopg: pip install 'lmworks[postgres]'") from err
        try:
            conn = psycopg.connect(url, connect_timeout=10)
        except psycopg.Error as err:
            raise ConfigError(f"cannot connect to {_redact(url)}: {str(err).strip().splitlines()[0]}") from err
        super().__init__(conn, _redact(url))


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    import re

    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def open_store(db: str | Path) -> Store:
    """A store from a path (SQLite) or a ``postgresql://`` URL."""
    text = str(db)
    if text.startswith(("postgresql://", "postgres://")):
        return PostgresStore(text)
    return SQLiteStore(text)
