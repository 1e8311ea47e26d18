"""Shipped example datasets, and the Chinese path through the same commands."""

import pandas as pd

from lmworks.cli import main
from lmworks.datasets import load_chinese_reviews, load_rotten_tomatoes


def test_rotten_tomatoes_loader_drops_plot_rows_and_duplicates():
    frame = load_rotten_tomatoes()
    assert set(frame["label"]) == {"fresh", "rotten"}
    assert frame["text"].is_unique and len(frame) > 12000


def test_chinese_reviews_drop_lines_in_both_files():
    frame = load_chinese_reviews()
    assert set(frame["label"]) == {"pos", "neg"}
    assert frame["text"].is_unique
    assert frame.groupby("text")["label"].nunique().max() == 1


def test_export_is_stratified_and_reproducible(tmp_path):
    assert main(["datasets", "export", "rotten_tomatoes", "--output", str(tmp_path / "a"), "--limit", "500"]) == 0
    assert main(["datasets", "export", "rotten_tomatoes", "--output", str(tmp_path / "b"), "--limit", "500"]) == 0
    a = {p: pd.read_csv(tmp_path / "a" / f"{p}.csv") for p in ("train", "dev", "test")}
    b = pd.read_csv(tmp_path / "b" / "test.csv")
    assert a["test"].equals(b)
    assert [len(a[p]) for p in ("train", "dev", "test")] == [400, 50, 50]
    assert not set(a["train"]["text"]) & set(a["test"]["text"])
    share = (a["train"]["label"] == "fresh").mean()
    assert abs(share - (a["test"]["label"] == "fresh").mean()) < 0.05


def test_chinese_end_to_end_tfidf_and_encoder(tmp_path, tiny_encoder, capsys):
    data = tmp_path / "zh"
    assert main(["datasets", "export", "chinese_reviews", "--output", str(data), "--limit", "1500"]) == 0
    assert main(["train", str(data / "train.csv"), "--eval", str(data / "dev.csv"), "--model", "tfidf",
                 "--output", str(tmp_path / "t"), "--json", str(tmp_path / "t.json")]) == 0
    assert main(["evaluate", str(tmp_path / "t"), str(data / "test.csv"), "--json", str(tmp_path / "e.json")]) == 0
    import json

    assert json.loads((tmp_path / "e.json").read_text())["accuracy"] > 0.7  # held-out Chinese reviews
    # The encoder path tokenises CJK text (one token per character) and trains end to end.
    assert main(["train", str(data / "dev.csv"), "--model", str(tiny_encoder), "--output", str(tmp_path / "n"),
                 "--epochs", "1", "--max-length", "64", "--threads", "1", "--quiet"]) == 0
    assert main(["predict", str(tmp_path / "n"), str(data / "test.csv"), "--output", str(tmp_path / "p.jsonl"),
                 "--quiet"]) == 0
    rows = (tmp_path / "p.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 150 and '"prob_pos"' in rows[0]
