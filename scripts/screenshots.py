"""Regenerate the pictures in ``docs/images/`` from the real pages and charts.

Each picture is made by running lmworks itself on shipped data: the monitor's dashboard after
its demo replay (and its explanation panels), an explanation report, the assistant's chat page
answering a question, the labelling page, the audit page, a search's report, the advisor's backtest
report, and the multimodal and recommender results charts. Pages are captured with the headless Chromium that
the browser tests drive (``tests/browser.py``). Never paste a picture by hand: rerun this.

    .venv/bin/python scripts/screenshots.py [--only monitor,explain,assistant,advisor,multimodal]

About four minutes on 2 cores (the advisor's short backtest is most of it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "docs" / "images"
WORK = ROOT / "runs" / "screenshots"
LMWORKS = [sys.executable, "-m", "lmworks"]
sys.path.insert(0, str(ROOT / "tests"))


def free_port() -> int:
    """A port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def lmworks(*args: str) -> None:
    """Run the CLI; stop on failure."""
    print("$ lmworks " + " ".join(args), flush=True)
    subprocess.run([*LMWORKS, *args], check=True, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"})


@contextlib.contextmanager
def service(*args: str) -> Iterator[str]:
    """A service started with the CLI on a free port; yields its base URL."""
    port = free_port()
    proc = subprocess.Popen([*LMWORKS, *args, "--port", str(port)], cwd=ROOT,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"service {' '.join(args)} did not start") from None
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


@contextlib.contextmanager
def browser() -> Iterator:
    """One headless Chromium page."""
    from browser import Browser

    b = Browser(free_port())
    try:
        yield b
    finally:
        b.close()


def monitor() -> None:
    """The dashboard after the demo replay (quick TF-IDF models, an injected surge)."""
    lmworks("monitor", "demo", "--workdir", str(WORK / "monitor"), "--no-serve")
    with service("monitor", "serve", str(WORK / "monitor" / "monitor.sqlite")) as url, browser() as page:
        page.goto(url + "/")
        page.wait_for("document.querySelectorAll('#alerts > *').length > 0")
        time.sleep(1)
        page.screenshot(IMAGES / "monitor-dashboard.png")
        # Why did the alert fire: its window's negative words, and an item's own highlighted words.
        page.eval("document.querySelector('[data-why-alert]').click(); true")
        page.wait_for("document.querySelectorAll('#why .why-item .w').length > 0")
        page.eval("document.querySelector('#negative .item .text').click(); true")
        page.wait_for("document.querySelectorAll('#negative .item.explained .w').length > 0")
        time.sleep(0.5)
        page.screenshot(IMAGES / "monitor-why.png")


def explain() -> None:
    """The explanation report of a model trained on the quick-start tickets."""
    model = WORK / "tickets"
    lmworks("train", "examples/quickstart/tickets.csv", "--model", "tfidf", "--output", str(model), "--quiet")
    report = WORK / "why.html"
    lmworks("explain", str(model), "examples/quickstart/tickets_test.csv", "--limit", "8", "--output", str(report))
    with browser() as page:
        page.goto(report.as_uri())
        page.wait_for("document.querySelectorAll('.item .w').length > 0")
        time.sleep(0.3)
        page.screenshot(IMAGES / "explain-report.png")


def assistant() -> None:
    """The chat page answering one question and handing off another."""
    kb = WORK / "bank"
    lmworks("assistant", "build", "examples/assistant/banking_faq.csv", "--output", str(kb),
            "--eval", "examples/assistant/banking_queries_dev.csv", "--json", str(WORK / "bank.json"))
    with service("assistant", "serve", str(kb), "--log-db", str(WORK / "bank-log.sqlite")) as url, \
            browser() as page:
        page.goto(url + "/")
        for i, question in enumerate(["I can't remember my password", "Can you recommend a good pizza place?"]):
            page.eval(f"document.getElementById('q').value = {json.dumps(question)}; "
                      "document.getElementById('f').requestSubmit(); true")
            page.wait_for(f"document.querySelectorAll('#log > div').length >= {2 * (i + 1)}")
        time.sleep(0.5)
        page.screenshot(IMAGES / "assistant-chat.png")


def label() -> None:
    """The labelling page after two annotators labelled 60 Rotten Tomatoes snippets (true labels as oracle)."""
    import csv

    from lmworks.datasets import load_rotten_tomatoes

    frame = load_rotten_tomatoes().sample(1500, random_state=0)
    pool = WORK / "label-pool.csv"
    pool.parent.mkdir(parents=True, exist_ok=True)
    frame[["text"]].to_csv(pool, index=False, quoting=csv.QUOTE_MINIMAL)
    truth = dict(zip(frame["text"], frame["label"]))
    shutil.rmtree(WORK / "labels", ignore_errors=True)
    with service("label", "start", str(pool), "--labels", "fresh,rotten", "--project", str(WORK / "labels"),
                 "--overlap", "0.2", "--audit-every", "5") as url, browser() as page:
        for n in range(60):
            who = "ana" if n % 3 else "ben"
            card = _json(f"{url}/api/next", headers={"X-Annotator": who})
            _json(f"{url}/api/labels", {"id": card["id"], "label": truth[card["text"]], "annotator": who})
        time.sleep(1.5)  # the last background retrain
        page.goto(url + "/")
        page.eval("localStorage.setItem('lmworks-annotator', 'ana'); true")
        page.goto(url + "/")
        page.wait_for("document.querySelectorAll('#chart .point').length > 0")
        time.sleep(0.5)
        page.screenshot(IMAGES / "label-page.png")


def audit() -> None:
    """The audit page of Rotten Tomatoes' train split checked against its test split."""
    data = WORK / "rt"
    lmworks("datasets", "export", "rotten_tomatoes", "--output", str(data))
    page_file = WORK / "audit" / "audit.html"
    lmworks("audit", str(data / "train.csv"), "--test", str(data / "test.csv"), "--output", str(page_file), "-q")
    with browser() as page:
        page.goto(page_file.as_uri())
        page.wait_for("document.querySelectorAll('#rows tbody tr').length > 0")
        time.sleep(0.3)
        page.screenshot(IMAGES / "audit-page.png")


def tune() -> None:
    """The report of a short two-objective search on a 2,000-row sample (a picture, not a result)."""
    data = WORK / "rt-2000"
    lmworks("datasets", "export", "rotten_tomatoes", "--limit", "2000", "--output", str(data))
    lmworks("tune", str(data / "train.csv"), "--eval", str(data / "dev.csv"), "--budget", "4m", "--models",
            "tfidf,minilm", "--objective", "accuracy,latency", "--output", str(WORK / "tune"), "--quiet")
    report = WORK / "tune.html"
    lmworks("tune", "report", str(WORK / "tune"), "--output", str(report))
    with browser() as page:
        page.goto(report.as_uri())
        page.wait_for("document.querySelectorAll('#front svg').length > 0")
        time.sleep(0.3)
        page.screenshot(IMAGES / "tune-report.png")


def _json(url: str, body: dict | None = None, headers: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def advisor() -> None:
    """A short walk-forward backtest's report (two test years, one seed: a picture, not a result)."""
    lmworks("datasets", "export", "sp500", "--output", str(WORK / "sp500"))
    lmworks("advisor", "backtest", str(WORK / "sp500" / "prices.csv"), "--test-years", "2", "--seeds", "0",
            "--agents", "dqn", "--timesteps", "3000", "--quiet", "--json", str(WORK / "advisor.json"),
            "--report", str(IMAGES / "advisor-report.png"))


def multimodal() -> None:
    """Accuracy by modality, from ``docs/results/multimodal.json`` (the benchmark's own numbers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = json.loads((ROOT / "docs" / "results" / "multimodal.json").read_text())["rows"]
    tasks = list(dict.fromkeys(r[0] for r in rows))
    modalities = list(dict.fromkeys(r[1] for r in rows))
    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=120)
    width = 0.8 / len(modalities)
    for j, modality in enumerate(modalities):
        values = [float(next(r[2] for r in rows if r[0] == t and r[1] == modality).split()[0]) for t in tasks]
        ax.bar([i + j * width for i in range(len(tasks))], values, width, label=modality)
    ax.set_xticks([i + width * (len(modalities) - 1) / 2 for i in range(len(tasks))], tasks)
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(50, 100)
    ax.set_title("Emoji: text, image and both in one model")
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(IMAGES / "multimodal-accuracy.png")
    plt.close(fig)


def recommend() -> None:
    """NDCG@10 of the recommender against its baselines, from ``docs/results/recommend.json``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    result = json.loads((ROOT / "docs" / "results" / "recommend.json").read_text())
    column = result["columns"].index("NDCG@10")
    splits = list(dict.fromkeys(r[0] for r in result["rows"]))
    fig, axes = plt.subplots(1, len(splits), figsize=(8, 3), dpi=120)
    for ax, split in zip(axes, splits):
        rows = [r for r in result["rows"] if r[0] == split]
        ax.barh([r[1].split(" (")[0] for r in rows], [r[column] for r in rows],
                color=["#999999"] * (len(rows) - 1) + ["#1f77b4"])
        ax.set_title(f"MovieLens-100K, {split}")
        ax.set_xlabel("NDCG@10 (test users)")
    fig.tight_layout()
    fig.savefig(IMAGES / "recommend-ndcg.png")
    plt.close(fig)


MAKERS = {"monitor": monitor, "explain": explain, "assistant": assistant, "label": label, "audit": audit,
          "tune": tune, "advisor": advisor,
          "multimodal": multimodal, "recommend": recommend}


def main() -> int:
    """Make the pictures asked for."""
    parser = argparse.ArgumentParser(description="Regenerate docs/images/ from the real pages and charts.")
    parser.add_argument("--only", default=",".join(MAKERS), help="comma-separated: " + ", ".join(MAKERS))
    names = [n.strip() for n in parser.parse_args().only.split(",") if n.strip()]
    IMAGES.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    for name in names:
        MAKERS[name]()
        print(f"{name}: done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
