"""Self-contained HTML pages for explanations: highlighted texts, and the words that push each class.

No script or style is fetched from anywhere (the pages open offline and in a mail
attachment). Colours: green supports the class shown, red speaks against it, the strength is
the score relative to the text's largest; hovering a word shows its score. A class selector
re-colours every text for another class when the scores of every class were computed.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

from .explanation import Explanation

_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;margin:2em auto;max-width:60em;color:#222;padding:0 1em}
h1{font-size:1.4em}.meta{color:#666;font-size:.9em}
.item{border-bottom:1px solid #ddd;padding:.8em 0}.head{font-size:.9em;color:#444;margin-bottom:.3em}
.label{font-weight:600}.w{border-radius:3px;padding:0 1px}.cut{color:#999}
table{border-collapse:collapse;margin:.5em 1.5em 1.5em 0;display:inline-table;vertical-align:top}
td,th{padding:.15em .6em;text-align:left;border-bottom:1px solid #eee}.bar{background:#2a9d5c;height:.7em}
"""

#: Colours one word span by its score (shared by the report and the service pages).
HIGHLIGHT_JS = """
function lmColour(score, scale) {
  const a = Math.min(1, Math.abs(score) / (scale || 1)) * 0.75;
  return score >= 0 ? `rgba(42,157,92,${a})` : `rgba(214,69,65,${a})`;
}
function lmHighlight(container, words, scores) {
  container.textContent = "";
  const scale = Math.max(1e-9, ...scores.map(Math.abs));
  words.forEach((w, i) => {
    const s = document.createElement("span");
    s.className = "w"; s.textContent = w; s.title = scores[i].toFixed(4);
    s.dataset.score = scores[i]; s.style.background = lmColour(scores[i], scale);
    container.append(s, " ");
  });
}
"""

_TOGGLE_JS = """
const items = JSON.parse(document.getElementById("lm-data").textContent);
function show(cls) {
  document.querySelectorAll(".item").forEach((el, i) => {
    const it = items[i];
    const scores = cls && it.classes ? it.classes[cls] : it.scores;
    lmHighlight(el.querySelector(".text"), it.words, scores);
    el.querySelector(".shown").textContent = cls || it.label;
  });
}
const pick = document.getElementById("cls");
if (pick) pick.addEventListener("change", () => show(pick.value));
show(pick ? pick.value : null);
"""


def _page(title: str, meta: str, body: str, script: str = "") -> str:
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1><p class='meta'>{meta}</p>"
            f"{body}{script}</body></html>\n")


def explanations_html(explanations: Sequence[Explanation], *, title: str = "Why the model decided",
                      model: str = "", rows: Sequence[int] | None = None) -> str:
    """The per-text report: each text highlighted for its explained class, with a class selector."""
    classes = sorted({c for e in explanations if e.classes for c in e.classes})
    picker = ""
    if classes:
        options = "".join(f"<option value='{html.escape(c)}'>{html.escape(c)}</option>" for c in classes)
        picker = (f"<p><label>Colour for class <select id='cls'><option value=''>explained class</option>"
                  f"{options}</select></label></p>")
    items = []
    for i, e in enumerate(explanations):
        where = f"row {rows[i]} · " if rows is not None else ""
        cut = (f" · <span class='cut'>model read the first {e.words_read} of {len(e.words)} words</span>"
               if e.truncated else "")
        delta = f" · IG delta {e.delta:+.3f}" if e.delta is not None else ""
        items.append(f"<div class='item'><div class='head'>{where}predicted <span class='label'>"
                     f"{html.escape(str(e.predicted))}</span> · p({html.escape(e.label)}) = {e.probability:.3f} · "
                     f"colours for <span class='shown'></span>{delta}{cut}</div><div class='text'></div></div>")
    data = json.dumps([e.to_dict() for e in explanations], ensure_ascii=False).replace("</", "<\\/")
    method = explanations[0].method if explanations else ""
    meta = (f"{len(explanations)} texts · model {html.escape(model)} · method {html.escape(method)} · green supports "
            "the class shown, red speaks against it; hover a word for its score")
    script = (f"<script id='lm-data' type='application/json'>{data}</script>"
              f"<script>{HIGHLIGHT_JS}{_TOGGLE_JS}</script>")
    return _page(title, meta, picker + "".join(items), script)


def global_html(summary: dict[str, list[dict[str, Any]]], *, model: str = "", n_texts: int = 0) -> str:
    """Top words per class over a file: counts, mean score and total, with a bar for the total."""
    tables = []
    for label, rows in summary.items():
        scale = max((r["total"] for r in rows), default=1.0) or 1.0
        body = "".join(
            f"<tr><td>{html.escape(r['word'])}</td><td>{r['count']}</td><td>{r['mean_score']:.3f}</td>"
            f"<td>{r['total']:.2f}</td><td><div class='bar' style='width:{100 * r['total'] / scale:.0f}px'></div>"
            f"</td></tr>" for r in rows)
        tables.append(f"<table class='class' data-class='{html.escape(label)}'><caption><b>{html.escape(label)}"
                      f"</b></caption><tr><th>word</th><th>texts</th><th>mean</th><th>total</th><th></th></tr>"
                      f"{body}</table>")
    meta = (f"{n_texts} texts · model {html.escape(model)} · each text explained for its predicted class; "
            "a word's total is the sum of its scores over the texts predicted as that class")
    return _page("Words that push each class", meta, "".join(tables))
