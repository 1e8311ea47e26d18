"""Active learning: how many labels does each query strategy need, is the estimate honest, is the page fast?

1. Learning curves. A simulated annotator (the true labels as oracle) labels through
   ``LabelProject`` itself, the code the page calls, on the train split of Rotten Tomatoes
   (two classes) and of BBC News (five topics): the default strategy (margin), entropy and
   random sampling (the baseline), each over --seeds seeds, the loop model refitted every
   --step labels. At each label count the loop model is scored on the test split, which no
   strategy ever sees. Audit sampling is off here so every label goes to the strategy.
2. Honest estimate. With the audit sample on (every 10th text random, kept out of training),
   the page's accuracy estimate and its 95 % interval at the end, against the test accuracy.
3. Latency. ``GET /api/next`` over real HTTP (uvicorn on 127.0.0.1) while labels are posted and
   the model retrains every 10 labels on the full RT pool: p50/p95 while a retrain is running,
   against the same loop with retraining in the request (``background=False``, the baseline).

    .venv/bin/python bench/active.py [--seeds 5] [--budget 1000] [--results]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lmworks.datasets import load_bbc_news, load_rotten_tomatoes, split_frame  # noqa: E402
from lmworks.label import LabelConfig, LabelProject, PoolModel  # noqa: E402

CURVE_POINTS = (50, 100, 200, 300, 400, 500, 600, 800, 1000)


def load(name: str):
    frame = load_rotten_tomatoes() if name == "rt" else load_bbc_news()
    parts = split_frame(frame, seed=0)
    return parts["train"].reset_index(drop=True), parts["test"].reset_index(drop=True)


def simulate(workdir: Path, pool_file: Path, model: PoolModel, truth: dict[str, str], test_features, test_labels,
             config: LabelConfig, points: list[int]) -> dict[int, float]:
    """Label through a real project until the last point; test accuracy at each point."""
    project = LabelProject.start(workdir, pool_file, config, background=False, model=model)
    curve, labelled = {}, 0
    while labelled < points[-1]:
        card = project.next("oracle")
        if card is None:
            break
        project.label(card["id"], "oracle", truth[card["text"]])
        labelled += 1
        if labelled in points:
            project.retrain()
            predicted = project.model.proba(project.classifier, test_features).argmax(axis=1)
            curve[labelled] = float(np.mean([config.labels[i] == y for i, y in zip(predicted, test_labels)]))
    final = project.status()["estimate"]
    project.close()
    curve["estimate"] = final  # type: ignore[assignment]
    return curve


def curves(name: str, args) -> tuple[list[list], dict]:
    train, test = load(name)
    labels = sorted(set(train["label"]))
    truth = dict(zip(train["text"], train["label"]))
    # A quarter of the pool at most: beyond it every strategy has seen most of what there is to see.
    points = [p for p in CURVE_POINTS if p <= min(args.budget, len(train) // 4)]
    rows, values = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        pool_file = Path(tmp) / "pool.csv"
        train[["text"]].to_csv(pool_file, index=False)
        model = PoolModel(train["text"].tolist(), labels, seed=0)
        test_features = model.transform(test["text"].tolist())
        found: dict[str, list[dict]] = {}
        for strategy in args.strategies.split(","):
            for seed in range(args.seeds):
                config = LabelConfig(labels=labels, strategy=strategy, retrain_every=args.step, audit_every=0,
                                     seed=seed)
                start = time.perf_counter()
                curve = simulate(Path(tmp) / f"{strategy}-{seed}", pool_file, model, truth, test_features,
                                 test["label"].tolist(), config, points)
                found.setdefault(strategy, []).append(curve)
                print(f"  {name} {strategy} seed {seed}: " + ", ".join(f"{p}:{curve[p]:.3f}" for p in points)
                      + f" ({time.perf_counter() - start:.0f} s)", flush=True)
        for strategy, runs in found.items():
            means = [statistics.mean(r[p] for r in runs) for p in points]
            sds = [statistics.stdev(r[p] for r in runs) if len(runs) > 1 else 0.0 for p in points]
            rows.append([name, strategy] + [f"{m:.3f} ± {s:.3f}" for m, s in zip(means, sds)])
            values[f"{name}_{strategy}"] = [round(m, 4) for m in means]
        random_final = values[f"{name}_random"][-1]
        default = values[f"{name}_margin"]
        reached = next((p for p, m in zip(points, default) if m >= random_final), None)
        values[f"{name}_points"] = points
        values[f"{name}_margin_labels_to_random_final"] = reached
        share = f"{reached / points[-1]:.0%}" if reached else "not within the budget"
        print(f"  {name}: random reaches {random_final:.3f} at {points[-1]} labels; margin reaches it at "
              f"{reached} labels ({share})", flush=True)
        values[f"{name}_estimate"] = honest_estimate(Path(tmp), pool_file, model, truth, test_features, test, labels,
                                                     points[-1], args)
    return rows, values


def honest_estimate(tmp: Path, pool_file, model, truth, test_features, test, labels, budget, args) -> dict:
    """The page's audit estimate at the end of a run, against the test accuracy of the same model."""
    covered, gaps = 0, []
    for seed in range(args.seeds):
        config = LabelConfig(labels=labels, retrain_every=args.step, audit_every=10, seed=seed)
        curve = simulate(tmp / f"audit-{seed}", pool_file, model, truth, test_features, test["label"].tolist(),
                         config, [budget])
        estimate, actual = curve["estimate"], curve[budget]
        covered += estimate["low"] <= actual <= estimate["high"]
        gaps.append(estimate["accuracy"] - actual)
        print(f"    audit seed {seed}: estimate {estimate['accuracy']:.3f} [{estimate['low']:.3f}, "
              f"{estimate['high']:.3f}] on {estimate['audited']} texts; test {actual:.3f}", flush=True)
    return {"runs": args.seeds, "interval_covers_test": covered, "mean_gap": round(statistics.mean(gaps), 4)}


