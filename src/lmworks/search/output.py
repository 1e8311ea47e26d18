"""What a search leaves for the user: the best trial's model directory, ``trials.csv`` and the record.

Written at the end, atomically: the directory appears complete or not at all, and it is an
ordinary model directory (``evaluate``, ``predict``, ``export``, ``serve`` and ``explain`` read it).
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from typing import Any

from ..atomic import atomic_dir
from ..classifier import TextClassifier
from ..model_dir import read_meta, write_meta

#: Written next to ``lmworks.json`` in the output directory: one row per trial.
TRIALS_FILE = "trials.csv"


def write_trials_csv(study: Any, path: Path) -> None:
    """One row per trial: number, state, values, seconds, parameters, and what the trial recorded."""
    names = sorted({p for t in study.trials for p in t.params})
    extra = ("latency_ms", "train_seconds", "epochs_seen", "stopped_by_budget", "pruned", "repeat_of", "model_dir")
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        values = [f"value_{i}" for i in range(len(study.directions))]
        writer.writerow(["number", "state", *values, "started", "seconds", *names, *extra])
        for t in study.trials:
            seconds = (t.datetime_complete - t.datetime_start).total_seconds() \
                if t.datetime_complete and t.datetime_start else ""
            writer.writerow([t.number, t.state.name.lower(), *(t.values or [""] * len(values)),
                             t.datetime_start.isoformat(timespec="seconds") if t.datetime_start else "",
                             f"{seconds:.1f}" if seconds != "" else "", *(t.params.get(n, "") for n in names),
                             *(t.user_attrs.get(k, "") for k in extra)])


def write_output(output: Path, clf: TextClassifier, study: Any, record: dict[str, Any],
                 model_dir: Path | None) -> Path:
    """The best trial's model directory, plus ``trials.csv`` and ``tune`` in ``lmworks.json``; atomically."""
    with atomic_dir(output) as tmp:
        if model_dir is not None and model_dir.is_dir():
            shutil.copytree(model_dir, tmp, dirs_exist_ok=True)
            meta = read_meta(tmp)
        else:
            clf.save(tmp / "model")
            for item in (tmp / "model").iterdir():
                item.rename(tmp / item.name)
            (tmp / "model").rmdir()
            meta = read_meta(tmp)
        write_trials_csv(study, tmp / TRIALS_FILE)
        meta = {k: v for k, v in meta.items() if k not in ("format", "format_version", "created", "versions",
                                                           "files")}
        meta["tune"] = record
        write_meta(tmp, meta)
    return output
