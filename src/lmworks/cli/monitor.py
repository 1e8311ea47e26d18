"""``lmworks monitor``: financial opinion monitoring (ingest, alerts, summary, dashboard, report, demo)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from ._common import positive_int

LOGGER = logging.getLogger("lmworks")
DEFAULT_WINDOW = "1h"


def register(sub) -> None:
    """Add the subcommand and its actions."""
    from ..monitor.alerts import DEFAULT_RULES

    p = sub.add_parser(
        "monitor", help="classify a news/post stream by topic and sentiment, chart it, alert on surges",
        description="Items (JSON lines with id, timestamp, text, optional source) are classified in batches "
        "and stored with their probabilities and a sentiment score P(positive) - P(negative) in [-1, 1]. "
        "Per-topic windows feed alert rules; a dashboard charts it all.",
    )
    s = p.add_subparsers(dest="monitor_command", metavar="ACTION", required=True)

    def db(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--db", required=True, metavar="PATH|URL",
                            help="SQLite file (created if missing) or postgresql://user:pass@host/dbname")

    def models(parser: argparse.ArgumentParser, required: bool) -> None:
        parser.add_argument("--sentiment-model", required=required, metavar="DIR",
                            help="a model dir from 'lmworks train' with a negative and a positive label")
        parser.add_argument("--topic-model", metavar="DIR", help="a topic model dir (default: topic from the "
                            "item's 'topic' field, else 'all')")
        parser.add_argument("--negative-label", help="the sentiment model's negative label (default: guessed "
                            "from names such as negative/neg/rotten/bearish)")
        parser.add_argument("--positive-label", help="the sentiment model's positive label")
        parser.add_argument("--window", help=f"alert window, e.g. 30m, 1h, 1d (default: as recorded in the store, "
                            f"else {DEFAULT_WINDOW})")
        parser.add_argument("--rule", action="append", metavar="RULE",
                            help="alert rule, repeatable: surge[:z=3,min_increase=0.15,min_volume=10,"
                            "baseline_windows=14], surge:metric=volume[,min_ratio=2], threshold[:share=0.7,"
                            f"min_volume=20] (default: {' and '.join(DEFAULT_RULES)})")
        parser.add_argument("--webhook", metavar="URL", help="POST each new alert here as JSON (retried with "
                            "backoff on a background thread; never blocks ingest)")
        parser.add_argument("--batch-size", type=positive_int, default=64)
        parser.add_argument("--threads", type=positive_int, help="inference threads (default: usable CPUs)")

    i = s.add_parser("ingest", help="classify and store a JSONL stream (a file or - for stdin)",
                     description="Re-ingesting is a no-op (items are keyed by id). Bad lines are reported with their "
                     "line number on stderr and in the rejects file, and never stop the stream.")
    i.add_argument("stream", metavar="STREAM", help="JSONL file, or - for stdin (e.g. tail -f feed.jsonl | ...)")
    db(i)
    models(i, required=True)
    i.add_argument("--rejects", metavar="FILE", help="append rejected lines here as JSON "
                   "(default: DB.rejects.jsonl next to a SQLite file)")
    i.add_argument("--flush-seconds", type=float, default=1.0, help="store a partial batch after this much quiet")
    i.add_argument("--json", action="store_true", help="print new alerts as JSON lines")
    i.set_defaults(run=run_ingest)

    a = s.add_parser("alerts", help="list stored alerts")
    db(a)
    a.add_argument("--json", action="store_true")
    a.add_argument("--limit", type=positive_int, default=100)
    a.set_defaults(run=run_alerts)

    m = s.add_parser("summary", help="per topic and window: volume, negative share, mean sentiment")
    db(m)
    m.add_argument("--window", help="aggregation window (default: the store's alert window)")
    m.add_argument("--last", type=positive_int, default=7, help="windows per topic to show (default: 7)")
    m.add_argument("--json", action="store_true")
    m.set_defaults(run=run_summary)

    v = s.add_parser("serve", help="dashboard (and POST /v1/items when models are given)",
                     description="Serves the dashboard at /, GET /api/overview, GET /v1/alerts, /metrics, /docs; "
                     "with --sentiment-model also POST /v1/items {\"items\": [...]}.")
    db(v)
    models(v, required=False)
    v.add_argument("--host", default="127.0.0.1")
    v.add_argument("--port", type=int, default=8050)
    v.add_argument("--api-key-env", metavar="VAR", help="require this environment variable's value as X-API-Key")
    v.set_defaults(run=run_serve)

    r = s.add_parser("report", help="render the dashboard chart offline (.html or .png)")
    db(r)
    r.add_argument("--output", required=True, metavar="FILE.html|FILE.png")
    r.add_argument("--window", help="window (default: the store's alert window)")
    r.set_defaults(run=run_report)

    d = s.add_parser("demo", help="replay shipped headlines with an injected negative surge and show the alert",
                     description="Builds a stream of real Guardian business headlines over 28 days with 30 "
                     "hand-written negative headlines about a fictional bank injected on day 22, ingests it with "
                     "1-day windows and the default rules, prints the alerts and serves the dashboard. Without "
                     "models it first trains quick TF-IDF ones (sentiment on Rotten Tomatoes, topic on BBC News).")
    d.add_argument("--workdir", default="runs/monitor-demo", help="where the stream, store and models go")
    d.add_argument("--sentiment-model", metavar="DIR")
    d.add_argument("--topic-model", metavar="DIR")
    d.add_argument("--no-serve", action="store_true", help="replay and report, do not start the dashboard")
    d.add_argument("--delay", type=float, default=0.0, help="seconds between batches (to watch it live)")
    d.add_argument("--port", type=int, default=8050)
    d.set_defaults(run=run_demo)


def _rules(args: argparse.Namespace, store) -> list:
    from ..monitor.alerts import DEFAULT_RULES, parse_rule, rule_from_json

    if getattr(args, "rule", None):
        return [parse_rule(r) for r in args.rule]
    stored = store.get_setting("rules")
    return [rule_from_json(r) for r in stored] if stored else [parse_rule(r) for r in DEFAULT_RULES]


def _window(args: argparse.Namespace, store) -> int:
    from ..monitor.alerts import parse_window

    given = getattr(args, "window", None)
    return parse_window(given or store.get_setting("window") or DEFAULT_WINDOW)


def _ingestor(args: argparse.Namespace, store, *, rejects=None, on_alert=None):
    """Classifier, rules and window from the options (recorded in the store for later commands)."""
    from ..errors import ConfigError
    from ..monitor.alerts import WebhookNotifier, format_window
    from ..monitor.ingest import Ingestor, OpinionClassifier

    window, rules = _window(args, store), _rules(args, store)
    recorded = store.get_setting("window")
    if recorded is not None and recorded != format_window(window) and store.count():
        raise ConfigError(f"this store's alerts use {recorded} windows; pass --window {recorded} (or use a new --db)")
    classifier = OpinionClassifier(args.sentiment_model, args.topic_model, negative_label=args.negative_label,
                                   positive_label=args.positive_label, num_threads=args.threads)
    _record(store, window, rules, classifier)
    webhook = WebhookNotifier(args.webhook, store) if getattr(args, "webhook", None) else None
    return Ingestor(store, classifier, window=window, rules=rules, batch_size=args.batch_size, rejects=rejects,
                    webhook=webhook, on_alert=on_alert)


def _record(store, window: int, rules: list, classifier) -> None:
    """Store the window, rules and models, so alerts/summary/serve/report use the same ones later."""
    from ..monitor.alerts import format_window

    store.set_setting("window", format_window(window))
    store.set_setting("rules", [r.to_json() for r in rules])
    store.set_setting("models", classifier.description)


def _print_alert(as_json: bool):
    def show(alert: dict[str, Any]) -> None:
        print(json.dumps(alert) if as_json else f"ALERT {alert['message']}", flush=True)

    return show


def run_ingest(args: argparse.Namespace) -> int:
    """Ingest a stream."""
    from ..monitor.ingest import open_stream
    from ..monitor.store import open_store

    store = open_store(args.db)
    rejects_path = args.rejects or (None if "://" in args.db else f"{args.db}.rejects.jsonl")
    stream = open_stream(args.stream)
    rejects = open(rejects_path, "a", encoding="utf-8") if rejects_path else None  # noqa: SIM115
    ingestor = _ingestor(args, store, rejects=rejects, on_alert=_print_alert(args.json))
    try:
        stats = ingestor.run(stream, name="<stdin>" if args.stream == "-" else args.stream,
                             flush_seconds=args.flush_seconds)
    finally:
        stream.close()
        if rejects is not None:
            rejects.close()
        if ingestor.webhook is not None:
            ingestor.webhook.close()
        store.close()
    LOGGER.info("%s", stats.summary())
    if stats.rejected and rejects_path:
        LOGGER.info("rejected lines written to %s", rejects_path)
    return 0


def run_alerts(args: argparse.Namespace) -> int:
    """List alerts."""
    from ..monitor.store import open_store

    store = open_store(args.db)
    alerts = store.alerts(limit=args.limit)
    store.close()
    if args.json:
        print(json.dumps(alerts, indent=2))
        return 0
    if not alerts:
        print("no alerts")
    for a in alerts:
        print(f"{a['window'][:16]}  {a['topic']:<14} {a['message']}")
    return 0


def run_summary(args: argparse.Namespace) -> int:
    """Print per-topic window aggregates."""
    from ..monitor.alerts import format_window
    from ..monitor.store import by_topic, open_store

    store = open_store(args.db)
    window = _window(args, store)
    stats = store.window_stats(window)
    store.close()
    out = {t: [{"window_start": st.start, "volume": st.volume, "negative_share": round(st.negative_share, 4),
                "mean_sentiment": round(st.mean_sentiment, 4)} for st in rows[-args.last:]]
           for t, rows in sorted(by_topic(stats).items())}
    if args.json:
        print(json.dumps({"window": format_window(window), "topics": out}, indent=2))
        return 0
    import datetime as _dt

    print(f"window {format_window(window)}")
    print(f"{'topic':<14} {'window start (UTC)':<18} {'items':>6} {'negative':>9} {'sentiment':>10}")
    for topic, rows in out.items():
        for row in rows:
            start = _dt.datetime.fromtimestamp(row["window_start"], _dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
            print(f"{topic:<14} {start:<18} {row['volume']:>6} {row['negative_share']:>9.0%} "
                  f"{row['mean_sentiment']:>+10.2f}")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    """Serve the dashboard (and ingest over HTTP with models)."""
    from ..monitor.service import create_monitor_app
    from ..monitor.store import open_store
    from ..serve.common import api_key_from_env, run_app

    key = api_key_from_env(args.api_key_env)
    store = open_store(args.db)
    ingestor = _ingestor(args, store) if args.sentiment_model else None
    window = ingestor.window if ingestor else _window(args, store)
    app = create_monitor_app(store, window, ingestor=ingestor, api_key=key)
    LOGGER.info("monitor dashboard on http://%s:%d/ (%s)", args.host, args.port,
                "POST /v1/items ingests" if ingestor else "read-only: no --sentiment-model")
    run_app(app, host=args.host, port=args.port)
    return 0


def run_report(args: argparse.Namespace) -> int:
    """Write the chart to a file."""
    from ..monitor.service import write_report
    from ..monitor.store import open_store

    store = open_store(args.db)
    path = write_report(store, _window(args, store), args.output)
    store.close()
    print(path)
    return 0


def run_demo(args: argparse.Namespace) -> int:
    """Replay the demo stream and show the alert."""
    import datetime as _dt
    import time

    from ..monitor.alerts import DEFAULT_RULES, parse_rule
    from ..monitor.demo import build_demo_stream
    from ..monitor.ingest import Ingestor, OpinionClassifier, open_stream
    from ..monitor.service import write_report
    from ..monitor.store import open_store

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    sentiment, topic = args.sentiment_model, args.topic_model
    if sentiment is None or topic is None:
        sentiment, topic = _quick_models(work, sentiment, topic)
    stream = build_demo_stream(work / "stream.jsonl")
    db_path = work / "monitor.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    store = open_store(db_path)
    window = 86400
    rules = [parse_rule(r) for r in DEFAULT_RULES]
    classifier = OpinionClassifier(sentiment, topic)
    _record(store, window, rules, classifier)
    ingestor = Ingestor(store, classifier, window=window, rules=rules, on_alert=_print_alert(False))
    surge_day = _dt.datetime.fromtimestamp(stream.surge_start, _dt.timezone.utc).date()
    print(f"replaying {stream.items} items ({stream.surge_items} injected negative headlines on {surge_day}) "
          f"from {stream.path}")
    server = None
    if not args.no_serve:
        server = _background_server(store, window, args.port)
        print(f"dashboard: http://127.0.0.1:{args.port}/")
    with open_stream(str(stream.path)) as fh:
        lines = fh if not args.delay else _slow(fh, ingestor.batch_size, args.delay)
        stats = ingestor.run(lines, name=str(stream.path))
    print(stats.summary())
    alerts = store.alerts()
    on_time = [a for a in alerts if stream.surge_start <= a["window_start"] <= stream.surge_start + window]
    early = [a for a in alerts if a["window_start"] < stream.surge_start]
    print(f"alerts: {len(alerts)}; in the surge window or the next: {len(on_time)}; before the surge: {len(early)}")
    print(write_report(store, window, work / "report.html"), "and", end=" ")
    try:
        print(write_report(store, window, work / "report.png"))
    except Exception as err:  # matplotlib is optional
        print(f"(no PNG: {err})")
    if server is not None:
        print(f"dashboard still serving on http://127.0.0.1:{args.port}/ (Ctrl-C to stop)")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    store.close()
    return 0 if on_time and not early else 1


def _slow(lines, every: int, delay: float):
    import time

    for k, line in enumerate(lines, 1):
        yield line
        if k % every == 0:
            time.sleep(delay)


def _background_server(store, window: int, port: int):
    import threading

    import uvicorn

    from ..monitor.service import create_monitor_app

    server = uvicorn.Server(uvicorn.Config(create_monitor_app(store, window), host="127.0.0.1", port=port,
                                           log_level="warning"))
    threading.Thread(target=server.run, name="lmworks-dashboard", daemon=True).start()
    return server


def _quick_models(work: Path, sentiment: str | None, topic: str | None) -> tuple[str, str]:
    """TF-IDF models in seconds, so the demo runs on a fresh install (pass better ones for real use)."""
    from .. import TextClassifier
    from ..datasets import load_bbc_news, load_rotten_tomatoes

    jobs = []
    if sentiment is None:
        jobs.append(("sentiment", load_rotten_tomatoes, work / "models" / "sentiment-tfidf"))
    if topic is None:
        jobs.append(("topic", load_bbc_news, work / "models" / "topic-tfidf"))
    made = {}
    for name, loader, path in jobs:
        if not (path / "lmworks.json").is_file():
            frame = loader()
            print(f"training a quick TF-IDF {name} model on {len(frame)} texts -> {path}", file=sys.stderr)
            TextClassifier("tfidf").fit(frame["text"].tolist(), frame["label"].tolist(), progress=False).save(path)
        made[name] = str(path)
    return sentiment or made["sentiment"], topic or made["topic"]