def latency(args) -> dict:
    """p50/p95 of GET /api/next while retrains run, background vs in-request retraining."""
    import httpx

    from lmworks.label.service import create_label_app
    from lmworks.serve.runner import BackgroundServer

    train, _ = load("rt")
    truth = dict(zip(train["text"], train["label"]))
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        pool_file = Path(tmp) / "pool.csv"
        train[["text"]].to_csv(pool_file, index=False)
        model = PoolModel(train["text"].tolist(), sorted(set(train["label"])), seed=0)
        for mode, background in (("background retrain (lmworks)", True), ("retrain in the request", False)):
            config = LabelConfig(labels=sorted(set(train["label"])), retrain_every=10, audit_every=10)
            project = LabelProject.start(Path(tmp) / mode.split()[0], pool_file, config, background=background,
                                         model=model)
            port = 8790 if background else 8791
            during, overall = [], []
            with BackgroundServer(create_label_app(project), port=port), httpx.Client() as client:
                base = f"http://127.0.0.1:{port}"
                for _ in range(args.latency_labels):
                    busy = project._worker is not None and project._worker.is_alive()
                    start = time.perf_counter()
                    card = client.get(f"{base}/api/next").json()
                    took = (time.perf_counter() - start) * 1000
                    overall.append(took)
                    if busy:
                        during.append(took)
                    start = time.perf_counter()
                    client.post(f"{base}/api/labels", json={"id": card["id"], "label": truth[card["text"]]})
                    if not background:
                        during.append((time.perf_counter() - start) * 1000)  # the label request that retrains
                project.close()
            out[mode] = {"p50": float(np.percentile(overall, 50)), "p95": float(np.percentile(overall, 95)),
                         "p95_during_retrain": float(np.percentile(during, 95)) if during else None,
                         "requests_during_retrain": len(during)}
            print(f"  {mode}: next p50 {out[mode]['p50']:.1f} ms, p95 {out[mode]['p95']:.1f} ms; "
                  f"p95 while retraining {out[mode]['p95_during_retrain']} ms over {len(during)} requests",
                  flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default="rt,bbc")
    p.add_argument("--strategies", default="margin,entropy,random")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--budget", type=int, default=1000, help="labels per run (the last curve point)")
    p.add_argument("--step", type=int, default=10, help="refit the loop model every N labels (the page's default)")
    p.add_argument("--latency-labels", type=int, default=300)
    p.add_argument("--results", action="store_true", help="write docs/results/active.json")
    args = p.parse_args()
    logging.getLogger("lmworks").setLevel(logging.ERROR)
    rows, values = [], {}
    for name in args.datasets.split(","):
        found_rows, found_values = curves(name, args)
        rows += found_rows
        values.update(found_values)
    values["latency_ms"] = latency(args)
    points = [p for p in CURVE_POINTS if p <= args.budget]
    columns = ["dataset", "strategy"] + [f"{p} labels" for p in points]
    rows = [row + ["-"] * (len(columns) - len(row)) for row in rows]
    print("\n| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(map(str, row)) + " |")
    if args.results:
        from results import record

        rt = values.get("rt_margin_labels_to_random_final")
        record("active", title="Active learning: test accuracy vs labels, per query strategy",
               what=f"Simulated annotator through LabelProject, loop model (TF-IDF + logistic regression) refitted "
                    f"every {args.step} labels; mean ± sd over {args.seeds} seeds; test split never queried",
               baseline="random sampling, same loop and seeds", columns=columns, rows=rows, values=values,
               headline={"task": "Active learning, Rotten Tomatoes: labels to reach random sampling's accuracy "
                                 f"at {points[-1]}",
                         "lmworks": f"margin: {rt}" if rt else "margin: not reached",
                         "baseline": f"random: {points[-1]}"})


if __name__ == "__main__":
    main()
