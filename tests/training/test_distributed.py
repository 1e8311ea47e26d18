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


def _torchrun() -> str:
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    if torchrun is None:
        pytest.skip("torchrun not installed")
    return torchrun


def _single_process_run(tmp_path: Path, encoder: Path) -> tuple[list[str], list[str], list[str]]:
    """Train once in one process into ``tmp_path/one``; return the shared CLI arguments and the dev set."""
    train = write(tmp_path / "train.jsonl", *make_sentiment(192, seed=1))
    dev_texts, dev_labels = make_sentiment(48, seed=2)
    dev = write(tmp_path / "dev.jsonl", dev_texts, dev_labels)
    common = ["train", str(train), "--eval", str(dev), "--model", str(encoder), "--few-shot", "off", "--epochs", "2",
              "--batch-size", "16", "--lr", "3e-3", "--head-lr-multiplier", "1", "--max-length", "32",
              "--dropout", "0", "--blend", "none", "--threads", "1", "--quiet", "--patience", "0"]
    single = subprocess.run([sys.executable, "-m", "lmworks", *common, "--output", str(tmp_path / "one")],
                            capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr
    return common, dev_texts, dev_labels


@pytest.mark.processes
def test_two_processes_match_one(tmp_path, deterministic_encoder):
    torchrun = _torchrun()
    common, dev_texts, dev_labels = _single_process_run(tmp_path, deterministic_encoder)
    multi = subprocess.run([torchrun, "--standalone", "--nproc-per-node", "2", "-m", "lmworks", *common,
                            "--output", str(tmp_path / "two")], capture_output=True, text=True, timeout=600)
    assert multi.returncode == 0, multi.stderr[-3000:]
    assert "trained on 2 processes (global batch 16)" in multi.stderr
    one = TextClassifier.load(tmp_path / "one").predict_proba(dev_texts)
    two = TextClassifier.load(tmp_path / "two").predict_proba(dev_texts)
    assert np.abs(one - two).max() < 1e-3, np.abs(one - two).max()
    # and training did something: the model is far from chance on held-out texts
    assert TextClassifier.load(tmp_path / "two").evaluate(dev_texts, dev_labels)["accuracy"] > 0.8


def _node(torchrun: str, port: int, args: list[str], cwd: Path, *, static_rank: int | None = None):
    """One "machine": its own torchrun, working folder and paths, joining the others over TCP on 127.0.0.1."""
    import os

    if static_rank is None:  # the c10d rendezvous multi-machine jobs use; ranks are handed out on arrival
        rdzv = ["--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "lmworks-test"]
    else:  # the classic form: fixed node ranks and a master address
        rdzv = ["--node-rank", str(static_rank), "--master-addr", "127.0.0.1", "--master-port", str(port)]
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([torchrun, "--nnodes", "2", "--nproc-per-node", "1", *rdzv, "-m", "lmworks", *args],
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def _run_nodes(procs) -> list[str]:
    try:
        outputs = [p.communicate(timeout=300)[0] for p in procs]
    finally:  # a hung node must not outlive the test
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]
    return outputs


@pytest.mark.processes
def test_two_nodes_match_one_process_and_only_rank_0_writes(tmp_path, deterministic_encoder):
    from conftest import free_port

    torchrun = _torchrun()
    common, dev_texts, _ = _single_process_run(tmp_path, deterministic_encoder)
    # Each node names the model directory on its own disk (a relative path in its own folder).
    port = free_port()
    nodes = [tmp_path / "node-a", tmp_path / "node-b"]
    _run_nodes([_node(torchrun, port, [*common, "--output", "model"], cwd) for cwd in nodes])
    written = [cwd / "model" for cwd in nodes if (cwd / "model").exists()]
    assert len(written) == 1  # rank 0's node alone wrote the model (and no other node a partial one)
    one = TextClassifier.load(tmp_path / "one").predict_proba(dev_texts)
    two = TextClassifier.load(written[0]).predict_proba(dev_texts)
    assert np.abs(one - two).max() < 1e-3, np.abs(one - two).max()


@pytest.mark.processes
def test_two_nodes_resume_from_rank_0s_checkpoint_alone(tmp_path, deterministic_encoder):
    """Only rank 0's machine holds the checkpoint; resuming sends it to the other node."""
    from conftest import free_port

    torchrun = _torchrun()
    train = write(tmp_path / "train.jsonl", *make_sentiment(128, seed=3))
    common = ["train", str(train), "--model", str(deterministic_encoder), "--few-shot", "off", "--batch-size", "16",
              "--lr", "3e-3", "--max-length", "32", "--blend", "none", "--threads", "1", "--quiet", "--patience", "0",
              "--eval-fraction", "0.25", "--output", "model", "--checkpoint-dir", "ckpt", "--keep-checkpoints"]
    nodes = [tmp_path / "rank0", tmp_path / "rank1"]
    port = free_port()  # one master address for both machines
    _run_nodes([_node(torchrun, port, [*common, "--epochs", "1"], cwd, static_rank=r)
                for r, cwd in enumerate(nodes)])
    assert (nodes[0] / "ckpt" / "trainer_state.pt").is_file() and not (nodes[1] / "ckpt").exists()
    shutil.rmtree(nodes[0] / "model")
    port = free_port()
    logs = _run_nodes([_node(torchrun, port, [*common, "--epochs", "2", "--resume"], cwd, static_rank=r)
                       for r, cwd in enumerate(nodes)])
    assert "resuming at step 6/12" in logs[0]
    meta = json.loads((nodes[0] / "model" / "lmworks.json").read_text())
    assert meta["train_info"]["steps"] == 12 and not (nodes[1] / "model").exists()
