"""Parse, classify, store and alert: the monitor's ingest loop.

A stream is JSON lines with ``id``, ``timestamp`` (ISO 8601), ``text`` and an
optional ``source``. Lines that cannot be used (malformed JSON, missing or empty
``id``/``text``, an unparseable timestamp) are counted, reported with their line
number on stderr and in a rejects file, and never stop the stream.

Items are classified in batches (topic model optional, sentiment model required)
and written in one transaction per batch; items whose ``id`` is stored already are
skipped before classification, so replaying a stream costs only the lookups.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..errors import ConfigError
from .alerts import evaluate_rules
from .delivery import WebhookNotifier
from .rules import AlertRule
from .store import Store, now_iso

LOGGER = logging.getLogger("lmworks")

NEGATIVE_NAMES = ("negative", "neg", "rotten", "bearish", "bad")
POSITIVE_NAMES = ("positive", "pos", "fresh", "bullish", "good")
DEFAULT_TOPIC = "all"


class RejectedLine(ValueError):
    """A stream line that cannot be ingested (the message says why)."""


@dataclass
class StreamItem:
    """One parsed stream item; ``ts`` is UTC epoch seconds."""

    id: str
    ts: int
    timestamp: str
    text: str
    source: str | None = None
    topic: str | None = None


def parse_timestamp(value: Any) -> tuple[int, str]:
    """ISO 8601 (a date, or date and time, with or without zone; naive = UTC) -> (epoch, ISO UTC)."""
    if not isinstance(value, str) or not value.strip():
        raise RejectedLine("timestamp is missing or not a string")
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        moment = _dt.datetime.fromisoformat(text)
    except ValueError as err:
        raise RejectedLine(f"timestamp {value!r:.40} is not ISO 8601") from err
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.timezone.utc)
    moment = moment.astimezone(_dt.timezone.utc)
    return int(moment.timestamp()), moment.isoformat()


def parse_item(record: Any) -> StreamItem:
    """Validate one decoded JSON value as a stream item."""
    if not isinstance(record, dict):
        raise RejectedLine(f"expected a JSON object, got {type(record).__name__}")
    raw_id = record.get("id")
    if raw_id is None or isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)) or not str(raw_id).strip():
        raise RejectedLine("id is missing or empty")
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        raise RejectedLine("text is missing or empty")
    ts, iso = parse_timestamp(record.get("timestamp"))
    source = record.get("source")
    topic = record.get("topic")
    return StreamItem(str(raw_id).strip(), ts, iso, " ".join(text.split()),
                      None if source is None else str(source), None if topic is None else str(topic))


def parse_line(line: str) -> StreamItem:
    """Decode and validate one JSONL line."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise RejectedLine(f"malformed JSON ({err.msg})") from err
    return parse_item(record)


class OpinionClassifier:
    """Sentiment (required) and topic (optional) models over batches of texts.

    The sentiment score is P(positive) - P(negative), in [-1, 1], as FinBERT reports
    it; an item is negative when the negative label wins. Which labels are positive
    and negative is read from the label names (``negative``/``neg``/``rotten``/
    ``bearish``..., see :data:`NEGATIVE_NAMES`) or given explicitly.
    """

    def __init__(self, sentiment_model: str | Path, topic_model: str | Path | None = None, *,
                 negative_label: str | None = None, positive_label: str | None = None,
                 num_threads: int | None = None) -> None:
        from ..predictor import load

        self.sentiment = load(sentiment_model, num_threads=num_threads)
        self.topic = load(topic_model, num_threads=num_threads) if topic_model else None
        labels = self.sentiment.labels
        self.negative = self._pick(labels, negative_label, NEGATIVE_NAMES, "negative")
        self.positive: str | None = positive_label or next((x for x in labels if x.lower() in POSITIVE_NAMES), None)
        if self.positive is None and len(labels) == 2:
            self.positive = next(x for x in labels if x != self.negative)
        if self.positive not in labels:
            raise ConfigError(f"sentiment model labels {labels}: say which is positive with --positive-label")
        self.description = {"sentiment_model": str(sentiment_model), "topic_model": str(topic_model or ""),
                            "negative_label": self.negative, "positive_label": self.positive,
                            "topics": self.topic.labels if self.topic else []}

    @staticmethod
    def _pick(labels: list[str], given: str | None, names: tuple[str, ...], what: str) -> str:
        if given is not None:
            if given not in labels:
                raise ConfigError(f"--{what}-label {given!r} is not a label of the sentiment model ({labels})")
            return given
        found = next((x for x in labels if x.lower() in names), None)
        if found is None:
            raise ConfigError(f"sentiment model labels {labels}: none looks {what}; pass --{what}-label")
        return found

    def classify(self, items: list[StreamItem]) -> list[dict[str, Any]]:
        """Rows ready for :meth:`Store.insert_items`."""
        texts = [i.text for i in items]
        proba = self.sentiment.predict_proba(texts)
        labels = self.sentiment.labels
        neg, pos = labels.index(self.negative), labels.index(str(self.positive))
        topics: list[str | None] = [i.topic for i in items]
        topic_scores: list[str | None] = [None] * len(items)
        if self.topic is not None:
            tp = self.topic.predict_proba(texts)
            topics = [self.topic.labels[int(j)] for j in np.argmax(tp, axis=1)]
            topic_scores = [json.dumps({n: round(float(p), 4) for n, p in zip(self.topic.labels, row)})
                            for row in tp]
        at = now_iso()
        rows = []
        for item, row, topic, tscores in zip(items, proba, topics, topic_scores):
            winner = int(np.argmax(row))
            rows.append({
                "id": item.id, "ts": item.ts, "timestamp": item.timestamp, "source": item.source, "text": item.text,
                "topic": topic or DEFAULT_TOPIC, "topic_scores": tscores, "sentiment_label": labels[winner],
                "sentiment_scores": json.dumps({n: round(float(p), 4) for n, p in zip(labels, row)}),
                "sentiment": round(float(row[pos] - row[neg]), 4), "negative": int(winner == neg),
                "ingested_at": at,
            })
        return rows


