"""What a reviewer reads: ``suspects.csv`` (one row per finding, a ``drop`` column to fill) and ``audit.html``.

The page is self-contained (no script or style fetched: it opens offline and as a mail attachment):
counts per finding on top, then every suspect row with its text, filterable by finding, file and
words, worst first.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import pandas as pd

from .run import AuditReport

#: Columns of suspects.csv; ``drop`` is for the reviewer (``--write-clean`` drops rows marked yes/x/1).
SUSPECT_COLUMNS = ["file", "row", "issue", "score", "label", "suggested", "of_file", "of_row", "detail", "text", "drop"]
#: Order of the findings in the file and on the page: what changes a score most first.
ISSUES = ("label_error", "leakage", "conflicting_duplicate", "duplicate", "empty_text", "empty_label", "other_script",
          "other_language", "too_long", "very_short")


def _label(value: Any) -> str:
    if value is None:
        return ""
    return "|".join(value) if isinstance(value, list) else str(value)


def suspects(report: AuditReport) -> pd.DataFrame:
    """One row per finding, in :data:`ISSUES` order and worst first within a finding."""
    by_name = {f.file: f for f in report.files}

    def text_of(file: str, row: int) -> str:
        f = by_name[file]
        return f.texts[f.rows.index(row)] if row in f.rows else ""

    def label_of(file: str, row: int) -> str:
        f = by_name[file]
        return _label(f.labels[f.rows.index(row)]) if f.labels is not None else ""

    items: list[dict[str, Any]] = []
    train = report.train.file
    for r in report.label_issues():
        items.append({"file": train, "row": r["row"], "issue": "label_error", "score": r["score"],
                      "label": _label(r["label"]), "suggested": _label(r["suggested"]),
                      "detail": "the out-of-fold model gives this label a low probability"})
    for d in report.duplicate_rows():
        issue = ("conflicting_duplicate" if d["same_label"] is False
                 else "leakage" if d["file"] != d["of_file"] else "duplicate")
        what = "exact (normalised) copy" if d["similarity"] >= 1.0 else f"near-copy, similarity {d['similarity']:.2f}"
        detail = f"{what} of {d['of_file']} row {d['of_row']}"
        if d["same_label"] is False:
            detail += f" labelled {label_of(d['of_file'], d['of_row'])!r}"
        items.append({"file": d["file"], "row": d["row"], "issue": issue, "score": d["similarity"],
                      "label": label_of(d["file"], d["row"]), "of_file": d["of_file"], "of_row": d["of_row"],
                      "detail": detail})
    for t in report.text_findings():
        items.append({"file": t["file"], "row": t["row"], "issue": t["issue"], "label": label_of(t["file"], t["row"]),
                      "detail": t["detail"]})
    for item in items:
        item["text"] = text_of(item["file"], item["row"])
    frame = pd.DataFrame(items, columns=SUSPECT_COLUMNS)
    if frame.empty:
        return frame
    frame["order"] = frame["issue"].map({name: k for k, name in enumerate(ISSUES)})
    frame = frame.sort_values(["order", "score", "file", "row"], ascending=[True, False, True, True], kind="stable")
    frame = frame.drop(columns="order").reset_index(drop=True)
    frame["drop"] = ""
    frame["of_row"] = frame["of_row"].astype("Int64")
    return frame


_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:72em;color:#222;padding:0 1em}
h1{font-size:1.4em}.meta{color:#666;font-size:.9em}.cards{display:flex;flex-wrap:wrap;gap:.6em;margin:1em 0}
.card{border:1px solid #ddd;border-radius:6px;padding:.4em .8em;min-width:7em;cursor:pointer}
.card b{display:block;font-size:1.3em}.card.zero{color:#999}.card.on{border-color:#2a6fdb;background:#eef4ff}
.filters{display:flex;gap:.8em;margin:.8em 0;flex-wrap:wrap}table{border-collapse:collapse;width:100%}
td,th{padding:.3em .5em;border-bottom:1px solid #eee;text-align:left;vertical-align:top;font-size:.92em}
th{background:#fafafa;position:sticky;top:0}.issue{white-space:nowrap;font-weight:600}.text{max-width:32em}
.classes span{display:inline-block;margin-right:1em}.file{white-space:nowrap}.notes li{color:#8a5a00}
"""

