"""``tune.html``: the search as pictures, from a tuned model directory (``trials.csv`` + ``lmworks.json``).

Three charts, drawn by matplotlib as inline SVG so the page is one self-contained offline file:
the optimisation history (every trial's dev score against the time it finished, the best so
far as a step line), the parameter importances (fANOVA, computed when the search ended), and,
with two objectives, the Pareto front of dev score against measured latency.
"""

from __future__ import annotations

import csv
import html
import io
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ModelDirError
from ..model_dir import read_meta
from .output import TRIALS_FILE

_STYLE = """body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1000px;color:#222}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}table{border-collapse:collapse;font-size:.85rem}
td,th{border-bottom:1px solid #ddd;padding:.25rem .5rem;text-align:left}figure{margin:0}
.summary{background:#f5f7fa;padding:.75rem 1rem;border-radius:6px}"""


def read_trials(directory: Path) -> list[dict[str, str]]:
    """The rows of ``trials.csv`` in a tuned model directory."""
    path = directory / TRIALS_FILE
    if not path.is_file():
        raise ModelDirError(f"{directory}: no {TRIALS_FILE}; is it a directory written by 'lmworks tune'?")
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def render_report(directory: str | Path) -> str:
    """The report page of a tuned model directory."""
    directory = Path(directory)
    meta = read_meta(directory)
    record = meta.get("tune")
    if not record:
        raise ModelDirError(f"{directory}: lmworks.json has no 'tune' record; is it a directory written by "
                            "'lmworks tune'?")
    rows = read_trials(directory)
    metric = record["objectives"][0]
    parts = [f"<h1>Search report: {html.escape(directory.name)}</h1>", _summary(record, rows, metric),
             "<h2>Optimisation history</h2>", f"<figure id='history'>{history_svg(rows, metric)}</figure>"]
    if record.get("importances"):
        parts += ["<h2>Parameter importances (fANOVA, dev " + html.escape(metric) + ")</h2>",
                  f"<figure id='importances'>{importance_svg(record['importances'])}</figure>"]
    else:
        parts.append("<p>Parameter importances need at least three finished trials that differ.</p>")
    if len(record["objectives"]) == 2:
        parts += ["<h2>Pareto front: dev score against measured latency</h2>",
                  f"<figure id='front'>{front_svg(rows, metric, set(record.get('front') or []))}</figure>"]
    parts += ["<h2>Trials</h2>", _table(rows)]
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>lmworks tune: "
            f"{html.escape(directory.name)}</title><style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>")


def _summary(record: dict[str, Any], rows: list[dict[str, str]], metric: str) -> str:
    counts = ", ".join(f"{n} {state}" for state, n in record["trials"].items())
    params = ", ".join(f"{k}={v}" for k, v in record["best_params"].items())
    test = record.get("test_metrics")
    test_text = f"; test {metric} {test[metric]:.4f} on {test['n']} texts (scored once, after the search)" \
        if test and metric in test else ""
    return (f"<p class='summary'>Best trial {record['best_trial']}: dev {html.escape(metric)} "
            f"{record['best_values'][0]:.4f}{test_text}.<br>Parameters: {html.escape(params)}.<br>"
            f"{len(rows)} trials ({html.escape(counts)}) in {record['elapsed_s']:.0f} s of a "
            f"{record['config']['budget_s']:.0f} s budget.</p>")


def _figure(width: float = 7.5, height: float = 3.6) -> tuple[Any, Any]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - part of the tune extra
        raise ConfigError("the tune report draws with matplotlib: pip install 'lmworks[tune]'") from err
    return plt.subplots(figsize=(width, height))


def _svg(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    fig.tight_layout()
    fig.savefig(buffer, format="svg")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def _minutes(rows: list[dict[str, str]]) -> list[float | None]:
    """Minutes from the first trial's start to each trial's end."""
    import datetime as dt

    starts = [dt.datetime.fromisoformat(r["started"]) if r.get("started") else None for r in rows]
    first = min((s for s in starts if s is not None), default=None)
    out: list[float | None] = []
    for row, start in zip(rows, starts):
        if start is None or first is None or not row.get("seconds"):
            out.append(None)
            continue
        out.append(((start - first).total_seconds() + float(row["seconds"])) / 60)
    return out


def history_svg(rows: list[dict[str, str]], metric: str) -> str:
    """Each trial's dev score at the minute it finished (pruned: its last reported score); best so far."""
    fig, ax = _figure()
    points = sorted((m, float(r["value_0"]), r["state"], r.get("params_model") or r.get("model", ""))
                    for m, r in zip(_minutes(rows), rows) if m is not None and r.get("value_0"))
    for state, marker, colour in (("complete", "o", "#1f77b4"), ("pruned", "x", "#d62728")):
        chosen = [(m, v) for m, v, s, _ in points if s == state]
        if chosen:
            ax.scatter(*zip(*chosen), marker=marker, color=colour, label=state, zorder=3)
    best, line = float("-inf"), []
    for m, v, s, _ in points:
        if s == "complete" and v > best:
            best = v
        if best > float("-inf"):
            line.append((m, best))
    if line:
        ax.step(*zip(*line), where="post", color="#2ca02c", label="best so far")
    ax.set_xlabel("minutes since the search started")
    ax.set_ylabel(f"dev {metric}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return _svg(fig)


def importance_svg(importances: dict[str, float]) -> str:
    """Horizontal bars, most important on top."""
    fig, ax = _figure(height=0.45 * len(importances) + 1.2)
    names = list(importances)[::-1]
    ax.barh(names, [importances[n] for n in names], color="#1f77b4")
    ax.set_xlabel("importance (share of the dev score's variance)")
    ax.grid(axis="x", alpha=0.3)
    return _svg(fig)


def front_svg(rows: list[dict[str, str]], metric: str, front: set[int]) -> str:
    """Every finished trial by measured latency and dev score; the front joined and labelled."""
    fig, ax = _figure(height=4.2)
    done = [(float(r["value_1"]), float(r["value_0"]), int(r["number"]), _label(r))
            for r in rows if r["state"] == "complete" and r.get("value_1")]
    ax.scatter([d[0] for d in done], [d[1] for d in done], color="#9aa5b1", label="trials")
    best = sorted(d for d in done if d[2] in front)
    if best:
        ax.plot([d[0] for d in best], [d[1] for d in best], "o-", color="#d62728", label="Pareto front")
        for x, y, _, label in best:
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(5, -12), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("measured latency, ms per text (one text per call)")
    ax.set_ylabel(f"dev {metric}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return _svg(fig)


def _label(row: dict[str, str]) -> str:
    model = Path(row.get("model", "")).name or "?"
    return f"{model} {row['runtime']}" if row.get("runtime") else model


def _table(rows: list[dict[str, str]]) -> str:
    skip = {"started", "model_dir"}
    columns = [c for c in rows[0] if c not in skip and any(r.get(c) for r in rows)] if rows else []
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(r.get(c, '')))}</td>" for c in columns) + "</tr>"
                   for r in rows)
    return f"<table id='trials'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: str) -> str:
    try:
        number = float(value)
    except ValueError:
        return value
    return value if number.is_integer() else f"{number:.4g}"
