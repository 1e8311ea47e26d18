"""Opinion monitor: replay acceptance (surge alert timing, calm period, idempotent re-ingest) and ingest throughput.

Usage: python bench/monitor.py --sentiment-model DIR --topic-model DIR [--label NAME] [--json FILE]

1. Sentiment transfer: accuracy of the sentiment model on the 50 hand-written financial headlines
   in examples/monitor/financial_headlines.csv (never trained on).
2. Replays the demo stream (real Guardian business headlines over 28 days + 30 hand-written
   negative headlines about a fictional bank) with the surge injected on three different days, 1-day
   windows, the default alert rules. For each: which windows alerted, whether the surge window (or
   the next) did, whether any calm window did, and what a second ingest of the same stream adds.
3. Throughput: items/s of ingest with the models, against the store alone (the same classified rows
   written in the same batches, with alert evaluation) in the same run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pandas as pd  # noqa: E402

from lmworks.monitor.alerts import evaluate_rules  # noqa: E402
from lmworks.monitor.demo import build_demo_stream  # noqa: E402
from lmworks.monitor.ingest import Ingestor, OpinionClassifier, open_stream  # noqa: E402
from lmworks.monitor.rules import DEFAULT_RULES, parse_rule  # noqa: E402
from lmworks.monitor.store import SQLiteStore  # noqa: E402

DAY = 86400
HEADLINES = Path(__file__).resolve().parent.parent / "examples" / "monitor" / "financial_headlines.csv"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentiment-model", required=True)
    parser.add_argument("--topic-model", required=True)
    parser.add_argument("--label", default="models", help="name of this model pair in the table")
    parser.add_argument("--surge-days", type=int, nargs="+", default=[10, 16, 22])
    parser.add_argument("--json")
    args = parser.parse_args()
    classifier = OpinionClassifier(args.sentiment_model, args.topic_model)
    rules = [parse_rule(r) for r in DEFAULT_RULES]
    out: dict = {"label": args.label, "sentiment_model": args.sentiment_model, "topic_model": args.topic_model}

    frame = pd.read_csv(HEADLINES)
    from lmworks.monitor.ingest import StreamItem

    rows = classifier.classify([StreamItem(str(i), 0, "", t) for i, t in enumerate(frame["text"])])
    predicted = ["negative" if r["negative"] else "positive" for r in rows]
    accuracy = sum(p == y for p, y in zip(predicted, frame["label"])) / len(frame)
    out["financial_headlines_accuracy"] = accuracy
    print(f"sentiment on {len(frame)} hand-written financial headlines: accuracy {accuracy:.3f}")

    replays = []
    with tempfile.TemporaryDirectory() as tmp:
        for surge_day in args.surge_days:
            stream = build_demo_stream(Path(tmp) / f"stream-{surge_day}.jsonl", surge_day=surge_day)
            store = SQLiteStore(Path(tmp) / f"m-{surge_day}.sqlite")
            ingestor = Ingestor(store, classifier, window=DAY, rules=rules, on_alert=lambda a: None)
            with open_stream(str(stream.path)) as fh:
                stats = ingestor.run(fh)
            alerts = store.alerts()
            surge = [a for a in alerts if stream.surge_start <= a["window_start"] <= stream.surge_start + DAY]
            calm = [a for a in alerts if a not in surge]
            first_alert = min((a["window_start"] for a in surge), default=None)
            rows_before, alerts_before = store.count(), len(alerts)
            again = Ingestor(store, classifier, window=DAY, rules=rules, on_alert=lambda a: None)
            with open_stream(str(stream.path)) as fh:
                again.run(fh)
            replay = {
                "surge_day": str(dt.datetime.fromtimestamp(stream.surge_start, dt.timezone.utc).date()),
                "items": stream.items, "alerts": len(alerts),
                "surge_alert_delay_windows": None if first_alert is None else (first_alert - stream.surge_start) // DAY,
                "calm_alerts": [a["message"] for a in calm],
                "reingest_added_rows": store.count() - rows_before,
                "reingest_added_alerts": len(store.alerts()) - alerts_before,
                "items_per_s_with_models": stats.added / stats.seconds,
            }
            replays.append(replay)
            delay = replay["surge_alert_delay_windows"]
            print(f"surge on {replay['surge_day']}: {len(alerts)} alerts; surge window alerted "
                  f"{'no' if delay is None else f'yes (+{delay} windows)'}; "
                  f"calm-period alerts {len(calm)}; re-ingest added {replay['reingest_added_rows']} rows, "
                  f"{replay['reingest_added_alerts']} alerts; {replay['items_per_s_with_models']:.0f} items/s",
                  flush=True)
            for message in replay["calm_alerts"]:
                print(f"    calm alert: {message}")
            store.close()
        out["replays"] = replays
        out["throughput"] = throughput(classifier, rules, Path(tmp), replays)
    t = out["throughput"]
    print(f"\ningest throughput ({t['items']} items, batch 64): with models {t['with_models']:.0f} items/s; "
          f"store alone {t['store_only']:.0f} items/s ({t['store_only'] / t['with_models']:.0f}x): the classifier "
          "bounds ingest")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    ok = all(r["surge_alert_delay_windows"] is not None and r["surge_alert_delay_windows"] <= 1 and not r["calm_alerts"]
             and r["reingest_added_rows"] == 0 and r["reingest_added_alerts"] == 0 for r in replays)
    print("acceptance:", "met" if ok else "NOT met")
    return 0 if ok else 1


def throughput(classifier, rules, tmp: Path, replays) -> dict:
    """Same stream, same batches: once classified, once with the rows already classified (store alone)."""
    stream = build_demo_stream(tmp / "tp.jsonl")
    store = SQLiteStore(tmp / "tp.sqlite")
    ingestor = Ingestor(store, classifier, window=DAY, rules=rules, on_alert=lambda a: None)
    with open_stream(str(stream.path)) as fh:
        stats = ingestor.run(fh)
    with_models = stats.added / stats.seconds
    import sqlite3

    from lmworks.monitor.store import ITEM_COLUMNS

    con = sqlite3.connect(tmp / "tp.sqlite")
    rows = [dict(zip(ITEM_COLUMNS, r)) for r in con.execute(f"SELECT {', '.join(ITEM_COLUMNS)} FROM items ORDER BY ts")]
    con.close()
    fresh = SQLiteStore(tmp / "store-only.sqlite")
    started = time.perf_counter()
    for i in range(0, len(rows), 64):
        batch = rows[i:i + 64]
        fresh.insert_items(batch)
        evaluate_rules(fresh, rules, DAY, since=min(r["ts"] for r in batch), topics=sorted({r["topic"] for r in batch}))
    store_only = len(rows) / (time.perf_counter() - started)
    return {"items": len(rows), "with_models": with_models, "store_only": store_only}


if __name__ == "__main__":
    sys.exit(main())
