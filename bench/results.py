"""Write a benchmark's current table to ``docs/results/NAME.json``, which the docs render.

The results page, the guides' numbers and the README's headline table are all generated from
these files (``scripts/docgen.py``), so a benchmark rerun with ``--results`` updates every
place that quotes it. The file records what was measured, the command, the date, the machine,
package versions and the baseline measured in the same run.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"


def machine() -> str:
    """CPU model, usable cores and memory, as the results pages state them."""
    model = platform.processor() or platform.machine()
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        model = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    memory = ""
    try:
        kib = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                       if line.startswith("MemTotal")))
        memory = f", {kib / 2**20:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    return f"{cores} cores of {model}{memory}"


def versions(*packages: str) -> dict[str, str]:
    """Installed versions of torch, transformers and ``packages``."""
    found = {}
    for name in ("torch", "transformers", *packages):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


def record(name: str, *, title: str, what: str, baseline: str, columns: list[str], rows: list[list[Any]],
           values: dict[str, Any] | None = None, headline: dict[str, Any] | None = None,
           notes: list[str] | None = None, packages: tuple[str, ...] = ()) -> Path:
    """Write ``docs/results/NAME.json``; the command is this process's own command line."""
    path = RESULTS / f"{name}.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    command = " ".join([".venv/bin/python", *[a if " " not in a else repr(a) for a in sys.argv]])
    result = {"order": old.get("order", 99), "title": title, "what": what, "command": command,
              "date": dt.date.today().isoformat(), "machine": machine(), "versions": versions(*packages),
              "baseline": baseline, "columns": columns, "rows": rows, "values": values or {},
              **({"headline": headline} if headline else {}), **({"notes": notes} if notes else {})}
    RESULTS.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    tmp.replace(path)
    print(f"wrote {path} (then: python scripts/docgen.py --write)")
    return path
