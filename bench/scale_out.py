"""Benchmark: batch scoring per core, and `lmworks predict --engine ray` against one process.

Part 1 (``--per-core MODEL_DIR ...``): rows/s of each model on one thread over the Rotten
Tomatoes test texts (the figure ``docs/scaling.md`` projects 100 M rows from).

Part 2 (``--rows N``): N rows (the test texts repeated, with an ``id``) written as
CSV part files, scored by ``lmworks predict`` in one process (all CPUs) and by
``--engine ray`` with ``--actors`` actors sharing the same CPUs, each command in its own
process. Reported: wall time, rows/s, the driver's peak RSS (the process that ran the
command; Ray's workers are separate), and a row-for-row comparison by id: every id
once, same labels, largest probability difference.

    .venv/bin/python bench/scale_out.py --per-core runs/rt-tfidf runs/rt-minilm-int8 runs/rt-minilm runs/rt-mpnet
    .venv/bin/python bench/scale_out.py --model runs/rt-minilm-int8 --rows 1000000 --json runs/bench_ray.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def per_core(model_dirs: list[Path], texts: list[str]) -> list[dict]:
    import lmworks

    rows = []
    for directory in model_dirs:
        predictor = lmworks.load(directory, num_threads=1)
        sample = texts if predictor.meta.get("base_model") != "mpnet" else texts[:400]
        predictor.predict_proba(sample[:64])
        start = time.perf_counter()
        predictor.predict_proba(sample)
        rate = len(sample) / (time.perf_counter() - start)
        kind = predictor.runtime + (f" {predictor.meta['onnx'].get('quantize') or 'fp32'}"
                                    if predictor.meta.get("onnx") else "")
        rows.append({"model": str(directory), "base_model": predictor.meta.get("base_model"), "runtime": kind,
                     "rows_per_s_per_core": rate, "core_hours_per_100m": 1e8 / rate / 3600})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def write_parts(texts: list[str], n: int, folder: Path, parts: int = 8) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    reps = int(np.ceil(n / len(texts)))
    frame = pd.DataFrame({"id": np.arange(n), "text": (texts * reps)[:n]})
    for i, rows in enumerate(np.array_split(np.arange(n), parts)):
        frame.iloc[rows].to_csv(folder / f"part-{i:03d}.csv", index=False)
    frame[["id", "text"]].to_csv(folder.parent / "all.csv", index=False)


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of the command's own process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return wall, usage.ru_maxrss / 1024


def compare(local_csv: Path, ray_dir: Path, n: int) -> dict:
    local = pd.read_csv(local_csv).sort_values("id")
    ray = pd.concat(pd.read_parquet(f) for f in sorted(ray_dir.glob("*.parquet")))
    ray["id"] = ray["id"].astype(int)
    ray = ray.sort_values("id")
    probs = [c for c in local.columns if c.startswith("prob_")]
    return {"ids_complete_and_unique": bool(list(ray["id"]) == list(range(n))),
            "label_agreement": float((ray["label"].to_numpy() == local["label"].to_numpy()).mean()),
            "max_prob_diff": float(np.abs(ray[probs].to_numpy() - local[probs].to_numpy()).max())}


def ray_vs_local(model: Path, texts: list[str], n: int, actors: int, work: Path) -> dict:
    write_parts(texts, n, work / "parts")
    lmw = [sys.executable, "-m", "lmworks", "predict", str(model)]
    local_s, local_rss = timed([*lmw, str(work / "all.csv"), "--output", str(work / "local.csv"), "--quiet"])
    print(f"local: {n / local_s:.0f} rows/s, peak RSS {local_rss:.0f} MiB", flush=True)
    ray_s, ray_rss = timed([*lmw, str(work / "parts"), "--engine", "ray", "--actors", str(actors),
                            "--output", str(work / "ray"), "--quiet"])
    print(f"ray: {n / ray_s:.0f} rows/s, driver peak RSS {ray_rss:.0f} MiB", flush=True)
    return {"model": str(model), "rows": n, "actors": actors, "local_seconds": local_s, "local_rows_per_s": n / local_s,
            "local_peak_rss_mib": local_rss, "ray_seconds": ray_s, "ray_rows_per_s": n / ray_s,
            "ray_driver_peak_rss_mib": ray_rss, "ray_vs_local": local_s / ray_s,
            **compare(work / "local.csv", work / "ray", n)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-core", nargs="*", type=Path, default=[], metavar="MODEL_DIR")
    parser.add_argument("--model", type=Path, help="model for the Ray comparison")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--data", type=Path, default=Path("data/rotten_tomatoes/test.csv"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    texts = list(pd.read_csv(args.data)["text"].astype(str))
    out: dict = {}
    if args.per_core:
        out["per_core"] = per_core(args.per_core, texts)
        print("\n| model | base | runtime | rows/s per core | core-hours per 100 M rows |")
        print("|---|---|---|---|---|")
        for r in out["per_core"]:
            print(f"| {r['model']} | {r['base_model']} | {r['runtime']} | {r['rows_per_s_per_core']:.0f} | "
                  f"{r['core_hours_per_100m']:.0f} |")
    if args.model:
        with tempfile.TemporaryDirectory(prefix="lmworks-bench-ray-") as work:
            r = ray_vs_local(args.model, texts, args.rows, args.actors, Path(work))
        out["ray"] = r
        print(f"\n| rows | local rows/s | ray rows/s ({r['actors']} actors) | ray / local | driver peak RSS MiB "
              "(local / ray) | ids complete | label agreement | max prob diff |")
        print("|---|---|---|---|---|---|---|---|")
        print(f"| {r['rows']:,} | {r['local_rows_per_s']:.0f} | {r['ray_rows_per_s']:.0f} | "
              f"{100 * r['ray_vs_local']:.0f}% | {r['local_peak_rss_mib']:.0f} / {r['ray_driver_peak_rss_mib']:.0f} | "
              f"{r['ids_complete_and_unique']} | {r['label_agreement']:.6f} | {r['max_prob_diff']:.2e} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
