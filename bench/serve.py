"""Benchmark: `lmworks serve` on 127.0.0.1, open-loop (fixed arrival rates) and closed-loop (N clients).

Open loop (the headline): for each target rate, requests are sent on a Poisson schedule
fixed in advance (seeded), each at its scheduled time whether or not earlier ones were
answered, and latency is measured from the *scheduled* send time. A server that falls
behind therefore shows its queue in the latency, instead of slowing the client down and
hiding it (the coordinated-omission error that wrk2 and k6's arrival-rate executors
avoid). Reported per rate: achieved rate, p50/p95/p99, errors and 503s (load shed);
then the highest rate with p99 <= 100 ms and no errors, as a share of the offline
Predictor's texts/s measured in the same run.

Closed loop (a second view): each client (aiohttp, one process) sends single-text
``POST /v1/classify`` requests back to back (keep-alive, one connection each) until the
level's request budget is spent; reported per level: throughput, p50/p95/p99 latency,
errors, and the share of the offline Predictor's texts/s. Client and server share this
machine's CPUs, so the numbers include the client's own cost.

    .venv/bin/python bench/serve.py --model-dir runs/rt-minilm-int8 --json runs/bench_serve.json

The default model is the quickstart model's int8 export (``lmworks export runs/rt-minilm
--format onnx --quantize int8 --eval data/rotten_tomatoes/dev.csv --output runs/rt-minilm-int8``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit("server did not start")


async def open_loop(url: str, texts: list[str], rate: float, seconds: float, seed: int) -> dict:
    """Send single-text requests at ``rate`` per second (Poisson) for ``seconds``; latency from schedule."""
    import aiohttp

    rng = np.random.default_rng(seed)
    schedule = np.cumsum(rng.exponential(1.0 / rate, int(rate * seconds * 1.2) + 10))
    schedule = schedule[schedule < seconds]
    latencies = np.full(len(schedule), np.nan)
    status: list[int] = [0] * len(schedule)
    connector = aiohttp.TCPConnector(limit=0)  # open loop: as many connections as requests in flight
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as client:
        t0 = time.perf_counter() + 0.2

        async def one(i: int, at: float) -> None:
            delay = t0 + at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                async with client.post("/v1/classify", json={"texts": [texts[i % len(texts)]]}) as r:
                    await r.read()
                    status[i] = r.status
            except (aiohttp.ClientError, asyncio.TimeoutError):
                status[i] = -1
            latencies[i] = time.perf_counter() - (t0 + at)

        await asyncio.gather(*(one(i, float(at)) for i, at in enumerate(schedule)))
        wall = time.perf_counter() - t0
    codes = np.asarray(status)
    ok = codes == 200
    lat = latencies[ok] * 1000 if ok.any() else np.asarray([np.inf])
    return {"target_rps": rate, "requests": int(len(schedule)), "achieved_rps": float(ok.sum() / wall),
            "errors": int((~ok & (codes != 503)).sum()), "shed_503": int((codes == 503).sum()),
            "p50_ms": float(np.percentile(lat, 50)), "p95_ms": float(np.percentile(lat, 95)),
            "p99_ms": float(np.percentile(lat, 99)), "max_ms": float(lat.max())}


async def run_level(url: str, texts: list[str], concurrency: int, requests: int) -> dict:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    counter = iter(range(requests))
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as client:
        async def client_loop() -> None:
            nonlocal errors
            for i in counter:
                start = time.perf_counter()
                try:
                    async with client.post("/v1/classify", json={"texts": [texts[i % len(texts)]]}) as r:
                        await r.read()
                        ok = r.status == 200
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    ok = False
                latencies.append(time.perf_counter() - start)
                errors += not ok

        started = time.perf_counter()
        await asyncio.gather(*(client_loop() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    lat = np.asarray(latencies) * 1000
    return {"concurrency": concurrency, "requests": requests, "errors": errors, "throughput_rps": requests / wall,
            "p50_ms": float(np.percentile(lat, 50)), "p95_ms": float(np.percentile(lat, 95)),
            "p99_ms": float(np.percentile(lat, 99)), "wall_s": wall}


def offline_rate(model_dir: Path, texts: list[str]) -> float:
    import lmworks

    predictor = lmworks.load(model_dir)
    predictor.predict(texts[:64])
    start = time.perf_counter()
    predictor.predict(texts)
    return len(texts) / (time.perf_counter() - start)


def start_server(model_dir: Path, port: int, extra: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "lmworks", "serve", str(model_dir), "--port", str(port), *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=Path("runs/rt-minilm-int8"))
    parser.add_argument("--rates", default="auto",
                        help="open-loop target rates, req/s, comma-separated; 'auto': 15-60%% of offline texts/s")
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds per open-loop rate (default: 15)")
    parser.add_argument("--levels", default="1,8,32", help="closed-loop concurrency levels ('' to skip)")
    parser.add_argument("--requests", type=int, default=2000, help="requests per closed-loop level")
    parser.add_argument("--serve-args", default="", help="extra 'lmworks serve' options, e.g. '--max-queue 64'")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not (args.model_dir / "lmworks.json").is_file():
        raise SystemExit(f"{args.model_dir}: not a model dir (the quickstart and 'lmworks export' write one)")

    from lmworks.data import read_dataset
    from lmworks.datasets import export

    folder = Path(tempfile.mkdtemp(prefix="lmworks-bench-serve-"))
    export("rotten_tomatoes", folder, seed=13)
    # test then dev texts: 2,551 distinct held-out texts, so no request repeats another below that count
    texts = list(read_dataset(folder / "test.csv").texts) + list(read_dataset(folder / "dev.csv").texts)
    offline = offline_rate(args.model_dir, texts)
    print(f"offline Predictor: {offline:.1f} texts/s on {len(texts)} texts", flush=True)
    rates = ([round(offline * f) for f in (0.15, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6)] if args.rates == "auto"
             else [float(r) for r in args.rates.split(",")])

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(args.model_dir, port, args.serve_args.split())
    open_rows, closed_rows = [], []
    try:
        wait_ready(f"{url}/healthz", proc)
        asyncio.run(run_level(url, texts, 4, 200))  # warm-up
        for rate in rates:
            row = asyncio.run(open_loop(url, texts, rate, args.seconds, args.seed))
            row["vs_offline"] = rate / offline
            open_rows.append(row)
            print(f"  {rate:.0f} req/s: achieved {row['achieved_rps']:.1f}, p99 {row['p99_ms']:.1f} ms, "
                  f"errors {row['errors']}, shed {row['shed_503']}", flush=True)
            time.sleep(1.0)  # let a backlog drain before the next rate
        for level in [int(x) for x in args.levels.split(",") if x]:
            row = asyncio.run(run_level(url, texts, level, args.requests))
            row["vs_offline"] = row["throughput_rps"] / offline
            closed_rows.append(row)
            print(f"  c={level}: {row['throughput_rps']:.1f} req/s, p99 {row['p99_ms']:.1f} ms, "
                  f"errors {row['errors']}", flush=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)

    report(args, offline, open_rows, closed_rows)


def knee(rows: list[dict], p99_ms: float = 100.0) -> dict | None:
    """The highest target rate whose p99 is within ``p99_ms`` with no errors at it or any lower rate."""
    best = None
    for row in sorted(rows, key=lambda r: r["target_rps"]):
        if row["errors"] or row["shed_503"] or row["p99_ms"] > p99_ms:
            break
        best = row
    return best


def report(args, offline: float, open_rows: list[dict], closed_rows: list[dict]) -> None:
    print()
    print(f"model {args.model_dir}; single-text requests; offline Predictor {offline:.1f} texts/s; "
          f"serve {args.serve_args or '(defaults)'}")
    print("\nopen loop (Poisson arrivals, latency from the scheduled send time)")
    print("| target req/s | % of offline | requests | achieved req/s | p50 ms | p95 ms | p99 ms | errors | 503 shed |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in open_rows:
        print(f"| {r['target_rps']:.0f} | {100 * r['vs_offline']:.0f}% | {r['requests']} | {r['achieved_rps']:.1f} | "
              f"{r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} | {r['shed_503']} |")
    best = knee(open_rows)
    if best:
        print(f"highest rate with p99 <= 100 ms and no errors: {best['target_rps']:.0f} req/s = "
              f"{100 * best['target_rps'] / offline:.0f}% of offline")
    else:
        print("no rate met p99 <= 100 ms without errors")
    if closed_rows:
        print("\nclosed loop (N clients back to back)")
        print("| concurrent clients | requests | errors | throughput (req/s) | p50 ms | p95 ms | p99 ms | vs offline |")
        print("|---|---|---|---|---|---|---|---|")
        for r in closed_rows:
            print(f"| {r['concurrency']} | {r['requests']} | {r['errors']} | {r['throughput_rps']:.1f} | "
                  f"{r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['p99_ms']:.1f} | {100 * r['vs_offline']:.0f}% |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"offline_texts_per_s": offline, "open_loop": open_rows,
                                         "knee": best, "closed_loop": closed_rows}, indent=2))


if __name__ == "__main__":
    main()