@dataclass
class IngestStats:
    """Counts of one ingest run."""

    lines: int = 0
    added: int = 0
    duplicates: int = 0
    rejected: int = 0
    alerts: int = 0
    seconds: float = 0.0
    reject_reasons: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for the log."""
        rate = self.added / self.seconds if self.seconds else 0.0
        return (f"{self.lines} lines: {self.added} added, {self.duplicates} already stored, {self.rejected} rejected, "
                f"{self.alerts} new alerts in {self.seconds:.1f} s ({rate:.0f} items/s)")


class Ingestor:
    """Batch items into the store, evaluate alert rules after each batch, deliver alerts."""

    def __init__(self, store: Store, classifier: OpinionClassifier | None, *, window: int,
                 rules: list[AlertRule], batch_size: int = 64, rejects: IO[str] | None = None,
                 webhook: WebhookNotifier | None = None, on_alert: Callable[[dict], None] | None = None) -> None:
        self.store, self.classifier, self.window, self.rules = store, classifier, window, rules
        self.batch_size = batch_size
        self.rejects = rejects
        self.webhook = webhook
        self.on_alert = on_alert
        self.stats = IngestStats()

    def reject(self, where: str, reason: str, raw: str) -> None:
        """Count and report a bad line; it never stops the stream."""
        self.stats.rejected += 1
        kind = reason.split(" (")[0]
        self.stats.reject_reasons[kind] = self.stats.reject_reasons.get(kind, 0) + 1
        print(f"lmworks: rejected {where}: {reason}", file=sys.stderr, flush=True)
        if self.rejects is not None:
            self.rejects.write(json.dumps({"where": where, "reason": reason, "line": raw[:10_000]},
                                          ensure_ascii=False) + "\n")
            self.rejects.flush()

    def add(self, items: list[StreamItem]) -> list[dict[str, Any]]:
        """Classify and store one batch (skipping stored IDs), then run the rules; returns new alerts."""
        if not items:
            return []
        unique: dict[str, StreamItem] = {}
        for item in items:
            unique.setdefault(item.id, item)  # the first occurrence in a batch wins, as across batches
        stored = self.store.existing_ids(unique)
        fresh = [i for i in unique.values() if i.id not in stored]
        self.stats.duplicates += len(items) - len(fresh)
        if not fresh:
            return []
        if self.classifier is None:
            raise ConfigError("this monitor has no models: start it with --sentiment-model")
        rows = self.classifier.classify(fresh)
        added = self.store.insert_items(rows)
        self.stats.added += added
        self.stats.duplicates += len(fresh) - added  # stored meanwhile by another writer
        alerts = evaluate_rules(self.store, self.rules, self.window, since=min(i.ts for i in fresh),
                                topics=sorted({r["topic"] for r in rows}))
        for alert in alerts:
            self.stats.alerts += 1
            if self.on_alert is not None:
                self.on_alert(alert)
            else:
                LOGGER.warning("ALERT %s [%s, window %s]", alert["message"], alert["rule"],
                               _dt.datetime.fromtimestamp(alert["window_start"], _dt.timezone.utc).isoformat())
            if self.webhook is not None:
                self.webhook.notify(alert)
        return alerts

    def run(self, lines: Iterable[str], *, name: str = "<stream>", flush_seconds: float = 1.0) -> IngestStats:
        """Ingest JSONL lines; a partial batch is flushed after ``flush_seconds`` without input.

        Lines are read on a helper thread so that a quiet ``tail -f`` still gets its
        last items stored (and alerted on) within ``flush_seconds``.
        """
        started = time.perf_counter()
        lines_q: queue.Queue = queue.Queue(maxsize=4 * self.batch_size)
        done = object()

        def read() -> None:
            try:
                for line in lines:
                    lines_q.put(line)
            finally:
                lines_q.put(done)

        threading.Thread(target=read, name="lmworks-ingest-reader", daemon=True).start()
        batch: list[StreamItem] = []
        lineno = 0
        while True:
            try:
                line = lines_q.get(timeout=flush_seconds)
            except queue.Empty:
                self.add(batch)
                batch = []
                continue
            if line is done:
                break
            lineno += 1
            self.stats.lines += 1
            if line.strip():
                try:
                    batch.append(parse_line(line))
                except RejectedLine as err:
                    self.reject(f"{name} line {lineno}", str(err), line.rstrip("\n"))
            if len(batch) >= self.batch_size:
                self.add(batch)
                batch = []
        self.add(batch)
        self.stats.seconds = time.perf_counter() - started
        return self.stats


def open_stream(stream: str, *, encoding: str = "utf-8") -> IO[str]:
    """A JSONL file, or ``-`` for stdin (bad bytes become U+FFFD and the line is judged as text)."""
    if stream == "-":
        import io

        return io.TextIOWrapper(sys.stdin.buffer, encoding=encoding, errors="replace")
    path = Path(stream)
    if not path.is_file():
        raise ConfigError(f"{stream}: file not found")
    return open(path, encoding=encoding, errors="replace")  # noqa: SIM115