_SCRIPT = """
const DATA = JSON.parse(document.getElementById('data').textContent);
const body = document.querySelector('#rows tbody'), count = document.getElementById('count');
const fIssue = document.getElementById('issue'), fFile = document.getElementById('file'),
      fText = document.getElementById('search');
function render() {
  const issue = fIssue.value, file = fFile.value, words = fText.value.trim().toLowerCase();
  const rows = DATA.filter(r => (!issue || r.issue === issue) && (!file || r.file === file) &&
    (!words || (r.text + ' ' + r.detail + ' ' + r.label).toLowerCase().includes(words)));
  body.textContent = '';
  for (const r of rows.slice(0, 2000)) {
    const tr = document.createElement('tr');
    tr.dataset.issue = r.issue;
    const score = r.score === null ? '' : Number(r.score).toFixed(3);
    for (const [cls, v] of [['issue', r.issue], ['file', r.file.split('/').pop()], ['', r.row], ['', score],
        ['', r.label], ['', r.suggested], ['text', r.text], ['', r.detail]]) {
      const td = document.createElement('td'); td.className = cls; td.textContent = v ?? '';
      if (cls === 'file') td.title = r.file;
      tr.append(td);
    }
    body.append(tr);
  }
  count.textContent = `${rows.length} of ${DATA.length} findings` + (rows.length > 2000 ? ' (first 2000 shown)' : '');
  document.querySelectorAll('.card').forEach(c => c.classList.toggle('on', c.dataset.issue === issue));
}
document.querySelectorAll('.card').forEach(c => c.addEventListener('click', () => {
  fIssue.value = fIssue.value === c.dataset.issue ? '' : c.dataset.issue; render(); }));
[fIssue, fFile].forEach(e => e.addEventListener('change', render));
fText.addEventListener('input', render);
render();
"""


def audit_html(report: AuditReport, table: pd.DataFrame) -> str:
    """The self-contained audit page."""
    esc = html.escape
    counts = table["issue"].value_counts().to_dict() if not table.empty else {}
    cards = "".join(f"<div class='card{'' if counts.get(name) else ' zero'}' data-issue='{name}'>"
                    f"<b>{counts.get(name, 0)}</b>{name.replace('_', ' ')}</div>" for name in ISSUES)
    options = "".join(f"<option value='{n}'>{n.replace('_', ' ')}</option>" for n in ISSUES if counts.get(n))
    files = "".join(f"<option value='{esc(f.file)}'>{esc(f.file)}</option>" for f in report.files)
    classes = "".join(f"<span>{esc(str(k))}: <b>{v}</b></span>" for k, v in report.classes().items())
    notes = "".join(f"<li>{esc(n)}</li>" for n in report.notes)
    summary = report.summary()
    rows = ", ".join(f"<span title='{esc(k)}'>{esc(Path(k).name)}</span>: {v} rows" for k, v in summary["rows"].items())
    records = json.loads(table.drop(columns="drop").to_json(orient="records")) if not table.empty else []
    data = json.dumps(records, ensure_ascii=False).replace("</", "<\\/")
    model = esc(report.config.model)
    head = ("<th>finding</th><th>file</th><th>row</th><th>score</th><th>label</th><th>suggested</th>"
            "<th>text</th><th>detail</th>")
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Data audit</title>"
            f"<style>{_STYLE}</style></head><body><h1>Data audit</h1>"
            f"<p class='meta'>{rows} · label check: {summary['label_checked']} rows, {model}, "
            f"{report.labels.folds if report.labels else 0}-fold · {summary['seconds']} s</p>"
            f"<div class='cards'>{cards}</div>"
            + (f"<p class='classes'>Classes: {classes} (largest/smallest {summary['imbalance']})</p>"
               if classes else "")
            + (f"<ul class='notes'>{notes}</ul>" if notes else "")
            + "<div class='filters'><label>Finding <select id='issue'><option value=''>all</option>"
            f"{options}</select></label><label>File <select id='file'><option value=''>all</option>{files}"
            "</select></label><label>Words <input id='search' type='search' placeholder='filter'></label>"
            "<span id='count' class='meta'></span></div>"
            f"<table id='rows'><thead><tr>{head}</tr></thead><tbody></tbody></table>"
            f"<script type='application/json' id='data'>{data}</script><script>{_SCRIPT}</script></body></html>\n")
