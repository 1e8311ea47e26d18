"""Compare rules for blending the fine-tuned encoder with TF-IDF, offline.

Reads the ``NAME-seedN.npz`` files that ``bench/rt_seeds.py --probs DIR`` writes (dev
and test probabilities of both models per training seed) and scores each rule two ways:

* **dev, cross-validated**: the rule's weight is chosen on 4/5 of the dev split and scored
  on the other fifth (5 folds, repeated with 10 shuffles); this is what a rule would be
  chosen by, since it never looks at the test split;
* **test**: the weight chosen on the whole dev split, scored on the test split.

    .venv/bin/python bench/blend_rules.py runs/rt_probs/default-seed*.npz
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lmworks.backends.blend import WEIGHT_GRID as GRID
from lmworks.backends.blend import mix
from lmworks.evaluation import mean_log_loss

EPS = 1e-7


def mix_proba(a: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
    return mix(a, b, w, kind="proba")


def mix_log(a: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
    return mix(a, b, w, kind="log")  # the library's rule itself


def accuracy(p: np.ndarray, y: np.ndarray) -> float:
    return float((p.argmax(1) == y).mean())


def neg_log_loss(p: np.ndarray, y: np.ndarray) -> float:
    return -mean_log_loss(p, y)


def macro_f1(p: np.ndarray, y: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y, p.argmax(1), average="macro"))


Rule = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def choose_weight(mixer, objective, a: np.ndarray, b: np.ndarray, y: np.ndarray) -> float:
    """The grid weight maximising ``objective`` (ties to the smaller weight, as the library does)."""
    best_w, best = 0.0, -np.inf
    for w in GRID:
        score = objective(mixer(a, b, float(w)), y)
        if score > best + 1e-12:
            best_w, best = float(w), score
    return best_w


def grid_rule(mixer, objective) -> Rule:
    """Choose the weight on the fitting rows, apply it to the others."""
    return lambda fa, fb, fy, ta, tb: mixer(ta, tb, choose_weight(mixer, objective, fa, fb, fy))


def fixed_rule(mixer, w: float) -> Rule:
    return lambda fa, fb, fy, ta, tb: mixer(ta, tb, w)


def stacking_rule(c: float) -> Rule:
    """Logistic regression on both models' log-probabilities, fitted on the fitting rows."""

    def rule(fa, fb, fy, ta, tb):
        from sklearn.linear_model import LogisticRegression

        def features(a, b):
            return np.hstack([np.log(np.clip(a, EPS, 1)), np.log(np.clip(b, EPS, 1))])

        model = LogisticRegression(C=c, max_iter=1000).fit(features(fa, fb), fy)
        return model.predict_proba(features(ta, tb))

    return rule


RULES: dict[str, Rule] = {
    "encoder alone": fixed_rule(mix_proba, 0.0),
    "probability average, weight by dev macro-F1 (the rule until stop 12)": grid_rule(mix_proba, macro_f1),
    "probability average, weight by dev log-loss": grid_rule(mix_proba, neg_log_loss),
    "log-probability average, weight by dev macro-F1": grid_rule(mix_log, macro_f1),
    "log-probability average, weight by dev log-loss": grid_rule(mix_log, neg_log_loss),
    "probability average, fixed weight 0.5": fixed_rule(mix_proba, 0.5),
    "stacking: logistic regression on both log-probabilities (C=1)": stacking_rule(1.0),
}


def cv_splits(n: int, folds: int = 5, repeats: int = 10):
    """(fit, held) index pairs: ``folds``-fold splits of ``n`` rows, over ``repeats`` shuffles."""
    for r in range(repeats):
        order = np.random.default_rng(r).permutation(n)
        for k in range(folds):
            held = order[k::folds]
            yield np.setdiff1d(order, held), held


def cross_validated(rule: Rule, a: np.ndarray, b: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean([accuracy(rule(a[fit], b[fit], y[fit], a[held], b[held]), y[held])
                          for fit, held in cv_splits(len(y))]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args()
    runs = [dict(np.load(f)) for f in args.files]
    print(f"{len(runs)} run(s): {', '.join(f.stem for f in args.files)}\n")
    print("| rule | dev accuracy, 5-fold CV (mean over runs) | test accuracy per run | test mean (sd) |")
    print("|---|---|---|---|")
    for name, rule in RULES.items():
        cv = [cross_validated(rule, r["dev_enc"], r["dev_tfidf"], r["dev_y"]) for r in runs]
        test = [accuracy(rule(r["dev_enc"], r["dev_tfidf"], r["dev_y"], r["test_enc"], r["test_tfidf"]), r["test_y"])
                for r in runs]
        if name == "log-probability average, weight by dev log-loss":
            weights = [choose_weight(mix_log, neg_log_loss, r["dev_enc"], r["dev_tfidf"], r["dev_y"]) for r in runs]
            name += f" (weights {' '.join(f'{w:g}' for w in weights)})"
        sd = statistics.stdev(test) if len(test) > 1 else 0.0
        print(f"| {name} | {statistics.mean(cv):.4f} | {' '.join(f'{t:.4f}' for t in test)} "
              f"| {statistics.mean(test):.4f} ({sd:.4f}) |")


if __name__ == "__main__":
    main()
