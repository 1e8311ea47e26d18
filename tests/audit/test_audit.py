"""The data audit: planted label errors, duplicates and leakage found with their rows, text checks, the
audit.json contract, write-clean, the page in a real browser, and bad input."""

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from conftest import free_port, make_sentiment
from lmworks.audit import AuditConfig, audit, suspects
from lmworks.cli import main

SENTENCES = [
    "The bank raised its interest rates again this quarter, surprising most analysts",
    "Our delivery arrived three days late and the box was crushed on one side",
    "The support agent solved my billing problem in under five minutes",
    "Shares of the retailer fell sharply after the profit warning on Monday",
    "I could not log into the mobile app after the latest update was installed",
    "The new savings account offers a better rate than the old one did",
    "The refund took two weeks to appear on my credit card statement",
    "Quarterly revenue beat expectations thanks to strong online sales abroad",
]


def write_csv(path: Path, texts, labels=None) -> Path:
    frame = pd.DataFrame({"text": texts} | ({"label": labels} if labels is not None else {}))
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def noisy(tmp_path_factory):
    """300 generated reviews with 12 labels flipped: (path, flipped 1-based rows, true labels)."""
    texts, labels = make_sentiment(300, seed=3)
    truth = list(labels)
    flipped = list(range(5, 300, 25))
    for i in flipped:
        labels[i] = "neg" if labels[i] == "pos" else "pos"
    path = write_csv(tmp_path_factory.mktemp("audit") / "noisy.csv", texts, labels)
    return path, {i + 1 for i in flipped}, truth


def test_planted_label_errors_top_the_ranking_with_the_true_label_suggested(noisy):
    path, flipped, truth = noisy
    report = audit(str(path))
    issues = report.label_issues()
    top = issues[: len(flipped)]
    assert {r["row"] for r in top} == flipped  # every flipped row, and only those, at the top
    for r in top:
        assert r["suggested"] == truth[r["row"] - 1] != r["label"]
    assert [r["score"] for r in issues] == sorted((r["score"] for r in issues), reverse=True)
    assert report.summary()["label_checked"] == 300


def test_audit_json_contract_and_suspects_csv(noisy, tmp_path, capsys):
    path, flipped, _ = noisy
    out, js = tmp_path / "out" / "audit.html", tmp_path / "audit.json"
    assert main(["audit", str(path), "--output", str(out), "--json", str(js), "-q"]) == 0
    printed = capsys.readouterr().out
    assert "likely label errors" in printed and f"{len(flipped)}" in printed
    found = json.loads(js.read_text())
    assert {"summary", "label_issues", "duplicates"} <= set(found)
    assert all(set(r) == {"row", "label", "suggested", "score"} for r in found["label_issues"])
    assert found["summary"]["label_issues"] == len(found["label_issues"]) >= len(flipped)
    table = pd.read_csv(out.parent / "suspects.csv", keep_default_na=False)
    errors = table[table["issue"] == "label_error"]
    assert set(errors["row"].head(len(flipped))) == flipped and "drop" in table.columns
    page = out.read_text()
    assert page.startswith("<!doctype html>") and "http" not in page.split("<body>")[1]  # nothing fetched


