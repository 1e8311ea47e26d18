"""``lmworks monitor``: financial opinion monitoring (ingest, alerts, summary, dashboard, report, demo)."""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from .common import (
    MONITOR_PORT,
    STDOUT,
    ListOption,
    add_json_option,
    add_server_options,
    json_stream,
    need,
    positional_with_alias,
    positive_int,
    split_rules,
    write_json,
)

LOGGER = logging.getLogger("lmworks")


def register(sub) -> None:
    """Add the subcommand and its actions."""
    p = sub.add_parser(
        "monitor", help="classify a news/post stream by topic and sentiment, chart it, alert on surges",
        description="Items (JSON lines with id, timestamp, text, optional source) are classified in batches "
        "and stored with their probabilities and a sentiment score P(positive) - P(negative) in [-1, 1]. "
        "Per-topic windows feed alert rules; a dashboard charts it all.",
    )
    s = p.add_subparsers(dest="monitor_command", metavar="ACTION", required=True)
    _register_ingest(s)
    _register_queries(s)
    _register_serve(s)
    _register_demo(s)


_DB_HELP = "the monitor's store: a SQLite file (created if missing) or postgresql://user:pass@host/dbname"


def _db(parser: argparse.ArgumentParser) -> None:
    """The store as the main input (positional); ``--db`` is its deprecated spelling."""
    positional_with_alias(parser, "db", "DB", _DB_HELP, old="--db")


def _models(parser: argparse.ArgumentParser, required: bool) -> None:
    from ..monitor.rules import DEFAULT_RULES
    from ..monitor.settings import DEFAULT_WINDOW

    parser.add_argument("--sentiment-model", required=required, metavar="DIR",
                        help="the sentiment model: a model dir from 'lmworks train' with a negative and a "
                        "positive label")
    parser.add_argument("--topic-model", metavar="DIR", help="a topic model dir (default: topic from the "
                        "item's 'topic' field, else 'all')")
    parser.add_argument("--negative-label", help="the sentiment model's negative label (default: guessed "
                        "from names such as negative/neg/rotten/bearish)")
    parser.add_argument("--positive-label", help="the sentiment model's positive label")
    parser.add_argument("--window", help=f"alert window, e.g. 30m, 1h, 1d (default: as recorded in the store, "
                        f"else {DEFAULT_WINDOW})")
    parser.add_argument("--rule", action=ListOption, split=split_rules, metavar="RULE[,RULE]",
                        help="alert rule(s): surge[:z=3,min_increase=0.15,min_volume=10,"
                        "baseline_windows=14], surge:metric=volume[,min_ratio=2], threshold[:share=0.7,"
                        f"min_volume=20] (default: {' and '.join(DEFAULT_RULES)})")
    parser.add_argument("--webhook", metavar="URL", help="POST each new alert here as JSON (retried with "
                        "backoff on a background thread; never blocks ingest)")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="texts per batch of inference")
    parser.add_argument("--threads", type=positive_int, help="inference threads (default: usable CPUs)")


def _register_ingest(s) -> None:
    i = s.add_parser("ingest", help="classify and store a JSONL stream (a file or - for stdin)",
                     description="Re-ingesting is a no-op (items are keyed by id). Bad lines are reported with their "
                     "line number on stderr and in the rejects file, and never stop the stream.")
    i.add_argument("stream", metavar="STREAM", help="JSONL file, or - for stdin (e.g. tail -f feed.jsonl | ...)")
    i.add_argument("--db", required=True, metavar="PATH|URL", help=_DB_HELP)
    _models(i, required=True)
    i.add_argument("--rejects", metavar="FILE", help="append rejected lines here as JSON "
                   "(default: DB.rejects.jsonl next to a SQLite file)")
    i.add_argument("--flush-seconds", type=float, default=1.0, help="store a partial batch after this much quiet")
    add_json_option(i, "write each new alert as JSON as it fires", stream=True)
    i.set_defaults(run=run_ingest)


