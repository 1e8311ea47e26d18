"""The opinion monitor: parsing, store, rules, ingest (CLI and HTTP), webhook, dashboard, report, PostgreSQL.

A real TF-IDF sentiment model (trained on generated cue-word data, labels pos/neg)
classifies generated streams whose topics come from the items' ``topic`` field.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from conftest import NEGATIVE, POSITIVE, free_port, make_sentiment, start_process, stop_process
from lmworks.monitor import (
    SQLiteStore,
    SurgeRule,
    ThresholdRule,
    WebhookNotifier,
    WindowStat,
    parse_line,
    parse_rule,
    parse_window,
)
from lmworks.monitor.ingest import RejectedLine

DAY = 86400
START = int(dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc).timestamp())


@pytest.fixture(scope="module")
def sentiment_model(tmp_path_factory):
    from lmworks import TextClassifier

    texts, labels = make_sentiment(400, seed=3)
    path = tmp_path_factory.mktemp("monitor-models") / "sentiment"
    TextClassifier("tfidf").fit(texts, labels, progress=False).save(path)
    return path


def text(rng: random.Random, negative: bool) -> str:
    return f"the {rng.choice(['bank', 'market', 'fund'])} news was {rng.choice(NEGATIVE if negative else POSITIVE)}"


def make_stream(path: Path, *, days: int = 12, surge_day: int = 9, per_day: int = 20, seed: int = 0) -> dict:
    """Topic 'banks' ~25% negative with a surge on ``surge_day``; topic 'gloom' always ~90% negative."""
    rng = random.Random(seed)
    rows = []
    for day in range(days):
        for k in range(per_day):
            ts = START + day * DAY + 3600 + k * 2000
            rows.append({"id": f"b{day}-{k}", "timestamp": iso(ts), "text": text(rng, rng.random() < 0.25),
                         "topic": "banks", "source": "wire"})
            rows.append({"id": f"g{day}-{k}", "timestamp": iso(ts + 60), "text": text(rng, rng.random() < 0.9),
                         "topic": "gloom"})
        if day == surge_day:
            for k in range(30):
                rows.append({"id": f"s{k}", "timestamp": iso(START + day * DAY + 7200 + k * 600),
                             "text": text(rng, True), "topic": "banks"})
    rows.sort(key=lambda r: r["timestamp"])
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return {"rows": len(rows), "surge_start": START + surge_day * DAY}


def iso(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat().replace("+00:00", "Z")


def lmworks(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "lmworks", *map(str, args)], capture_output=True, text=True,
                          **kwargs)


def ingest(stream, db, model, *extra, **kwargs):
    return lmworks("monitor", "ingest", stream, "--db", db, "--sentiment-model", model, "--window", "1d",
                   *extra, **kwargs)


# -- parsing and rules -------------------------------------------------------------------
@pytest.mark.parametrize("line, reason", [
    ("{not json", "malformed JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"id": "a", "timestamp": "2024-01-01T00:00:00Z"}', "text is missing or empty"),
    ('{"id": "a", "timestamp": "2024-01-01T00:00:00Z", "text": "   "}', "text is missing or empty"),
    ('{"id": "a", "timestamp": "last tuesday", "text": "x"}', "not ISO 8601"),
    ('{"id": "a", "text": "x"}', "timestamp is missing"),
    ('{"timestamp": "2024-01-01", "text": "x"}', "id is missing"),
])
def test_bad_lines_are_rejected_with_a_reason(line, reason):
    with pytest.raises(RejectedLine, match=reason):
        parse_line(line)


def test_timestamps_normalise_to_utc():
    item = parse_line('{"id": 7, "timestamp": "2024-01-01T02:00:00+02:00", "text": " a  b "}')
    assert (item.id, item.ts, item.text) == ("7", int(dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc).timestamp()),
                                             "a b")
    assert parse_line('{"id": 1, "timestamp": "2024-01-01", "text": "x"}').timestamp.startswith("2024-01-01T00:00")


def test_windows_and_rule_specs():
    assert parse_window("1h") == 3600 and parse_window("1d") == DAY and parse_window("30m") == 1800
    rule = parse_rule("surge:z=4,min_volume=20")
    assert isinstance(rule, SurgeRule) and rule.z == 4 and rule.min_volume == 20
    assert isinstance(parse_rule("threshold:share=0.8"), ThresholdRule)
    from lmworks.errors import ConfigError

    for bad in ("1 fortnight", "10s"):
        with pytest.raises(ConfigError):
            parse_window(bad)
    with pytest.raises(ConfigError, match="unknown alert rule"):
        parse_rule("magic")


def series(shares, volume=20, topic="t"):
    return [WindowStat(topic, i * DAY, volume, round(s * volume), 0.0) for i, s in enumerate(shares)]


def test_surge_rule_alerts_on_a_jump_not_on_a_topic_that_is_always_negative():
    rule = SurgeRule()
    assert rule.check(series([0.9, 0.85, 0.95, 0.9, 0.9, 0.85, 0.95, 0.9]), DAY) == []
    alerts = rule.check(series([0.2, 0.25, 0.2, 0.3, 0.2, 0.25, 0.75]), DAY)
    assert [a["window_start"] for a in alerts] == [6 * DAY]
    # too few items in the window, or too little history: no alert
    assert rule.check(series([0.2, 0.2, 0.2, 0.2, 1.0], volume=5), DAY) == []
    assert rule.check(series([0.2, 0.9]), DAY) == []


def test_volume_surge_rule_discounts_a_busy_news_day():
    rule = SurgeRule(metric="volume")
    history = [WindowStat("t", i * DAY, 20, 5 + i % 2, 0.0) for i in range(8)]
    totals = {i * DAY: 60 for i in range(8)}
    busy = WindowStat("t", 8 * DAY, 40, 12, 0.0)  # twice the news everywhere: twice the negatives
    assert rule.check([*history, busy], DAY, {**totals, 8 * DAY: 120}) == []
    surge = WindowStat("t", 8 * DAY, 45, 30, 0.0)  # a pile-up in this topic only
    alerts = rule.check([*history, surge], DAY, {**totals, 8 * DAY: 85})
    assert [a["window_start"] for a in alerts] == [8 * DAY]


def test_threshold_rule():
    alerts = ThresholdRule(share=0.7, min_volume=10).check(series([0.5, 0.8, 0.8], volume=10), DAY)
    assert [a["window_start"] for a in alerts] == [DAY, 2 * DAY]


# -- ingest ------------------------------------------------------------------------------
def test_replay_alerts_on_the_surge_only_and_reingest_changes_nothing(tmp_path, sentiment_model):
    stream = tmp_path / "stream.jsonl"
    info = make_stream(stream)
    db = tmp_path / "m.sqlite"
    first = ingest(stream, db, sentiment_model)
    assert first.returncode == 0, first.stderr
    store = SQLiteStore(db)
    assert store.count() == info["rows"]
    alerts = store.alerts()
    assert alerts, first.stderr
    assert {a["topic"] for a in alerts} == {"banks"}  # 'gloom' is always negative: never alerts
    assert all(info["surge_start"] <= a["window_start"] <= info["surge_start"] + DAY for a in alerts)
    assert "ALERT banks" in first.stdout
    again = ingest(stream, db, sentiment_model)
    assert again.returncode == 0
    assert store.count() == info["rows"] and len(store.alerts()) == len(alerts)
    assert f"0 added, {info['rows']} already stored" in again.stderr
    row = sqlite3.connect(db).execute("SELECT sentiment, negative, sentiment_scores FROM items LIMIT 1").fetchone()
    scores = json.loads(row[2])
    assert abs(row[0] - (scores["pos"] - scores["neg"])) < 1e-3 and -1 <= row[0] <= 1
    assert sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0] == "wal"

    summary = json.loads(lmworks("monitor", "summary", db, "--json", "-").stdout)
    assert summary["window"] == "1d" and set(summary["topics"]) == {"banks", "gloom"}
    listed = json.loads(lmworks("monitor", "alerts", db, "--json", "-").stdout)
    assert [a["id"] for a in listed] == [a["id"] for a in alerts]


def test_bad_lines_are_counted_reported_and_do_not_stop_the_stream(tmp_path, sentiment_model):
    good = {"id": "ok1", "timestamp": "2024-03-01T10:00:00Z", "text": "the film was great"}
    lines = [json.dumps(good), "{broken", json.dumps({"id": "x", "timestamp": "2024-03-01T10:00:00Z"}),
             json.dumps({"id": "y", "timestamp": "soon", "text": "fine"}), "",
             json.dumps({**good, "id": "ok2"})]
    stream = tmp_path / "s.jsonl"
    stream.write_text("\n".join(lines) + "\n", encoding="utf-8")
    db = tmp_path / "m.sqlite"
    proc = ingest(stream, db, sentiment_model)
    assert proc.returncode == 0
    assert f"rejected {stream} line 2: malformed JSON" in proc.stderr
    assert f"rejected {stream} line 3: text is missing" in proc.stderr
    assert f"rejected {stream} line 4: timestamp 'soon' is not ISO 8601" in proc.stderr
    rejects = [json.loads(x) for x in Path(f"{db}.rejects.jsonl").read_text().splitlines()]
    assert [r["where"].rsplit(" ", 1)[1] for r in rejects] == ["2", "3", "4"]
    assert SQLiteStore(db).count() == 2


def test_stdin_stream_flushes_a_quiet_partial_batch(tmp_path, sentiment_model):
    db = tmp_path / "m.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "lmworks", "monitor", "ingest", "-", "--db", str(db),
                             "--sentiment-model", str(sentiment_model), "--flush-seconds", "0.3"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        proc.stdin.write(json.dumps({"id": "1", "timestamp": "2024-03-01T00:00:00Z", "text": "awful day"}) + "\n")
        proc.stdin.flush()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # like `tail -f`: the line is stored without more input or EOF
            if db.exists() and _count(db) == 1:
                break
            time.sleep(0.2)
        assert _count(db) == 1
    finally:
        proc.stdin.close()
        assert proc.wait(60) == 0


def _count(db) -> int:
    try:
        return sqlite3.connect(db).execute("SELECT COUNT(*) FROM items").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_killed_mid_ingest_then_restarted_loses_and_doubles_nothing(tmp_path, sentiment_model):
    stream = tmp_path / "big.jsonl"
    info = make_stream(stream, days=30)
    db = tmp_path / "m.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "lmworks", "monitor", "ingest", "-", "--db", str(db),
                             "--sentiment-model", str(sentiment_model), "--window", "1d", "--batch-size", "16"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    lines = stream.read_text().splitlines(keepends=True)
    for line in lines[: len(lines) // 2]:
        proc.stdin.write(line)
    proc.stdin.flush()
    deadline = time.monotonic() + 60
    while _count(db) < 100 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stored = _count(db)
    assert 0 < stored <= len(lines) // 2
    assert stored % 16 == 0 or stored == len(lines) // 2  # whole batches only: each is one transaction
    assert ingest(stream, db, sentiment_model).returncode == 0
    con = sqlite3.connect(db)
    assert con.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM items").fetchone() == (info["rows"], info["rows"])


# -- webhook -------------------------------------------------------------------------------
class Receiver(BaseHTTPRequestHandler):
    received: list = []
    failures_left = 0

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["content-length"]))
        if Receiver.failures_left > 0:
            Receiver.failures_left -= 1
            self.send_response(500)
        else:
            Receiver.received.append(json.loads(body))
            self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_webhook_retries_then_delivers(tmp_path):
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Receiver.received, Receiver.failures_left = [], 2
    store = SQLiteStore(tmp_path / "m.sqlite")
    alert_id = store.insert_alert({"rule": "r", "topic": "t", "window_start": 0, "window_seconds": DAY,
                                   "value": 0.9, "baseline": 0.2, "volume": 30, "message": "m"})
    hook = WebhookNotifier(f"http://127.0.0.1:{server.server_port}/hook", store, backoff=0.05)
    hook.notify({"id": alert_id, "message": "m"})
    hook.close()
    server.shutdown()
    assert Receiver.received == [{"id": alert_id, "message": "m"}]
    assert store.alerts()[0]["delivered"] is True


def test_failing_webhook_never_blocks_ingest(tmp_path, sentiment_model):
    stream = tmp_path / "stream.jsonl"
    make_stream(stream)
    db = tmp_path / "m.sqlite"
    dead = f"http://127.0.0.1:{free_port()}/nobody-listens"
    started = time.monotonic()
    proc = ingest(stream, db, sentiment_model, "--webhook", dead)
    assert proc.returncode == 0, proc.stderr
    assert "webhook" in proc.stderr and "failed" in proc.stderr
    alerts = SQLiteStore(db).alerts()
    assert alerts and not any(a["delivered"] for a in alerts)
    assert time.monotonic() - started < 60


# -- HTTP ingest, dashboard, report ----------------------------------------------------------
def test_http_ingest_dashboard_in_chromium_and_report(tmp_path, sentiment_model):
    import httpx

    from browser import Browser

    stream = tmp_path / "stream.jsonl"
    make_stream(stream)
    db = tmp_path / "m.sqlite"
    assert ingest(stream, db, sentiment_model).returncode == 0
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_process(["monitor", "serve", str(db), "--port", str(port), "--sentiment-model",
                          str(sentiment_model)], base + "/healthz")
    try:
        browser = Browser(free_port())
        try:
            browser.goto(base + "/?refresh=500")
            browser.wait_for("document.querySelectorAll('.panel').length === 2")
            assert browser.eval("document.querySelectorAll('.panel polyline.sentiment').length") >= 2
            assert browser.eval("document.querySelectorAll('.alert-mark').length") >= 1
            assert "banks" in browser.eval("document.getElementById('alerts').innerText")
            negative = browser.eval("document.getElementById('negative').innerText")
            assert any(word in negative for word in NEGATIVE)
            # Why did the alert fire: the negative words of its window, and its items highlighted.
            browser.eval("document.querySelector('[data-why-alert]').click()")
            browser.wait_for("document.querySelectorAll('#why .why-item .w').length > 0")
            words = browser.eval("[...document.querySelectorAll('#why .words span')].map(s => s.dataset.word)")
            assert words and words[0] in NEGATIVE, words
            red = browser.eval("[...document.querySelectorAll('#why .why-item .w')].filter(s => "
                               "Number(s.dataset.score) > 0).map(s => s.textContent)")
            assert set(red) & set(NEGATIVE)
            # An item opens its own highlighted words, and they survive the page's refresh.
            browser.eval("document.querySelector('#negative .item .text').click()")
            browser.wait_for("document.querySelectorAll('#negative .item.explained .w').length > 0")
            top = browser.eval("(() => { const s = [...document.querySelectorAll('#negative .item.explained .w')];"
                               " s.sort((a, b) => b.dataset.score - a.dataset.score); return s[0].textContent; })()")
            assert top in NEGATIVE
            item_id = browser.eval("document.querySelector('#negative .item.explained').dataset.item")
            why = httpx.get(f"{base}/api/items/{item_id}/why").json()
            assert why["explanation"]["method"] == "tfidf_exact" and why["item"]["id"] == item_id
            assert httpx.get(f"{base}/api/items/no-such-id/why").json()["error"]["code"] == "not_found"
            assert httpx.get(f"{base}/api/alerts/99999/why").status_code == 404
            count = int(browser.eval("document.body.dataset.count"))
            r = httpx.post(base + "/v1/items", json={"items": [
                {"id": "new-1", "timestamp": "2024-03-20T10:00:00Z", "text": "a dull and painful report",
                 "topic": "banks"},
                {"id": "new-1", "timestamp": "2024-03-20T10:00:00Z", "text": "again", "topic": "banks"},
                {"id": "bad", "timestamp": "nope", "text": "x"}]})
            assert r.status_code == 200, r.text
            assert r.json()["added"] == 1 and r.json()["rejected"][0]["index"] == 2
            browser.wait_for(f"Number(document.body.dataset.count) === {count + 1}")  # the page refreshed itself
            shots = Path(os.environ.get("LMWORKS_SCREENSHOTS", tmp_path))
            shot = browser.screenshot(shots / "monitor_dashboard.png")
            assert shot.stat().st_size > 10_000
        finally:
            browser.close()
        assert httpx.post(base + "/v1/items", json={"items": [{}] * 1001}).status_code == 413
        assert httpx.post(base + "/v1/items", json={"things": []}).status_code == 422
        from conftest import schemathesis_run

        schemathesis_run(base)
    finally:
        assert stop_process(proc) == 0
    for name in ("report.html", "report.png"):
        out = tmp_path / name
        proc = lmworks("monitor", "report", db, "--output", out)
        assert proc.returncode == 0, proc.stderr
        assert out.stat().st_size > 5_000
    assert "window.LMWORKS_DATA" in (tmp_path / "report.html").read_text()


def test_read_only_dashboard_refuses_ingest(tmp_path, sentiment_model):
    import httpx

    db = tmp_path / "m.sqlite"
    SQLiteStore(db).close()
    port = free_port()
    proc = start_process(["monitor", "serve", str(db), "--port", str(port)],
                         f"http://127.0.0.1:{port}/healthz")
    try:
        r = httpx.post(f"http://127.0.0.1:{port}/v1/items", json={"items": []})
        assert r.status_code == 503 and r.json()["error"]["code"] == "no_models"
        r = httpx.get(f"http://127.0.0.1:{port}/api/alerts/1/why")
        assert r.status_code == 404 and "no alert with id 1" in r.json()["error"]["message"]
        from conftest import schemathesis_run

        schemathesis_run(f"http://127.0.0.1:{port}")  # the read-only answers (503) are declared too
    finally:
        assert stop_process(proc) == 0


def test_wrong_sentiment_labels_are_a_clear_error(tmp_path):
    from lmworks import TextClassifier

    model = tmp_path / "topics"
    texts = ["stocks rally", "rain falls", "stocks rise", "rain pours"] * 5
    TextClassifier("tfidf", eval_fraction=0).fit(texts, ["x", "y", "x", "y"] * 5, progress=False).save(model)
    stream = tmp_path / "s.jsonl"
    stream.write_text("", encoding="utf-8")
    proc = ingest(stream, tmp_path / "m.sqlite", model)
    assert proc.returncode == 1 and "none looks negative; pass --negative-label" in proc.stderr


# -- PostgreSQL ------------------------------------------------------------------------------
def test_postgresql_store(tmp_path, sentiment_model, postgres_url):
    stream = tmp_path / "stream.jsonl"
    info = make_stream(stream)
    assert ingest(stream, postgres_url, sentiment_model).returncode == 0
    again = ingest(stream, postgres_url, sentiment_model)
    assert again.returncode == 0 and f"0 added, {info['rows']} already stored" in again.stderr
    from lmworks.monitor import open_store

    store = open_store(postgres_url)
    assert store.count() == info["rows"]
    alerts = store.alerts()
    assert alerts and {a["topic"] for a in alerts} == {"banks"}
    assert all(info["surge_start"] <= a["window_start"] <= info["surge_start"] + DAY for a in alerts)
    store.close()