def test_duplicates_leakage_and_conflicting_labels_are_found_with_their_rows(tmp_path):
    train_texts = SENTENCES + ["the bank raised its interest rates again this quarter surprising most analysts!"]
    labels = ["finance", "service", "service", "finance", "service", "finance", "service", "finance", "service"]
    train = write_csv(tmp_path / "train.csv", train_texts, labels)
    test_texts = [
        "Shares of the retailer fell sharply after the profit warning on Tuesday",  # one word changed: row 4
        "and the box was crushed on one side, our delivery arrived three days late",  # clauses reordered: row 2
        "A completely different sentence about the weather in the mountains today",
        "THE SUPPORT AGENT SOLVED MY BILLING PROBLEM IN UNDER FIVE MINUTES",  # case: row 3
    ]
    test = write_csv(tmp_path / "test.csv", test_texts, ["finance", "service", "service", "service"])
    report = audit(str(train), test=str(test))
    dups = report.duplicate_rows()
    inside = [d for d in dups if d["file"] == d["of_file"]]
    assert inside == [{"file": str(train), "row": 9, "of_file": str(train), "of_row": 1, "similarity": 1.0,
                       "same_label": False}]
    leaks = {d["row"]: d for d in dups if d["file"] == str(test)}
    assert set(leaks) == {1, 2, 4}
    assert {r: leaks[r]["of_row"] for r in leaks} == {1: 4, 2: 2, 4: 3}
    assert all(leaks[r]["same_label"] for r in leaks) and leaks[4]["similarity"] == 1.0
    assert 0.8 <= leaks[1]["similarity"] < 1.0
    summary = report.summary()
    assert (summary["duplicates"], summary["leakage"], summary["conflicting_labels"]) == (1, 3, 1)
    issues = suspects(report)["issue"].tolist()
    assert issues.count("leakage") == 3 and issues.count("conflicting_duplicate") == 1


def test_text_checks_and_empty_cells_are_reported_not_refused(tmp_path):
    texts = [s for s in SENTENCES] * 8 + ["", "ok", "Это предложение написано совсем другим алфавитом сегодня",
                                          " ".join(["word"] * 200)]
    texts = [f"{t} {i}" if t and len(t) > 20 and not t.startswith("Это") else t for i, t in enumerate(texts)]
    labels = ["a", "b"] * 32 + ["a", "", "b", "a"]
    path = write_csv(tmp_path / "mixed.csv", texts, labels)
    report = audit(str(path))
    found = {(t["row"], t["issue"]) for t in report.text_findings()}
    assert {(65, "empty_text"), (66, "empty_label"), (66, "very_short"), (67, "other_script"),
            (68, "too_long")} <= found
    assert not any(row <= 64 and issue in {"other_script", "too_long", "empty_text"} for row, issue in found)
    assert report.summary()["empty_text"] == 1 and report.summary()["too_long"] == 1


def test_small_class_lowers_the_folds_and_says_so(tmp_path):
    texts, labels = make_sentiment(40, seed=1)
    texts += ["a rare third kind of text here", "another rare third kind sentence", "third kind again, rarely"]
    labels += ["rare"] * 3
    report = audit(str(write_csv(tmp_path / "small.csv", texts, labels)))
    assert report.labels is not None and report.labels.folds == 3
    assert any("folds lowered from 5 to 3: class 'rare' has 3 rows" in n for n in report.notes)


def test_unlabelled_file_gets_duplicate_and_text_checks_only(tmp_path, capsys):
    path = write_csv(tmp_path / "plain.csv", SENTENCES + [SENTENCES[0].upper()])
    report = audit(str(path))
    assert report.labels is None and report.label_issues() == []
    assert [d["row"] for d in report.duplicate_rows()] == [9]
    assert any("duplicate and text checks only" in n for n in report.notes)
    assert main(["audit", str(path), "--no-labels", "-q"]) == 0
    assert "not checked" in capsys.readouterr().out


def test_write_clean_drops_only_marked_rows_and_keeps_the_original(noisy, tmp_path, capsys):
    path, flipped, _ = noisy
    out = tmp_path / "audit.html"
    assert main(["audit", str(path), "-o", str(out), "-q"]) == 0
    table = pd.read_csv(tmp_path / "suspects.csv", dtype=str, keep_default_na=False)
    marked = table.index[table["issue"] == "label_error"][:3]
    table.loc[marked, "drop"] = "yes"
    table.to_csv(tmp_path / "suspects.csv", index=False)
    before = path.read_bytes()
    clean = tmp_path / "clean.jsonl"
    assert main(["audit", str(path), "--suspects", str(tmp_path / "suspects.csv"), "--write-clean", str(clean)]) == 0
    assert "less 3 row(s)" in capsys.readouterr().out
    assert path.read_bytes() == before
    kept = pd.read_json(clean, lines=True)
    original = pd.read_csv(path)
    dropped = {int(r) for r in table.loc[marked, "row"]}
    assert len(kept) == 297 and kept["text"].tolist() == [t for i, t in enumerate(original["text"], 1)
                                                          if i not in dropped]
    assert main(["audit", str(path), "--suspects", str(tmp_path / "suspects.csv"), "--write-clean", str(path)]) == 1
    assert "original is kept" in capsys.readouterr().err