def _register_queries(s) -> None:
    a = s.add_parser("alerts", help="list stored alerts")
    _db(a)
    add_json_option(a, "write the alerts as JSON instead of printing lines")
    a.add_argument("--limit", type=positive_int, default=100, help="list at most this many alerts, newest first")
    a.set_defaults(run=run_alerts)

    m = s.add_parser("summary", help="per topic and window: volume, negative share, mean sentiment")
    _db(m)
    m.add_argument("--window", help="aggregation window (default: the store's alert window)")
    m.add_argument("--last", type=positive_int, default=7, help="windows per topic to show (default: 7)")
    add_json_option(m, "write the summary as JSON instead of printing a table")
    m.set_defaults(run=run_summary)

    r = s.add_parser("report", help="render the dashboard chart offline (.html or .png)")
    _db(r)
    r.add_argument("--output", "-o", required=True, metavar="FILE.html|FILE.png", help="chart file to write")
    r.add_argument("--window", help="window (default: the store's alert window)")
    r.set_defaults(run=run_report)


def _register_serve(s) -> None:
    v = s.add_parser("serve", help="dashboard (and POST /v1/items when models are given)",
                     description="Serves the dashboard at /, GET /api/overview, GET /v1/alerts, /metrics, /docs; "
                     "with --sentiment-model also POST /v1/items {\"items\": [...]}.")
    _db(v)
    _models(v, required=False)
    add_server_options(v, port=MONITOR_PORT)
    v.add_argument("--api-key-env", metavar="VAR", help="require this environment variable's value as X-API-Key")
    v.set_defaults(run=run_serve)


def _register_demo(s) -> None:
    d = s.add_parser("demo", help="replay shipped headlines with an injected negative surge and show the alert",
                     description="Builds a stream of real Guardian business headlines over 28 days with 30 "
                     "hand-written negative headlines about a fictional bank injected on day 22, ingests it with "
                     "1-day windows and the default rules, prints the alerts and serves the dashboard. Without "
                     "models it first trains quick TF-IDF ones (sentiment on Rotten Tomatoes, topic on BBC News).")
    d.add_argument("--workdir", default="runs/monitor-demo", help="where the stream, store and models go")
    d.add_argument("--sentiment-model", metavar="DIR",
                   help="a sentiment model dir (default: train a quick TF-IDF one on Rotten Tomatoes)")
    d.add_argument("--topic-model", metavar="DIR", help="a topic model dir (default: train a quick TF-IDF one on "
                   "BBC News)")
    d.add_argument("--no-serve", action="store_true", help="replay and report, do not start the dashboard")
    d.add_argument("--delay", type=float, default=0.0, help="seconds between batches (to watch it live)")
    d.add_argument("--port", type=int, default=MONITOR_PORT, help="dashboard port")
    d.set_defaults(run=run_demo)


def _settings(args: argparse.Namespace, store):
    """The store's window and rules, unless the options name others."""
    from ..monitor.settings import MonitorSettings

    return MonitorSettings.resolve(store, window=getattr(args, "window", None), rules=getattr(args, "rule", None))


def _ingestor(args: argparse.Namespace, store, *, rejects=None, on_alert=None):
    from ..monitor.settings import IngestConfig, open_ingestor

    config = IngestConfig(args.sentiment_model, args.topic_model, negative_label=args.negative_label,
                          positive_label=args.positive_label, batch_size=args.batch_size, num_threads=args.threads,
                          webhook=getattr(args, "webhook", None))
    return open_ingestor(store, config, _settings(args, store), rejects=rejects, on_alert=on_alert)


