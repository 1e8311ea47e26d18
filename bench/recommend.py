"""MovieLens-100K: lmworks' text two-tower against popularity and implicit ALS, same run, same splits.

Usage: python bench/recommend.py [--seeds 0 1 2] [--json FILE]

Protocols (see lmworks.recommend.split):
  leave-last-out  each user's last positive (rating >= 4) is the test item, full ranking over
                  all 1,682 items, items the user rated in training excluded;
  cold-start      20% of the items never appear in training; rank the test half of them.
Baselines are fitted on the same training data; ALS's factors/regularisation/alpha are chosen
on the validation set (27-point grid), then refitted with validation interactions, exactly
as lmworks sees them as history at test time. lmworks: mean and spread over --seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from lmworks.recommend import TextRecommender, align_items, build_dataset, read_interactions, read_items  # noqa: E402
from lmworks.recommend.baselines import ImplicitALS, Popularity  # noqa: E402
from lmworks.recommend.metrics import evaluate_ranking  # noqa: E402
from lmworks.recommend.recommender import encode_items  # noqa: E402

METRICS = ("hr@10", "ndcg@10", "mrr", "coverage")


def movielens() -> tuple[Path, Path]:
    from lmworks.datasets import movielens_100k_files

    return movielens_100k_files()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--json", help="write all numbers here")
    args = parser.parse_args()
    inter_path, item_path = movielens()
    interactions = read_interactions(inter_path)
    catalogue = align_items(interactions, read_items(item_path))
    started = time.perf_counter()
    text = encode_items(catalogue.texts, "minilm", 64)
    encode_s = time.perf_counter() - started
    print(f"MovieLens-100K: {len(interactions)} ratings, {len(interactions.positives)} positives, "
          f"{len(catalogue)} items; item texts encoded in {encode_s:.1f} s", flush=True)
    results: dict = {"encode_seconds": round(encode_s, 1), "protocols": {}}
    for protocol in ("leave-last-out", "cold-start"):
        data = build_dataset(interactions, catalogue, protocol=protocol, seed=0)
        current = data.with_valid()
        seen = current.seen_matrix()
        rows = {"popularity": evaluate_ranking(Popularity().fit(current).scores, data.test, seen)}
        t = time.perf_counter()
        als = ImplicitALS.tuned(data, seed=0)
        rows["implicit-als"] = evaluate_ranking(ImplicitALS(**als.params, seed=0).fit(current).scores,
                                                data.test, seen)
        rows["implicit-als"]["params"] = als.params
        rows["implicit-als"]["seconds"] = round(time.perf_counter() - t, 1)
        runs = []
        for seed in args.seeds:
            t = time.perf_counter()
            rec = TextRecommender(seed=seed).fit(data, text_vectors=text, progress=False)
            fit_s = time.perf_counter() - t
            runs.append({**rec.evaluate("test"), "seconds": round(fit_s, 1), "best_epoch": rec.training_["best_epoch"]})
            print(f"  {protocol} seed {seed}: ndcg@10 {runs[-1]['ndcg@10']:.4f} in {fit_s:.0f} s", flush=True)
        rows["lmworks"] = {m: statistics.mean(r[m] for r in runs) for m in (*METRICS, "seconds")}
        rows["lmworks"]["spread"] = {m: statistics.pstdev(r[m] for r in runs) for m in METRICS}
        rows["lmworks"]["runs"] = runs
        results["protocols"][protocol] = {"users": data.test and len(data.test.relevant),
                                          "candidates": len(data.test.candidates or data.item_ids), "rows": rows}
        print(f"\n{protocol}: {len(data.test.relevant)} test users, "
              f"{len(data.test.candidates or data.item_ids)} candidate items")
        print(f"{'model':<26}" + "".join(f"{m:>10}" for m in METRICS))
        for name, row in rows.items():
            label = f"{name} (mean of {len(runs)})" if name == "lmworks" else name
            print(f"{label:<26}" + "".join(f"{row[m]:>10.4f}" for m in METRICS))
        spread = rows["lmworks"]["spread"]
        print(f"{'  lmworks spread (sd)':<26}" + "".join(f"{spread[m]:>10.4f}" for m in METRICS))
        pop, als_ndcg, ours = (rows[n]["ndcg@10"] for n in ("popularity", "implicit-als", "lmworks"))
        print(f"NDCG@10 lmworks / popularity = {ours / max(pop, 1e-9):.2f}x, lmworks / ALS = "
              f"{ours / max(als_ndcg, 1e-9):.2f}x; lmworks fit {rows['lmworks']['seconds']:.0f} s per seed\n",
              flush=True)
        if protocol == "leave-last-out":
            results["latency"] = latency(rec, data)
    lat = results["latency"]
    print(f"for-user latency (in process, k=10, {lat['requests']} users): p50 {lat['p50_ms']:.2f} ms, "
          f"p99 {lat['p99_ms']:.2f} ms; CLI process wall time {lat['cli_seconds']:.2f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


def latency(rec: TextRecommender, data) -> dict:
    """Time ``recommend`` for every user after a save/load round trip; also one CLI call."""
    import subprocess

    with tempfile.TemporaryDirectory() as tmp:
        rec.save(Path(tmp) / "rec")
        loaded = TextRecommender.load(Path(tmp) / "rec")
        times = []
        for user in data.user_ids:
            t = time.perf_counter()
            loaded.recommend(user, k=10)
            times.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "lmworks", "recommend", "for-user", str(Path(tmp) / "rec"),
                        data.user_ids[0]], check=True, capture_output=True)
        cli = time.perf_counter() - t
    return {"requests": len(times), "p50_ms": float(np.percentile(times, 50)),
            "p99_ms": float(np.percentile(times, 99)), "cli_seconds": cli}


if __name__ == "__main__":
    sys.exit(main())
