"""``lmworks train`` under ``torchrun``: 2 processes (DDP, gloo) match 1 process on the same global batch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import make_sentiment
from lmworks import TextClassifier


@pytest.fixture(scope="module")
def deterministic_encoder(tmp_path_factory, minilm_dir) -> Path:
    """A tiny BERT without dropout, so the two runs differ only in how the batch is split."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("tiny-bert-nodrop")
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    BertModel(config).save_pretrained(directory)
    AutoTokenizer.from_pretrained(minilm_dir, local_files_only=True).save_pretrained(directory)
    return directory


def write(path: Path, texts, labels) -> Path:
    path.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in zip(texts, labels)))
    return path


@pytest.mark.processes
def test_two_processes_match_one(tmp_path, deterministic_encoder):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    if torchrun is None:
        pytest.skip("torchrun not installed")
    train = write(tmp_path / "train.jsonl", *make_sentiment(192, seed=1))
    dev_texts, dev_labels = make_sentiment(48, seed=2)
    dev = write(tmp_path / "dev.jsonl", dev_texts, dev_labels)
    common = ["train", str(train), "--eval", str(dev), "--model", str(deterministic_encoder), "--epochs", "2",
              "--batch-size", "16", "--lr", "3e-3", "--head-lr-multiplier", "1", "--max-length", "32",
              "--dropout", "0", "--blend", "none", "--threads", "1", "--quiet", "--patience", "0"]
    single = subprocess.run([sys.executable, "-m", "lmworks", *common, "--output", str(tmp_path / "one")],
                            capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr
    multi = subprocess.run([torchrun, "--standalone", "--nproc-per-node", "2", "-m", "lmworks", *common,
                            "--output", str(tmp_path / "two")], capture_output=True, text=True, timeout=600)
    assert multi.returncode == 0, multi.stderr[-3000:]
    assert "trained on 2 processes (global batch 16)" in multi.stderr
    one = TextClassifier.load(tmp_path / "one").predict_proba(dev_texts)
    two = TextClassifier.load(tmp_path / "two").predict_proba(dev_texts)
    assert np.abs(one - two).max() < 1e-3, np.abs(one - two).max()
    # and training did something: the model is far from chance on held-out texts
    assert TextClassifier.load(tmp_path / "two").evaluate(dev_texts, dev_labels)["accuracy"] > 0.8