def _print_alert(json_path: str | None):
    """Print each alert as a line; with ``--json FILE|-`` append it as a JSON line there instead."""
    def show(alert: dict[str, Any]) -> None:
        if json_path is None:
            print(f"ALERT {alert['message']}", flush=True)
        elif json_path == STDOUT:
            out = json_stream()
            out.write(json.dumps(alert, ensure_ascii=False) + "\n")
            out.flush()
        else:
            with open(json_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(alert, ensure_ascii=False) + "\n")

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

    store = open_store(need(args, "db", "DB"))
    alerts = store.alerts(limit=args.limit)
    store.close()
    if args.json:
        write_json(args.json, alerts)
        return 0
    if not alerts:
        print("no alerts")
    for a in alerts:
        print(f"{a['window'][:16]}  {a['topic']:<14} {a['message']}")
    return 0


def run_summary(args: argparse.Namespace) -> int:
    """Print per-topic window aggregates."""
    from ..monitor.service import summary
    from ..monitor.store import open_store

    store = open_store(need(args, "db", "DB"))
    out = summary(store, _settings(args, store).window, last=args.last)
    store.close()
    if args.json:
        write_json(args.json, out)
        return 0
    import datetime as _dt

    print(f"window {out['window']}")
    print(f"{'topic':<14} {'window start (UTC)':<18} {'items':>6} {'negative':>9} {'sentiment':>10}")
    for topic, rows in out["topics"].items():
        for row in rows:
            start = _dt.datetime.fromtimestamp(row["window_start"], _dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
            print(f"{topic:<14} {start:<18} {row['volume']:>6} {row['negative_share']:>9.0%} "
                  f"{row['mean_sentiment']:>+10.2f}")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    """Serve the dashboard (and ingest over HTTP with models)."""
    from ..monitor.service import create_monitor_app
    from ..monitor.store import open_store
    from ..serve.common import api_key_from_env
    from ..serve.runner import run_app

    key = api_key_from_env(args.api_key_env)
    store = open_store(need(args, "db", "DB"))
    ingestor = _ingestor(args, store) if args.sentiment_model else None
    window = ingestor.window if ingestor else _settings(args, store).window
    app = create_monitor_app(store, window, ingestor=ingestor, api_key=key)
    LOGGER.info("monitor dashboard on http://%s:%d/ (%s)", args.host, args.port,
                "POST /v1/items ingests" if ingestor else "read-only: no --sentiment-model")
    run_app(app, host=args.host, port=args.port)
    return 0


def run_report(args: argparse.Namespace) -> int:
    """Write the chart to a file."""
    from ..monitor.service import write_report
    from ..monitor.store import open_store

    store = open_store(need(args, "db", "DB"))
    path = write_report(store, _settings(args, store).window, args.output)
    store.close()
    print(path)
    return 0


def run_demo(args: argparse.Namespace) -> int:
    """Replay the demo stream and show the alert."""
    import contextlib
    import datetime as _dt
    import time
    from pathlib import Path

    from ..monitor.demo import DAY, open_demo_store, run_demo
    from ..monitor.service import create_monitor_app
    from ..serve.runner import BackgroundServer

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    store = open_demo_store(work)

    def announce(stream) -> None:
        surge_day = _dt.datetime.fromtimestamp(stream.surge_start, _dt.timezone.utc).date()
        print(f"replaying {stream.items} items ({stream.surge_items} injected negative headlines on {surge_day}) "
              f"from {stream.path}")

    with contextlib.ExitStack() as stack:
        if not args.no_serve:
            stack.enter_context(BackgroundServer(create_monitor_app(store, DAY), port=args.port))
            print(f"dashboard: http://127.0.0.1:{args.port}/")
        result = run_demo(work, store, sentiment_model=args.sentiment_model, topic_model=args.topic_model,
                          delay=args.delay, on_alert=_print_alert(None), on_stream=announce)
        print(result.stats.summary())
        print(f"alerts: {len(result.alerts)}; in the surge window or the next: {len(result.on_time)}; "
              f"before the surge: {len(result.early)}")
        print(" and ".join(str(p) for p in result.reports))
        if not args.no_serve:
            print(f"dashboard still serving on http://127.0.0.1:{args.port}/ (Ctrl-C to stop)")
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)
    store.close()
    return 0 if result.ok else 1