def test_multi_label_errors_are_ranked(tmp_path):
    texts, labels = make_sentiment(200, seed=5)
    multi = [[y] + (["story"] if "story" in t.split() else []) for t, y in zip(texts, labels)]
    flipped = [10, 50, 90, 130, 170]
    for i in flipped:
        multi[i] = ["neg" if multi[i][0] == "pos" else "pos"] + multi[i][1:]
    frame = pd.DataFrame({"text": texts, "label": ["|".join(m) for m in multi]})
    frame.to_csv(tmp_path / "multi.csv", index=False)
    report = audit(str(tmp_path / "multi.csv"), config=AuditConfig(multi_label=True))
    assert report.labels is not None and set(report.labels.ranking()[:5]) == set(flipped)
    assert 1 <= len(report.label_issues()) and {r["row"] for r in report.label_issues()} <= {i + 1 for i in flipped}
    assert all(isinstance(r["label"], list) and isinstance(r["suggested"], list) for r in report.label_issues())


def test_bad_input_is_one_clear_line(noisy, tmp_path, capsys):
    path, _, _ = noisy
    other = write_csv(tmp_path / "other.csv", ["x"]).rename(tmp_path / "other.csv")
    pd.DataFrame({"body": ["a text"]}).to_csv(other, index=False)
    assert main(["audit", str(path), "--test", str(other), "-q"]) == 1
    err = capsys.readouterr().err
    assert f"{other}: column 'text' not found (columns: body)" in err
    assert main(["audit", str(tmp_path / "missing.csv")]) == 1
    assert "file not found" in capsys.readouterr().err
    assert main(["audit", str(path), "--write-clean", str(tmp_path / "c.csv")]) == 1
    assert "--suspects" in capsys.readouterr().err
    with pytest.raises(Exception, match="unknown audit setting"):
        AuditConfig.from_dict({"fold": 3})


def test_encoder_view_is_averaged_in(noisy):
    path, flipped, _ = noisy
    report = audit(str(path), config=AuditConfig(model="minilm"))
    assert report.labels is not None and report.labels.probabilities.shape == (300, 2)
    assert len({r["row"] for r in report.label_issues()[: len(flipped)]} & flipped) >= len(flipped) - 1


def test_page_filters_findings_in_chromium(tmp_path):
    from browser import Browser

    train = write_csv(tmp_path / "train.csv", SENTENCES + [SENTENCES[1].lower(), "hi"], ["a", "b"] * 5)
    out = tmp_path / "audit.html"
    assert main(["audit", str(train), "-o", str(out), "-q", "--no-labels"]) == 0
    browser = Browser(free_port())
    try:
        browser.goto(out.as_uri())
        browser.wait_for("document.querySelectorAll('#rows tbody tr').length > 0")
        total = browser.eval("document.querySelectorAll('#rows tbody tr').length")
        assert total == 2  # the duplicate and the very short text
        browser.eval("document.querySelector(\".card[data-issue='duplicate']\").click()")
        shown = browser.eval("[...document.querySelectorAll('#rows tbody tr')].map(r => r.dataset.issue)")
        assert shown == ["duplicate"]
        assert "1 of 2 findings" in browser.eval("document.getElementById('count').textContent")
        browser.eval("const s = document.getElementById('issue'); s.value = ''; s.dispatchEvent(new Event('change'));"
                     "const q = document.getElementById('search'); q.value = 'hi';"
                     "q.dispatchEvent(new Event('input'));")
        assert browser.eval("document.querySelectorAll('#rows tbody tr').length") == 1
        browser.screenshot(Path(os.environ.get("LMWORKS_SCREENSHOTS", tmp_path)) / "audit_page.png")
    finally:
        browser.close()
