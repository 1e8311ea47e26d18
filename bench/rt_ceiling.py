"""Is the Rotten Tomatoes default limited by seed noise or by the encoder? Offline checks.

Reads the ``default-seedN.npz`` files of ``bench/rt_seeds.py --probs DIR`` and answers
three questions without training anything new:

1. **Seed ensembles.** If the seeds' encoders erred on different texts, averaging them
   would gain a lot; if they err on the same texts, the limit is the encoder itself.
2. **TF-IDF refitted on train + dev.** The dev split chooses the blend weight; the cheap
   member could then learn from the dev rows too (the weight stays the dev-chosen one).
3. **A third blend member** (needs ``--model-dir``, the default model trained with the
   seed of one of the files, e.g. ``lmworks train ... --output runs/rt-s42``): logistic
   regression on the *pretrained* encoder's sentence embeddings, and a k-nearest-neighbour
   vote over the *fine-tuned* encoder's embeddings of the training texts. Weights are
   chosen on dev by log-loss over a 2-D grid, as the library chooses its one weight.

    .venv/bin/python bench/rt_ceiling.py runs/rt_probs/default-seed*.npz --data data/rt --model-dir runs/rt-s42
"""

from __future__ import annotations

import argparse
import itertools
import re
import statistics
from pathlib import Path

import numpy as np
from blend_rules import EPS, accuracy, choose_weight, cross_validated, cv_splits, grid_rule, mix_log, neg_log_loss

from lmworks.backends.blend import WEIGHT_GRID
from lmworks.evaluation import mean_log_loss


def seed_of(path: Path) -> int:
    match = re.search(r"seed(\d+)", path.stem)
    if not match:
        raise SystemExit(f"{path}: no seedN in the file name")
    return int(match.group(1))


def mix_many(members: list[np.ndarray], weights: tuple[float, ...]) -> np.ndarray:
    """Weighted average of log-probabilities, renormalised (the library's rule for n members)."""
    z = sum(w * np.log(np.clip(p.astype(np.float64), EPS, 1)) for p, w in zip(members, weights))
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def best_weights(members: list[np.ndarray], y: np.ndarray) -> tuple[float, ...]:
    """Weights on the simplex grid with the lowest log-loss (ties to less weight off the encoder)."""
    best, best_loss = (1.0, 0.0, 0.0), np.inf
    for w1, w2 in itertools.product(WEIGHT_GRID, WEIGHT_GRID):
        if w1 + w2 > 1 + 1e-9:
            continue
        weights = (1 - w1 - w2, float(w1), float(w2))
        loss = mean_log_loss(mix_many(members, weights), y)
        if loss < best_loss - 1e-12:
            best, best_loss = weights, loss
    return best


def cv_accuracy(members: list[np.ndarray], y: np.ndarray) -> float:
    """Weights chosen on 4/5 of dev, accuracy on the other fifth (as ``blend_rules.py`` does)."""
    scores = []
    for fit, held in cv_splits(len(y)):
        weights = best_weights([m[fit] for m in members], y[fit])
        scores.append(accuracy(mix_many([m[held] for m in members], weights), y[held]))
    return float(np.mean(scores))


def seed_ensembles(runs: dict[int, dict]) -> None:
    seeds = sorted(runs)
    y = runs[seeds[0]]["test_y"]
    print("## 1. Seed ensembles of the encoder (test accuracy, encoder alone and blended)\n")
    print("| seeds | encoder alone | blended (log-prob, weight by dev log-loss) |")
    print("|---|---|---|")
    for k in range(1, len(seeds) + 1):
        alone, blended = [], []
        for combo in itertools.combinations(seeds, k):
            dev = mix_many([runs[s]["dev_enc"] for s in combo], (1 / k,) * k)
            test = mix_many([runs[s]["test_enc"] for s in combo], (1 / k,) * k)
            r = runs[combo[0]]
            w = choose_weight(mix_log, neg_log_loss, dev, r["dev_tfidf"], r["dev_y"])
            alone.append(accuracy(test, y))
            blended.append(accuracy(mix_log(test, r["test_tfidf"], w), y))
        label = "one seed (mean)" if k == 1 else f"{k} seeds averaged (mean over {len(alone)} combinations)"
        print(f"| {label} | {statistics.mean(alone):.4f} | {statistics.mean(blended):.4f} |")
    wrong = np.stack([runs[s]["test_enc"].argmax(1) != y for s in seeds])
    print(f"\nTest texts every seed's encoder gets wrong: {wrong.all(0).mean():.4f}; "
          f"any seed gets wrong: {wrong.any(0).mean():.4f}; one seed, mean: {wrong.mean():.4f}\n")


