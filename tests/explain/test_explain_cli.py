"""``lmworks explain``: JSON lines, the HTML report in a real browser, the file summary, bad input."""

import json
import os
from pathlib import Path

import pytest

from conftest import free_port, make_sentiment
from lmworks.cli import main


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    texts, labels = make_sentiment(20, seed=7)
    path = tmp_path_factory.mktemp("explain-data") / "reviews.csv"
    lines = ["text,label"] + [f"{t},{y}" for t, y in zip(texts, labels)]
    path.write_text("\n".join(lines) + "\n")
    return path, texts


def test_jsonl_rows_follow_the_contract(tiny_model_dir, data, tmp_path, capsys):
    path, texts = data
    out = tmp_path / "why.jsonl"
    assert main(["explain", str(tiny_model_dir), str(path), "--output", str(out), "--quiet"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["row"] for r in rows] == list(range(1, len(texts) + 1))
    for r, text in zip(rows, texts):
        assert r["words"] == text.split() and len(r["scores"]) == len(r["words"])
        assert r["label"] == r["predicted"] and r["method"] == "integrated_gradients" and "delta" in r
    assert main(["explain", str(tiny_model_dir), "--text", texts[0], "--class", "neg", "--output", "-"]) == 0
    streamed = json.loads(capsys.readouterr().out)
    assert streamed["label"] == "neg" and streamed["words"] == texts[0].split()


def test_global_summary_lists_the_cue_words(tiny_model_dir, data, tmp_path):
    from conftest import NEGATIVE, POSITIVE

    path, _ = data
    out = tmp_path / "words.json"
    assert main(["explain", str(tiny_model_dir), str(path), "--global", "--output", str(out), "-q"]) == 0
    summary = json.loads(out.read_text())
    assert summary["texts"] == 20 and set(summary["classes"]) <= {"pos", "neg"}
    cues = {"pos": POSITIVE, "neg": NEGATIVE}
    for label, rows in summary["classes"].items():
        assert rows[0]["word"] in cues[label], rows[:3]
        assert all({"word", "count", "mean_score", "total"} <= set(r) for r in rows)


def test_html_report_highlights_and_toggles_class_in_chromium(tiny_model_dir, data, tmp_path):
    from browser import Browser

    path, texts = data
    out = tmp_path / "why.html"
    assert main(["explain", str(tiny_model_dir), str(path), "--output", str(out), "--limit", "6", "-q"]) == 0
    page = out.read_text()
    assert "<link" not in page and "src=" not in page  # nothing fetched from anywhere
    browser = Browser(free_port())
    try:
        browser.goto(out.as_uri())
        browser.wait_for("document.querySelectorAll('.item .w').length > 0")
        assert browser.eval("document.querySelectorAll('.item').length") == 6
        words = browser.eval("[...document.querySelectorAll('.item')[0].querySelectorAll('.w')]"
                             ".map(s => s.textContent)")
        assert words == texts[0].split()
        first = browser.eval("[...document.querySelectorAll('.item')[0].querySelectorAll('.w')]"
                             ".map(s => Number(s.dataset.score))")
        shown = browser.eval("document.querySelectorAll('.item')[0].querySelector('.shown').textContent")
        other = "neg" if shown == "pos" else "pos"
        browser.eval(f"const s = document.getElementById('cls'); s.value = '{other}'; "
                     "s.dispatchEvent(new Event('change'))")
        flipped = browser.eval("[...document.querySelectorAll('.item')[0].querySelectorAll('.w')]"
                               ".map(s => Number(s.dataset.score))")
        assert flipped == pytest.approx([-x for x in first], abs=1e-5)
        assert browser.eval("document.querySelectorAll('.item')[0].querySelector('.shown').textContent") == other
        browser.screenshot(Path(os.environ.get("LMWORKS_SCREENSHOTS", tmp_path)) / "explain_report.png")
    finally:
        browser.close()


def test_bad_input_fails_cleanly_and_writes_nothing(tiny_model_dir, data, tmp_path, capsys):
    path, _ = data
    out = tmp_path / "why.jsonl"
    assert main(["explain", str(tiny_model_dir), str(path), "--class", "nope", "-o", str(out)]) == 1
    assert "unknown class 'nope'" in capsys.readouterr().err and not out.exists()
    assert main(["explain", str(tiny_model_dir), str(path), "-o", str(tmp_path / "why.txt")]) == 1
    assert ".html or .jsonl" in capsys.readouterr().err
    assert main(["explain", str(tiny_model_dir)]) == 1
    assert "nothing to explain" in capsys.readouterr().err
    empty = tmp_path / "empty.csv"
    empty.write_text("text\nfine words\n\"  \"\n")
    assert main(["explain", str(tiny_model_dir), str(empty), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "row 2" in err and str(empty) in err and not out.exists()
