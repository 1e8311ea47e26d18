"""Benchmark: `lmworks serve` under 1, 8 and 32 concurrent clients on 127.0.0.1.

Each client (aiohttp, one process) sends single-text ``POST /v1/classify`` requests back to back (keep-alive,
one connection each) until the level's request budget is spent; the script reports
throughput, p50/p95/p99 latency and errors per level, and the offline Predictor's
texts/s on the same texts and model for comparison. Client and server share this
machine's CPUs, so the numbers include the client's own cost.

    .venv/bin/python bench/serve.py --model-dir runs/bench-infer-cls-onnx-int8 --json runs/bench_serve.json

The default model is the int8 export written by ``bench/infer.py``.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=Path("runs/bench-infer-cls-onnx-int8"))
    parser.add_argument("--levels", default="1,8,32", help="concurrency levels (default: 1,8,32)")
    parser.add_argument("--requests", type=int, default=2000, help="requests per level (default: 2000)")
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not (args.model_dir / "lmworks.json").is_file():
        raise SystemExit(f"{args.model_dir}: not a model dir; run bench/infer.py first (it writes the exports)")

    import lmworks
    from lmworks.data import read_dataset
    from lmworks.datasets import export

    folder = Path(tempfile.mkdtemp(prefix="lmworks-bench-serve-"))
    export("rotten_tomatoes", folder, seed=13)
    # test then dev texts: 2,551 distinct held-out texts, so no request repeats another below that count
    texts = list(read_dataset(folder / "test.csv").texts) + list(read_dataset(folder / "dev.csv").texts)

    predictor = lmworks.load(args.model_dir)
    predictor.predict(texts[:64])
    start = time.perf_counter()
    predictor.predict(texts)
    offline = len(texts) / (time.perf_counter() - start)
    del predictor
    print(f"offline Predictor: {offline:.1f} texts/s on {len(texts)} texts", flush=True)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "lmworks", "serve", str(args.model_dir), "--port", str(port),
         "--max-wait-ms", str(args.max_wait_ms)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    rows = []
    try:
        wait_ready(f"{url}/healthz", proc)
        asyncio.run(run_level(url, texts, 4, 200))  # warm-up
        for level in [int(x) for x in args.levels.split(",")]:
            row = asyncio.run(run_level(url, texts, level, args.requests))
            row["vs_offline"] = row["throughput_rps"] / offline
            rows.append(row)
            print(f"  c={level}: {row['throughput_rps']:.1f} req/s, p99 {row['p99_ms']:.1f} ms, "
                  f"errors {row['errors']}", flush=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)

    print()
    print(f"model {args.model_dir}; single-text requests; offline Predictor {offline:.1f} texts/s")
    print("| concurrent clients | requests | errors | throughput (req/s) | p50 ms | p95 ms | p99 ms | vs offline |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['concurrency']} | {r['requests']} | {r['errors']} | {r['throughput_rps']:.1f} | "
              f"{r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['p99_ms']:.1f} | {100 * r['vs_offline']:.0f}% |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"offline_texts_per_s": offline, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
