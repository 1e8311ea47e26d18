"""The classification REST service, tested over real HTTP on a loopback port."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import pytest

from conftest import free_port, start_process, stop_process

KEY = "test-key-123"
LIMITS = ["--max-texts", "8", "--max-chars", "300", "--max-body-bytes", "8192", "--threads", "1"]


@pytest.fixture(scope="module")
def server(tiny_model_dir):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_process(["serve", str(tiny_model_dir), "--port", str(port), "--api-key-env", "LMW_TEST_KEY",
                          *LIMITS], f"{url}/healthz", env={"LMW_TEST_KEY": KEY})
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    yield client
    client.close()
    assert stop_process(proc) == 0


def _error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["message"]
    if code:
        assert body["error"]["code"] == code
    return body["error"]


def test_classify_matches_offline_predictor(server, tiny_model_dir):
    import lmworks

    texts = ["a wonderful story", "the plot was awful and boring", "great acting"]
    r = server.post("/v1/classify", json={"texts": texts})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == tiny_model_dir.name
    offline = lmworks.load(tiny_model_dir).classify(texts)
    assert [p["label"] for p in body["predictions"]] == [p["label"] for p in offline]
    for got, want in zip(body["predictions"], offline):
        assert got["scores"] == pytest.approx(want["scores"], abs=1e-5)


def test_health_model_info_metrics_and_schema_are_served(server):
    assert server.get("/healthz").json()["status"] == "ok"
    info = server.get("/v1/model").json()
    assert info["task"] == "single_label" and sorted(info["labels"]) == ["neg", "pos"]
    assert info["limits"]["max_texts"] == 8 and "versions" in info and "metrics" in info
    server.post("/v1/classify", json={"texts": ["fine"]})
    text = server.get("/metrics").text
    assert 'lmworks_requests_total{endpoint="/v1/classify",status="200"}' in text
    assert "lmworks_request_latency_seconds_bucket" in text and "lmworks_batch_size_texts_bucket" in text
    schema = server.get("/openapi.json").json()
    assert "/v1/classify" in schema["paths"]


def test_api_docs_render_in_chromium_without_a_cdn(server, tmp_path):
    """/docs and /redoc load their scripts from the server itself (the machines have no internet)."""
    from browser import Browser

    base = str(server.base_url).rstrip("/")
    anonymous = httpx.Client(base_url=base, timeout=30)  # the docs stay open when an API key is required
    page = anonymous.get("/docs").text
    assert "cdn" not in page.lower() and "/docs-assets/swagger-ui-bundle.js" in page
    assert anonymous.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    assert anonymous.get("/v1/model").status_code == 401
    browser = Browser(free_port())
    try:
        browser.goto(base + "/docs")
        text = browser.wait_for("document.querySelectorAll('.opblock').length > 0 && "
                                "document.querySelector('.swagger-ui').innerText")
        assert "/v1/classify" in text and "lmworks classifier" in text
        scripts = browser.eval("Array.from(document.scripts).map(s => s.src).filter(Boolean).join(' ')")
        assert scripts and all(src.startswith(base) for src in scripts.split())
        browser.screenshot(tmp_path / "docs.png")
        browser.goto(base + "/redoc")
        text = browser.wait_for("document.querySelector('redoc h1, .api-info h1') && document.body.innerText")
        assert "lmworks classifier" in text
    finally:
        browser.close()
        anonymous.close()


@pytest.mark.parametrize("route", ["/v1/classify", "/v1/explain"])
def test_every_limit_is_a_json_4xx(server, route):
    _error(server.post(route, json={"texts": ["x"] * 9}), 413, "too_many_texts")
    _error(server.post(route, json={"texts": ["ok", "y" * 301]}), 413, "text_too_long")
    _error(server.post(route, json={"texts": ["z" * 250] * 40}), 413, "body_too_large")

    def chunks():
        for _ in range(20):
            yield b"x" * 1000

    _error(server.post("/v1/classify", content=chunks(), headers={"Content-Type": "application/json"}),
           413, "body_too_large")


@pytest.mark.parametrize("body", [
    b"{not json", b"", b"[]", b'{"texts": "a single string"}', b'{"texts": [1, 2]}', b'{"texts": [null]}',
    b'{"texts": []}', b'{"text": ["wrong key"]}', b'{"texts": ["ok"], "extra": 1}', b'{"texts": ["   "]}',
])
@pytest.mark.parametrize("route", ["/v1/classify", "/v1/explain"])
def test_malformed_and_wrong_types_are_422(server, body, route):
    _error(server.post(route, content=body, headers={"Content-Type": "application/json"}), 422)


def test_explain_answers_words_and_scores_like_the_library(server, tiny_model_dir):
    from lmworks import TextClassifier

    texts = ["the acting was superb", "a dull and tedious plot", "the film was awful"]
    response = server.post("/v1/explain", json={"texts": texts})
    assert response.status_code == 200, response.text
    answers = response.json()["explanations"]
    offline = TextClassifier.load(tiny_model_dir).explain(texts)
    for answer, expected in zip(answers, offline):
        assert answer["label"] == expected.label and answer["words"] == expected.words
        assert answer["method"] == expected.method and len(answer["scores"]) == len(answer["words"])
        assert answer["scores"] == pytest.approx(expected.scores, abs=1e-4)
    other = server.post("/v1/explain", json={"texts": texts[:1], "class": "neg"}).json()["explanations"][0]
    assert other["label"] == "neg"
    _error(server.post("/v1/explain", json={"texts": texts, "class": "nope"}), 422, "unknown_class")
    _error(httpx.post(f"{server.base_url}/v1/explain", json={"texts": texts}), 401, "unauthorized")


def test_api_key_is_required_on_v1_only(server):
    base = str(server.base_url)
    _error(httpx.post(f"{base}/v1/classify", json={"texts": ["hi"]}), 401, "unauthorized")
    _error(httpx.post(f"{base}/v1/classify", json={"texts": ["hi"]}, headers={"X-API-Key": "wrong"}), 401)
    assert httpx.post(f"{base}/v1/classify", json={"texts": ["hi"]}, headers={"X-API-Key": KEY}).status_code == 200
    assert httpx.get(f"{base}/healthz").status_code == 200
    _error(server.get("/no/such/path"), 404, "not_found")


def test_concurrent_requests_all_answered_in_order(server):
    texts = [f"text number {i} was great" if i % 2 else f"text {i} was dull" for i in range(40)]
    results: dict[int, list] = {}

    def worker(i: int) -> None:
        r = server.post("/v1/classify", json={"texts": [texts[i]]})
        results[i] = r.json()["predictions"] if r.status_code == 200 else r.status_code

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(isinstance(results[i], list) and len(results[i]) == 1 for i in range(len(texts)))
    single = server.post("/v1/classify", json={"texts": texts[:8]}).json()["predictions"]
    for i in range(8):
        assert results[i][0]["label"] == single[i]["label"]


def test_openapi_fuzz_never_5xx(server):
    """Hypothesis-generated bodies, schema-shaped and arbitrary, never produce a server error."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    schema = server.get("/openapi.json").json()
    assert schema["paths"]["/v1/classify"]["post"]["requestBody"]["required"] is True
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=12,
    )
    shaped = st.fixed_dictionaries({"texts": st.lists(st.text(max_size=400), max_size=10)})
    bodies = st.one_of(shaped.map(json.dumps), json_values.map(json.dumps), st.binary(max_size=300))

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=bodies)
    def fuzz(body):
        r = server.post("/v1/classify", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code < 500, r.text
        if r.status_code != 200:
            assert "error" in r.json()

    fuzz()


def test_bad_model_dir_exits_with_clear_message(tmp_path):
    import subprocess
    import sys

    (tmp_path / "empty").mkdir()
    done = subprocess.run([sys.executable, "-m", "lmworks", "serve", str(tmp_path / "empty"), "--port", "1"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "lmworks.json is missing" in done.stderr and "Traceback" not in done.stderr


def test_missing_api_key_variable_refuses_to_start(tiny_model_dir):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "lmworks", "serve", str(tiny_model_dir), "--api-key-env",
                           "LMW_SURELY_UNSET_VAR"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "LMW_SURELY_UNSET_VAR" in done.stderr


def test_graceful_shutdown_finishes_in_flight_request(tiny_model_dir):
    """A request waiting in a (deliberately slow) micro-batch is answered after SIGTERM."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_process(["serve", str(tiny_model_dir), "--port", str(port), "--max-wait-ms", "1500",
                          "--threads", "1"], f"{url}/healthz")
    outcome: dict = {}

    def call() -> None:
        outcome["response"] = httpx.post(f"{url}/v1/classify", json={"texts": ["great"]}, timeout=30)

    t = threading.Thread(target=call)
    t.start()
    time.sleep(0.5)  # the request is now waiting for company in the batcher
    code = stop_process(proc)
    t.join()
    assert outcome["response"].status_code == 200
    assert code == 0


def test_batcher_coalesces_and_respects_token_budget():
    from lmworks.serve.batcher import MicroBatcher

    calls: list[list[str]] = []

    def infer(texts, tokens):
        calls.append(list(texts))
        time.sleep(0.05)
        return [t.upper() for t in texts]

    async def scenario():
        batcher = MicroBatcher(infer, max_wait_ms=20, max_batch_tokens=100)
        await batcher.start()
        answers = await asyncio.gather(*(batcher.submit([f"t{i}"], [10]) for i in range(30)))
        big = await asyncio.gather(batcher.submit(["long"], [500]), batcher.submit(["short"], [5]))
        await batcher.stop()
        return answers, big

    answers, big = asyncio.run(scenario())
    assert [a[0] for a in answers] == [f"T{i}" for i in range(30)]
    assert big == [["LONG"], ["SHORT"]]
    sizes = [len(c) for c in calls]
    assert max(sizes) <= 10  # 100-token budget / 10 tokens per text
    assert len(calls) < 30  # requests were coalesced
    assert ["long"] in calls  # an over-budget request runs alone


def test_a_full_queue_sheds_load_with_503_and_retry_after(tiny_model_dir):
    """Past --max-queue waiting texts, requests are refused at once instead of queueing without bound."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # The first batch waits 1.5 s for company, so every request below arrives while it waits.
    proc = start_process(["serve", str(tiny_model_dir), "--port", str(port), "--max-wait-ms", "1500",
                          "--max-queue", "2", "--threads", "1"], f"{url}/healthz")
    try:
        async def burst():
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                first = asyncio.create_task(client.post("/v1/classify", json={"texts": ["good"]}))
                await asyncio.sleep(0.2)
                rest = await asyncio.gather(*(client.post("/v1/classify", json={"texts": [f"fine {i}"]})
                                              for i in range(6)))
                return [await first, *rest]

        started = time.perf_counter()
        responses = asyncio.run(burst())
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200, 200, 503, 503, 503, 503, 503], statuses
        shed = [r for r in responses if r.status_code == 503]
        assert all(int(r.headers["Retry-After"]) >= 1 for r in shed)
        assert _error(shed[0], 503, "overloaded")["message"].startswith("2 texts are waiting, the limit is 2")
        assert time.perf_counter() - started < 10
        # the queue drained: the service accepts again
        assert httpx.post(f"{url}/v1/classify", json={"texts": ["again"]}, timeout=30).status_code == 200
        metrics = httpx.get(f"{url}/metrics", timeout=30).text
        assert 'lmworks_requests_total{endpoint="/v1/classify",status="503"} 5.0' in metrics
    finally:
        assert stop_process(proc) == 0


@pytest.mark.processes
def test_metrics_cover_every_worker_process(tiny_model_dir):
    """With --workers 2 each scrape reports the requests of both processes, whichever one answers it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_process(["serve", str(tiny_model_dir), "--port", str(port), "--workers", "2", "--threads", "1"],
                         f"{url}/healthz")
    try:
        for i in range(40):  # a new connection each: the kernel hands them to either worker
            with httpx.Client(base_url=url, timeout=30) as client:
                assert client.post("/v1/classify", json={"texts": [f"text {i}"]}).status_code == 200
        for _ in range(4):
            with httpx.Client(base_url=url, timeout=30) as client:
                text = client.get("/metrics").text
            assert 'lmworks_requests_total{endpoint="/v1/classify",status="200"} 40.0' in text
            assert "lmworks_texts_total 40.0" in text
    finally:
        assert stop_process(proc) == 0


def test_openapi_tells_the_truth_to_schemathesis(server):
    """Every schema-valid request is accepted, every documented status and header is what comes back."""
    from conftest import schemathesis_run

    schemathesis_run(str(server.base_url), headers={"Authorization": f"Bearer {KEY}"})
