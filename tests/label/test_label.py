"""Active-learning labelling: the maths alone, the project on a real SQLite file, the server, the page.

The pool is generated sentiment text where one cue word decides the label, so a
simulated annotator (the true labels as oracle) and a model that learns quickly make
every check exact.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from conftest import make_sentiment
from lmworks.errors import ConfigError, DataError
from lmworks.label import LabelConfig, LabelProject, NotFound, Strategy
from lmworks.label.loop import pick, uncertainty, wilson
from lmworks.label.store import Event, LabelState
from lmworks.label.team import agreement, cohen_kappa, conflicts, resolve


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    texts, labels = make_sentiment(300, seed=7)
    path = tmp_path_factory.mktemp("label-pool") / "pool.csv"
    pd.DataFrame({"text": texts}).to_csv(path, index=False)
    return path, dict(zip(texts, labels))


def start(tmp_path, pool, **options) -> LabelProject:
    config = LabelConfig(labels=["pos", "neg"], **{"retrain_every": 5, "audit_every": 5, "clusters": 8, **options})
    return LabelProject.start(tmp_path / "proj", pool[0], config, background=False)


# ----- pure parts --------------------------------------------------------------------------------
def test_strategies_pick_what_they_name():
    probs = np.array([[0.9, 0.1], [0.55, 0.45], [0.7, 0.3], [0.5, 0.5]])
    available = np.array([True, True, True, False])
    rng = np.random.default_rng(0)
    assert pick(Strategy.MARGIN, probs, available, rng) == 1  # 3 is closer still, but taken
    three = np.array([[0.4, 0.4, 0.2], [0.34, 0.33, 0.33], [0.6, 0.2, 0.2]])
    assert pick(Strategy.ENTROPY, three, np.ones(3, bool), rng) == 1
    assert pick(Strategy.MARGIN, three, np.ones(3, bool), rng) == 0  # margin 0.0 beats 0.01
    np.testing.assert_allclose(uncertainty(Strategy.MARGIN, probs), [0.2, 0.9, 0.6, 1.0])
    assert pick(Strategy.MARGIN, None, available, rng, cold_order=[3, 2, 0]) == 2  # no model: cold order
    assert pick(Strategy.MARGIN, probs, np.zeros(4, bool), rng) is None
    features = np.eye(4)
    features[1] = features[0]  # item 1 is a copy of the labelled item 0; item 2 is new
    tied = np.array([[0.5, 0.5]] * 4)
    assert pick(Strategy.DIVERSE, tied, np.array([False, True, True, False]), rng, features=features,
                labelled=[0]) == 2
    counts = np.bincount([pick(Strategy.RANDOM, probs, available, np.random.default_rng(s)) for s in range(300)],
                         minlength=4)
    assert counts[3] == 0 and counts[:3].min() > 70


def test_team_maths_and_wilson():
    from sklearn.metrics import cohen_kappa_score

    a = ["x", "x", "y", "y", "x", "y", "x", "x"]
    b = ["x", "y", "y", "y", "x", "x", "x", "x"]
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))
    assert cohen_kappa(["x", "x"], ["x", "x"]) is None
    assert resolve({"ann": "x", "bob": "x", "cy": "y"}) == "x"
    assert resolve({"ann": "x", "bob": "y"}) is None
    labels = {1: {"ann": "x", "bob": "x"}, 2: {"ann": "x", "bob": "y"}, 3: {"ann": "y"}}
    assert conflicts(labels) == [2]
    (pair,) = agreement(labels)
    assert pair["annotators"] == ["ann", "bob"] and pair["items"] == 2 and pair["agreement"] == 0.5
    low, high = wilson(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-3) and high == pytest.approx(0.9433, abs=1e-3)
    assert wilson(0, 0) == (0.0, 1.0)


def test_state_replays_labels_undos_and_relabels():
    state = LabelState()
    for event in [Event(1, 10, "ann", "label", "x"), Event(2, 11, "ann", "skip"), Event(3, 10, "bob", "label", "y"),
                  Event(4, 10, "ann", "label", "y"), Event(5, 10, "ann", "undo", undoes=4),
                  Event(6, 11, "ann", "undo", undoes=2)]:
        state.apply(event)
    assert state.labels(10) == {"ann": "x", "bob": "y"}
    assert state.current(11) == {}
    assert state.last("ann").seq == 1


# ----- the project -------------------------------------------------------------------------------
def label_all(project: LabelProject, truth: dict, n: int, annotator: str = "ann") -> list[dict]:
    cards = []
    for _ in range(n):
        card = project.next(annotator)
        cards.append(card)
        project.label(card["id"], annotator, truth[card["text"]])
    return cards


def test_loop_learns_audits_honestly_and_survives_a_restart(tmp_path, pool):
    project = start(tmp_path, pool)
    truth = pool[1]
    cards = label_all(project, truth, 40)
    assert len({c["id"] for c in cards}) == 40  # never the same text twice
    assert cards[0]["suggestion"] is None  # no model before the first labels
    audit = [c for c in cards if c["audit"]]
    assert len(audit) == 8  # every 5th text served
    status = project.status()
    assert status["labelled"] == 40 and status["model"]["trained_on"] == 32  # audit texts never trained on
    estimate = status["estimate"]
    assert estimate["audited"] == 8 and estimate["low"] <= estimate["accuracy"] <= estimate["high"]
    predicted = [project.config.labels[int(i)] for i in project.probs.argmax(axis=1)]
    assert np.mean([p == truth[t] for p, t in zip(predicted, project.texts)]) > 0.9  # the cue words are learnt
    later = project.next("ann")
    assert later["suggestion"] in ("pos", "neg") and 0.5 <= later["confidence"] <= 1.0
    assert project.next("ann")["id"] == later["id"]  # asking again is idempotent until answered
    undone = project.undo("ann")
    assert undone["item"]["id"] == cards[-1]["id"] and project.next("ann")["id"] == cards[-1]["id"]
    project.close()
    reopened = LabelProject.start(tmp_path / "proj", pool[0], LabelConfig(labels=["pos", "neg"]), background=False)
    assert reopened.status()["labelled"] == 39 and reopened.status()["audit"]["labelled"] == 8 - cards[-1]["audit"]
    *_, last_label, undo = reopened.store.events()
    assert (undo.kind, undo.undoes, last_label.item) == ("undo", last_label.seq, cards[-1]["id"])  # nothing deleted
    reopened.close()


def test_each_strategy_serves_what_it_names(tmp_path, pool):
    """After the first model, margin serves the text with the smallest margin, entropy the highest entropy."""
    truth = pool[1]
    project = start(tmp_path, pool, audit_every=0, retrain_every=4)
    label_all(project, truth, 12)
    for strategy in ("margin", "entropy"):
        project.set_strategy(strategy)
        project.retrain()
        free = ~project.done
        score = uncertainty(Strategy(strategy), project.probs)
        expected = np.flatnonzero(free)[int(np.argmax(score[free]))]
        card = project.next("ann")
        assert card["id"] == project.ids[expected]
        project.label(card["id"], "ann", truth[card["text"]])
    project.set_strategy("random")
    assert LabelProject(tmp_path / "proj", learn=False).config.strategy is Strategy.RANDOM  # kept in the project
    project.close()


def test_two_annotators_overlap_agree_and_conflict(tmp_path, pool):
    project = start(tmp_path, pool, overlap=0.5, audit_every=0)
    truth = pool[1]
    for _ in range(30):
        for who in ("ann", "bob"):
            card = project.next(who)
            label = truth[card["text"]]
            if who == "bob" and card["id"] % 3 == 0:  # bob disagrees on some texts
                label = "neg" if label == "pos" else "pos"
            project.label(card["id"], who, label)
    labels = project.item_labels()
    shared = [i for i, by in labels.items() if len(by) == 2]
    assert shared, "overlap must show some texts to both annotators"
    assert all(len(by) <= 2 for by in labels.values())
    (pair,) = project.status()["agreement"]
    assert pair["items"] == len(shared)
    disagree = [i for i in shared if labels[i]["ann"] != labels[i]["bob"]]
    assert project.status()["conflicts"] == len(disagree)
    assert [c["id"] for c in project.conflict_list()] == sorted(disagree)
    out = tmp_path / "labelled.jsonl"
    counts = project.export(out)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert counts == {"rows": len(labels) - len(disagree), "conflicts": len(disagree)}
    assert len(rows) == counts["rows"] and all(r["label"] == truth[r["text"]] or r["annotators"] == 1 for r in rows)
    project.close()


def test_bad_input_is_refused_clearly(tmp_path, pool):
    project = start(tmp_path, pool)
    card = project.next("ann")
    with pytest.raises(ConfigError, match="'meh' is not one of pos, neg"):
        project.label(card["id"], "ann", "meh")
    with pytest.raises(NotFound, match="no item 99999"):
        project.label(99999, "ann", "pos")
    with pytest.raises(NotFound, match="nothing to undo"):
        project.undo("ann")
    with pytest.raises(ConfigError, match="annotator"):
        project.next("")
    project.close()
    with pytest.raises(ConfigError, match="labels are pos,neg, not a,b"):
        LabelProject.start(tmp_path / "proj", pool[0], LabelConfig(labels=["a", "b"]))
    other = tmp_path / "other.csv"
    pd.DataFrame({"text": ["a text", "another"]}).to_csv(other, index=False)
    with pytest.raises(ConfigError, match="started on another pool"):
        LabelProject.start(tmp_path / "proj", other, LabelConfig(labels=["pos", "neg"]))
    empty = tmp_path / "empty.csv"
    empty.write_text("text\n")
    with pytest.raises(DataError, match="no rows"):
        LabelProject.start(tmp_path / "p2", empty, LabelConfig(labels=["pos", "neg"]))
    wrong = tmp_path / "wrong.csv"
    pd.DataFrame({"body": ["x"]}).to_csv(wrong, index=False)
    with pytest.raises(DataError, match="column 'text' not found"):
        LabelProject.start(tmp_path / "p3", wrong, LabelConfig(labels=["pos", "neg"]))
    seeds = tmp_path / "seeds.csv"
    pd.DataFrame({"text": ["great film", "dull film"], "label": ["pos", "meh"]}).to_csv(seeds, index=False)
    with pytest.raises(DataError, match="seeds.csv row 2: label 'meh'"):
        LabelProject.start(tmp_path / "p4", pool[0], LabelConfig(labels=["pos", "neg"]), seed_labels=seeds)
    assert not (tmp_path / "p4" / "labels.db").exists()
    with pytest.raises(ConfigError, match="at least two"):
        LabelConfig(labels=["only"])


def test_seed_labels_train_the_first_model(tmp_path, pool):
    seeds = tmp_path / "seeds.csv"
    pd.DataFrame({"text": ["a great film", "an awful film", "the plot was superb"],
                  "label": ["pos", "neg", "pos"]}).to_csv(seeds, index=False)
    config = LabelConfig(labels=["pos", "neg"], clusters=8)
    project = LabelProject.start(tmp_path / "proj", pool[0], config, seed_labels=seeds, background=False)
    assert project.status()["labelled"] == 3 and project.status()["annotators"] == {"seed": 3}
    assert project.next("ann")["suggestion"] in ("pos", "neg")  # a model from the seeds alone
    assert len(project.ids) == 303  # seed texts not in the pool were added
    project.close()


# ----- the server --------------------------------------------------------------------------------
def serve(pool_path: Path, project: Path, port: int, *extra: str) -> subprocess.Popen:
    from conftest import start_process

    return start_process(["label", "start", str(pool_path), "--labels", "pos,neg", "--project", str(project),
                          "--port", str(port), "--retrain-every", "5", "--audit-every", "5", *extra],
                         f"http://127.0.0.1:{port}/healthz")


def test_api_one_server_per_project_and_kill_9_loses_no_acknowledged_label(tmp_path, pool):
    from conftest import free_port

    port = free_port()
    proc = serve(pool[0], tmp_path / "proj", port)
    base = f"http://127.0.0.1:{port}"
    acknowledged = []
    try:
        second = subprocess.run([sys.executable, "-m", "lmworks", "label", "start", str(pool[0]), "--labels",
                                 "pos,neg", "--project", str(tmp_path / "proj"), "--port", str(free_port())],
                                capture_output=True, text=True, timeout=120)
        assert second.returncode != 0 and "another label server is running" in second.stderr
        for n in range(25):
            who = "ann" if n % 2 else "bob"
            card = httpx.get(f"{base}/api/next", headers={"X-Annotator": who}).json()
            assert set(card) >= {"id", "text", "suggestion", "confidence"}
            answer = httpx.post(f"{base}/api/labels", json={"id": card["id"], "label": pool[1][card["text"]],
                                                             "annotator": who})
            assert answer.status_code == 200
            acknowledged.append((card["id"], who, pool[1][card["text"]]))
        bad = httpx.post(f"{base}/api/labels", json={"id": acknowledged[0][0], "label": "meh"})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "unknown_label"
        assert httpx.post(f"{base}/api/labels", json={"id": 1}).status_code == 422
        assert httpx.post(f"{base}/api/undo", json={"annotator": "nobody"}).status_code == 404
        status = httpx.get(f"{base}/api/status").json()
        assert status["labelled"] == 25 and status["annotators"] == {"ann": 12, "bob": 13}
        assert status["strategy"] == "margin" and status["audit"]["every"] == 5
        assert httpx.put(f"{base}/api/strategy", json={"strategy": "nope"}).status_code == 422
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    project = LabelProject(tmp_path / "proj", learn=False)
    stored = {(i, who, by[who]) for i, by in project.item_labels().items() for who in by}
    assert stored == set(acknowledged)
    project.close()
    status = subprocess.run([sys.executable, "-m", "lmworks", "label", "status", str(tmp_path / "proj"), "--json",
                             "-"], capture_output=True, text=True, timeout=60)
    assert status.returncode == 0 and json.loads(status.stdout)["labelled"] == 25
    out = tmp_path / "labelled.csv"
    export = subprocess.run([sys.executable, "-m", "lmworks", "label", "export", str(tmp_path / "proj"), "--output",
                             str(out)], capture_output=True, text=True, timeout=60)
    assert export.returncode == 0, export.stderr
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["text", "label", "row", "origin", "annotators", "audit"] and len(frame) == 25
    assert all(pool[1][t] == y for t, y in zip(frame["text"], frame["label"]))


def test_label_api_passes_schemathesis(tmp_path, pool):
    from conftest import free_port, schemathesis_run, stop_process

    port = free_port()
    proc = serve(pool[0], tmp_path / "proj", port)
    try:
        schemathesis_run(f"http://127.0.0.1:{port}")
    finally:
        assert stop_process(proc) == 0


def test_page_keyboard_undo_two_annotators_and_chart(tmp_path, pool):
    from browser import Browser
    from conftest import free_port

    port = free_port()
    proc = serve(pool[0], tmp_path / "proj", port, "--overlap", "0.6")
    base = f"http://127.0.0.1:{port}"
    browser = Browser(free_port())

    def press(key: str) -> None:
        browser.send("Input.dispatchKeyEvent", type="keyDown", key=key, text=key)
        browser.send("Input.dispatchKeyEvent", type="keyUp", key=key)

    def shown() -> int:
        return int(browser.wait_for("document.getElementById('item-id').textContent.slice(1)"))

    def label_by_keys(n: int) -> None:
        """Press the true label's key (1: pos, 2: neg) for ``n`` texts, each time waiting for the next one."""
        for _ in range(n):
            item = shown()
            text = browser.eval("document.getElementById('text').textContent")
            press("1" if pool[1][text] == "pos" else "2")
            browser.wait_for(f"document.getElementById('item-id').textContent !== '#{item}'")

    try:
        browser.goto(base + "/")
        browser.wait_for("document.querySelectorAll('#labels button').length === 2")
        label_by_keys(12)
        status = httpx.get(f"{base}/api/status").json()
        assert status["labelled"] == 12 and status["annotators"] == {"default": 12}
        last = shown()
        press("s")
        browser.wait_for(f"document.getElementById('item-id').textContent !== '#{last}'")
        press("u")
        browser.wait_for(f"document.getElementById('item-id').textContent === '#{last}'")
        assert httpx.get(f"{base}/api/status").json()["skipped"] == 0
        browser.wait_for("document.querySelectorAll('#chart .point').length >= 1 && "
                         "document.getElementById('band') !== null")
        assert "random check" in browser.eval("document.getElementById('estimate').textContent")
        browser.eval("localStorage.setItem('lmworks-annotator', 'bob'); true")  # what the name field stores
        browser.goto(base + "/")
        assert browser.wait_for("document.getElementById('annotator').value") == "bob"
        browser.wait_for("document.querySelectorAll('#labels button').length === 2")
        label_by_keys(10)
        status = httpx.get(f"{base}/api/status").json()
        assert status["annotators"]["bob"] == 10
        assert status["agreement"][0]["items"] >= 1  # overlap 0.6: no shared text in 10 has odds 1e-4
        browser.wait_for("document.getElementById('agreement').textContent.includes('bob & default')")
        browser.screenshot(Path(os.environ.get("LMWORKS_SCREENSHOTS", tmp_path)) / "label_page.png")
    finally:
        browser.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
