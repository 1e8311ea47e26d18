"""Slow tests: the real shipped encoder, and prediction over a million rows."""

import json
import subprocess
import sys

import pytest

from lmworks import TextClassifier
from lmworks.datasets import load_rotten_tomatoes

pytestmark = pytest.mark.slow


def test_real_minilm_finetune_lowers_loss_and_beats_chance():
    frame = load_rotten_tomatoes().sample(900, random_state=0)
    train, test = frame.iloc[:700], frame.iloc[700:]
    clf = TextClassifier("minilm", epochs=1, batch_size=16, eval_fraction=0.1, log_every=5)
    clf.fit(train["text"].tolist(), train["label"].tolist(), progress=False)
    losses = [r["loss"] for r in clf.train_info_["history"] if r["event"] == "train"]
    assert losses[-1] < losses[0] - 0.05
    accuracy = clf.evaluate(test["text"].tolist(), test["label"].tolist())["accuracy"]
    assert accuracy > 0.65  # majority class is ~0.58


def _peak_rss_mb(args) -> float:
    """Peak resident memory of one CLI run in a child process."""
    code = (
        "import resource, sys\n"
        "from lmworks.cli import main\n"
        f"rc = main({args!r})\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
        "sys.exit(rc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def test_predict_million_rows_in_bounded_memory(tmp_path):
    from conftest import make_sentiment

    texts, labels = make_sentiment(400, seed=3)
    model = TextClassifier("tfidf").fit(texts, labels).save(tmp_path / "m")
    small, big = tmp_path / "small.csv", tmp_path / "big.csv"
    for path, n in ((small, 100_000), (big, 1_000_000)):
        with open(path, "w") as fh:
            fh.write("id,text\n")
            for i in range(n):
                fh.write(f"{i},{texts[i % 400]} number {i}\n")
    rss_small = _peak_rss_mb(["predict", str(model), str(small), "--output", str(tmp_path / "s.csv"), "--quiet"])
    rss_big = _peak_rss_mb(["predict", str(model), str(big), "--output", str(tmp_path / "b.jsonl"), "--quiet"])
    # Ten times the rows, (nearly) the same memory: the file is streamed, not loaded.
    assert rss_big < rss_small + 150, (rss_small, rss_big)
    with open(tmp_path / "b.jsonl") as fh:
        first = json.loads(fh.readline())
        n = 1 + sum(1 for _ in fh)
    assert n == 1_000_000
    assert set(first) == {"id", "text", "label", "prob_neg", "prob_pos"}