def refit_tfidf(runs: dict[int, dict], data: Path) -> None:
    import pandas as pd

    from lmworks.backends.tfidf import tfidf_pipeline
    from lmworks.training.config import TrainConfig

    frames = {s: pd.read_csv(data / f"{s}.csv") for s in ("train", "dev", "test")}
    labels = list(next(iter(runs.values()))["labels"])
    y = {s: np.array([labels.index(v) for v in f["label"]]) for s, f in frames.items()}
    texts = {s: list(f["text"]) for s, f in frames.items()}
    both = tfidf_pipeline(TrainConfig()).fit(texts["train"] + texts["dev"], np.r_[y["train"], y["dev"]])
    refit = both.predict_proba(texts["test"])
    print("## 2. TF-IDF refitted on train + dev, the dev-chosen weight kept (test accuracy)\n")
    print("| seed | weight | TF-IDF on train (the default) | TF-IDF on train + dev |")
    print("|---|---|---|---|")
    default, new = [], []
    for s, r in sorted(runs.items()):
        w = choose_weight(mix_log, neg_log_loss, r["dev_enc"], r["dev_tfidf"], r["dev_y"])
        default.append(accuracy(mix_log(r["test_enc"], r["test_tfidf"], w), r["test_y"]))
        new.append(accuracy(mix_log(r["test_enc"], refit, w), r["test_y"]))
        print(f"| {s} | {w:g} | {default[-1]:.4f} | {new[-1]:.4f} |")
    print(f"| mean | | {statistics.mean(default):.4f} | {statistics.mean(new):.4f} |\n")
    print(f"TF-IDF alone on test: train {accuracy(runs[min(runs)]['test_tfidf'], y['test']):.4f}, "
          f"train + dev {accuracy(refit, y['test']):.4f}\n")


def third_member(run: dict, data: Path, model_dir: Path) -> None:
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from lmworks.embed import SentenceEncoder

    frames = {s: pd.read_csv(data / f"{s}.csv") for s in ("train", "dev", "test")}
    labels = list(run["labels"])
    y_train = np.array([labels.index(v) for v in frames["train"]["label"]])
    members: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    frozen = SentenceEncoder("minilm")
    emb = {s: frozen.encode(list(f["text"])) for s, f in frames.items()}
    lr = LogisticRegression(C=1.0, max_iter=3000).fit(emb["train"], y_train)
    members["logistic regression on the pretrained encoder's embeddings"] = (
        lr.predict_proba(emb["dev"]), lr.predict_proba(emb["test"]))
    tuned = SentenceEncoder(model_dir)
    emb = {s: tuned.encode(list(f["text"])) for s, f in frames.items()}
    for k in (16, 64):
        def vote(queries: np.ndarray, k: int = k, temperature: float = 0.1) -> np.ndarray:
            sims = queries @ emb["train"].T
            top = np.argpartition(-sims, k, axis=1)[:, :k]
            weights = np.exp(np.take_along_axis(sims, top, 1) / temperature)
            proba = np.stack([(weights * (y_train[top] == c)).sum(1) for c in range(len(labels))], 1) + 1e-3
            return proba / proba.sum(1, keepdims=True)

        members[f"{k}-nearest-neighbour vote, fine-tuned embeddings"] = (vote(emb["dev"]), vote(emb["test"]))
    two = [run["dev_enc"], run["dev_tfidf"]]
    w = choose_weight(mix_log, neg_log_loss, *two, run["dev_y"])
    print("## 3. A third blend member (one seed; weights by dev log-loss)\n")
    print("| third member | its own test accuracy | weights (encoder, TF-IDF, third) | dev, 5-fold CV | test |")
    print("|---|---|---|---|---|")
    print(f"| none (the default) | – | {1 - w:g}, {w:g}, 0 | "
          f"{cross_validated(grid_rule(mix_log, neg_log_loss), *two, run['dev_y']):.4f} | "
          f"{accuracy(mix_log(run['test_enc'], run['test_tfidf'], w), run['test_y']):.4f} |")
    for name, (dev, test) in members.items():
        dev_members = [*two, dev]
        weights = best_weights(dev_members, run["dev_y"])
        blended = mix_many([run["test_enc"], run["test_tfidf"], test], weights)
        print(f"| {name} | {accuracy(test, run['test_y']):.4f} | {', '.join(f'{x:.2g}' for x in weights)} | "
              f"{cv_accuracy(dev_members, run['dev_y']):.4f} | {accuracy(blended, run['test_y']):.4f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path, help="default-seedN.npz files of bench/rt_seeds.py --probs")
    parser.add_argument("--data", type=Path, default=Path("data/rt"), help="train/dev/test.csv of the split")
    parser.add_argument("--model-dir", type=Path, help="the default model trained with one file's seed")
    parser.add_argument("--model-seed", type=int, default=42, help="the seed --model-dir was trained with")
    args = parser.parse_args()
    runs = {seed_of(f): dict(np.load(f)) for f in args.files}
    seed_ensembles(runs)
    refit_tfidf(runs, args.data)
    if args.model_dir:
        if args.model_seed not in runs:
            raise SystemExit(f"--model-seed {args.model_seed}: no probabilities file for that seed")
        third_member(runs[args.model_seed], args.data, args.model_dir)


if __name__ == "__main__":
    main()
