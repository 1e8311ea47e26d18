"""The labelling project's memory: one SQLite file, every label an event, nothing overwritten.

A label, a skip and an undo are each a row appended to ``events``; what an annotator's
current label for an item is follows from replaying them (:class:`LabelState`), so the
file is an audit trail as well as the state. Every write is one committed transaction
before the HTTP answer goes out: a label that got a 200 survives ``kill -9`` of the
server. WAL mode, as the monitor's store uses, lets the status command read while the
server writes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

DB_FILE = "labels.db"

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS items (
        id INTEGER PRIMARY KEY,
        row INTEGER NOT NULL,
        text TEXT NOT NULL,
        origin TEXT NOT NULL DEFAULT 'pool',
        audit INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE IF NOT EXISTS events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        item INTEGER NOT NULL,
        annotator TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('label', 'skip', 'undo')),
        label TEXT,
        undoes INTEGER,
        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    )""",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS estimates (
        labels INTEGER NOT NULL,
        audited INTEGER NOT NULL,
        correct INTEGER NOT NULL,
        accuracy REAL,
        low REAL,
        high REAL,
        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    )""",
]


@dataclass(frozen=True)
class Event:
    """One row of the event log."""

    seq: int
    item: int
    annotator: str
    kind: str
    label: str | None = None
    undoes: int | None = None


@dataclass
class LabelState:
    """What the event log says now: each annotator's current label (or skip) per item.

    ``apply`` is the only way state changes, whether from a live request or a replay of
    the file, so a restarted server sees exactly what the last one acknowledged.
    """

    #: item -> annotator -> the active label/skip events for it, oldest first.
    active: dict[int, dict[str, list[Event]]] = field(default_factory=dict)
    #: annotator -> seqs of their active label/skip events, oldest first (what ``undo`` takes back).
    stack: dict[str, list[Event]] = field(default_factory=dict)

    def apply(self, event: Event) -> None:
        """Fold one event into the state."""
        if event.kind == "undo":
            for who, events in self.stack.items():
                for done in events:
                    if done.seq == event.undoes:
                        events.remove(done)
                        self.active[done.item][who].remove(done)
                        return
            return
        self.active.setdefault(event.item, {}).setdefault(event.annotator, []).append(event)
        self.stack.setdefault(event.annotator, []).append(event)

    def current(self, item: int) -> dict[str, Event]:
        """Per annotator, their latest active event for ``item`` (a label or a skip)."""
        return {who: events[-1] for who, events in self.active.get(item, {}).items() if events}

    def labels(self, item: int) -> dict[str, str]:
        """Per annotator, their current label for ``item`` (skips left out)."""
        return {who: e.label for who, e in self.current(item).items() if e.kind == "label" and e.label is not None}

    def last(self, annotator: str) -> Event | None:
        """The annotator's most recent active label or skip (the one ``undo`` takes back)."""
        events = self.stack.get(annotator) or []
        return events[-1] if events else None


class LabelStore:
    """The project's SQLite file: the pool, the event log, settings and accuracy estimates."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()  # one connection, shared by the HTTP threads and the retrainer
        try:
            self.conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")  # durable against a killed process at each commit
            for statement in SCHEMA:
                self.conn.execute(statement)
        except sqlite3.DatabaseError as err:
            raise ConfigError(f"{self.path}: not a labelling project database ({err})") from err

    def _write(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self._lock:
            cur = self.conn.execute(sql, params)
            return int(cur.lastrowid or 0)

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            return self.conn.execute(sql, params).fetchall()

    def add_items(self, rows: Iterable[tuple[int, str, str]]) -> None:
        """Add ``(row, text, origin)`` triples to the pool, in one transaction.

        Rows are numbered as error messages number them (1-based, header excluded); origin is
        ``pool`` or ``seed``.
        """
        with self._lock:
            self.conn.execute("BEGIN")
            self.conn.executemany("INSERT INTO items (row, text, origin) VALUES (?, ?, ?)", list(rows))
            self.conn.execute("COMMIT")

    def items(self) -> list[tuple[int, int, str, str, bool]]:
        """Every pool item: ``(id, row, text, origin, audit)``, in pool order."""
        rows = self._read("SELECT id, row, text, origin, audit FROM items ORDER BY id")
        return [(i, r, t, o, bool(a)) for i, r, t, o, a in rows]

    def mark_audit(self, item: int) -> None:
        """Flag ``item`` as drawn for the random audit sample (kept out of the loop's training)."""
        self._write("UPDATE items SET audit = 1 WHERE id = ?", (item,))

    def append(self, item: int, annotator: str, kind: str, *, label: str | None = None,
               undoes: int | None = None) -> Event:
        """Append one event, committed before this returns."""
        seq = self._write("INSERT INTO events (item, annotator, kind, label, undoes) VALUES (?, ?, ?, ?, ?)",
                          (item, annotator, kind, label, undoes))
        return Event(seq, item, annotator, kind, label, undoes)

    def events(self) -> list[Event]:
        """The whole event log, oldest first."""
        return [Event(*row) for row in self._read("SELECT seq, item, annotator, kind, label, undoes FROM events "
                                                  "ORDER BY seq")]

    def event_times(self) -> list[tuple[int, str, str]]:
        """``(seq, annotator, created_at)`` of every event (for exports and audits of who did what when)."""
        return [tuple(r) for r in self._read("SELECT seq, annotator, created_at FROM events ORDER BY seq")]

    def get(self, key: str, default: Any = None) -> Any:
        """A setting (JSON-decoded)."""
        rows = self._read("SELECT value FROM meta WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else default

    def set(self, key: str, value: Any) -> None:
        """Store a setting (JSON-encoded)."""
        self._write("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = "
                    "excluded.value", (key, json.dumps(value)))

    def add_estimate(self, labels: int, audited: int, correct: int, accuracy: float | None, low: float | None,
                     high: float | None) -> None:
        """Record the accuracy estimate made after a retrain."""
        self._write("INSERT INTO estimates (labels, audited, correct, accuracy, low, high) VALUES (?, ?, ?, ?, ?, ?)",
                    (labels, audited, correct, accuracy, low, high))

    def estimates(self) -> list[dict[str, Any]]:
        """Every recorded estimate, oldest first."""
        keys = ("labels", "audited", "correct", "accuracy", "low", "high", "created_at")
        rows = self._read(f"SELECT {', '.join(keys)} FROM estimates ORDER BY rowid")
        return [dict(zip(keys, row)) for row in rows]

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self.conn.close()
