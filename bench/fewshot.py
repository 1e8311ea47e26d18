"""Few labels per class: the few-shot recipe against plain fine-tuning and TF-IDF.

For 8, 16, 32, 64, 128 and 256 labels per class, --draws random draws of that many training rows per class
(seeded), each method trained on the same draw and scored on a fixed test split none of them sees:

* recipe: ``TextClassifier(few_shot="on")``: a supervised contrastive stage on MiniLM, then a logistic-regression head;
* plain fine-tuning: ``few_shot="off"``, MiniLM with the mean head, given a few-shot schedule (batch 16,
  at least 50 optimiser steps, no dev split: there is nothing to spare), else lmworks' defaults;
* TF-IDF + logistic regression (``model="tfidf"``).

Data: Rotten Tomatoes (two classes, the train/test split of ``lmworks datasets``) and Noto emoji names
to their nine categories (multi-class; ``npm pack emoji-datasource-google@16.0.0`` and ``tar xzf`` it,
then pass --emoji DIR; 20 % of each category held out as the test split). A size larger than a set's
smallest class is skipped for that set (emoji stops at 64: one category has 68 training rows).
Accuracy mean ± sd over draws, and train seconds. The crossover (the smallest size where the recipe's
accuracy gain over plain fine-tuning, averaged over the sets that reach that size, is no longer
positive) is the default ``few_shot_below``.

    .venv/bin/python bench/fewshot.py [--draws 5] [--sizes 8,16,32,64,128,256] [--emoji DIR] [--results]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lmworks import TextClassifier  # noqa: E402
from lmworks.datasets import load_rotten_tomatoes, split_frame  # noqa: E402

METHODS = ("recipe", "plain", "tfidf")


def rotten_tomatoes() -> tuple[pd.DataFrame, pd.DataFrame]:
    parts = split_frame(load_rotten_tomatoes(), seed=0)
    return parts["train"].reset_index(drop=True), parts["test"].reset_index(drop=True)


def emoji(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    root = folder / "package" if (folder / "package" / "emoji.json").is_file() else folder
    entries = json.loads((root / "emoji.json").read_text(encoding="utf-8"))
    frame = pd.DataFrame([{"text": (e.get("name") or e["short_name"].replace("_", " ")).lower(),
                           "label": e["category"]} for e in entries])
    frame = frame[frame["label"] != "Component"].drop_duplicates("text").reset_index(drop=True)
    test = frame.groupby("label", group_keys=False).sample(frac=0.2, random_state=0)
    return frame.drop(test.index).reset_index(drop=True), test.reset_index(drop=True)


def draw(train: pd.DataFrame, per_class: int, seed: int) -> pd.DataFrame:
    return pd.concat([g.sample(per_class, random_state=seed) for _, g in train.groupby("label")])


def make(method: str, n: int, seed: int) -> TextClassifier:
    if method == "tfidf":
        return TextClassifier("tfidf", seed=seed)
    if method == "recipe":
        return TextClassifier("minilm", few_shot="on", seed=seed)
    epochs = max(2, math.ceil(50 / math.ceil(n / 16)))
    return TextClassifier("minilm", few_shot="off", seed=seed, batch_size=16, epochs=epochs, eval_fraction=0.0,
                          blend="none")


def run(name: str, train: pd.DataFrame, test: pd.DataFrame, sizes: list[int], draws: int) -> dict:
    out: dict = {}
    smallest = int(train["label"].value_counts().min())
    for size in sizes:
        if size > smallest:
            print(f"{name}: skipping {size}/class (its smallest class has {smallest} training rows)", flush=True)
            continue
        for method in METHODS:
            out[(size, method)] = []
        for seed in range(draws):
            few = draw(train, size, seed)
            for method in METHODS:
                start = time.perf_counter()
                clf = make(method, len(few), seed).fit(few["text"].tolist(), few["label"].tolist(), progress=False)
                seconds = time.perf_counter() - start
                accuracy = clf.evaluate(test["text"].tolist(), test["label"].tolist())["accuracy"]
                out[(size, method)].append((accuracy, seconds))
                print(f"{name} {size}/class draw {seed} {method}: {accuracy:.3f} ({seconds:.0f} s)", flush=True)
    return out


def cell(values: list[tuple[float, float]]) -> str:
    acc = [a for a, _ in values]
    sd = statistics.stdev(acc) if len(acc) > 1 else 0.0
    return f"{statistics.mean(acc):.3f} ± {sd:.3f} ({statistics.mean(s for _, s in values):.0f} s)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--sizes", default="8,16,32,64,128,256")
    parser.add_argument("--emoji", type=Path, help="unpacked emoji-datasource-google package")
    parser.add_argument("--only", default="rt,emoji")
    parser.add_argument("--results", action="store_true", help="write docs/results/fewshot.json")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    sets = {}
    if "rt" in args.only:
        sets["Rotten Tomatoes"] = rotten_tomatoes()
    if "emoji" in args.only and args.emoji:
        sets["emoji categories"] = emoji(args.emoji)
    rows, values, gains = [], {}, {}
    for name, (train, test) in sets.items():
        found = run(name, train, test, sizes, args.draws)
        for size in sorted({size for size, _ in found}):
            means = {m: statistics.mean(a for a, _ in found[(size, m)]) for m in METHODS}
            rows.append([name, size, *(cell(found[(size, m)]) for m in METHODS)])
            values[f"{name}_{size}"] = means
            gains.setdefault(size, []).append(means["recipe"] - means["plain"])
    values.update(crossover_values(gains))
    columns = ["data", "labels per class", "recipe (contrastive + head)", "plain fine-tuning", "TF-IDF"]
    for row in rows:
        print(" | ".join(map(str, row)))
    print("recipe minus plain, mean over sets, per size:", values["gain"])
    print("few_shot_below (the crossover):", values["few_shot_below"])
    if args.results:
        from results import record

        record("fewshot", title="Few labels per class: the few-shot recipe vs plain fine-tuning vs TF-IDF",
               what=f"test accuracy, mean ± sd over {args.draws} random draws per size (train seconds), MiniLM on "
                    "2 cores; fixed test splits", baseline="plain fine-tuning and TF-IDF on the same draws",
               columns=columns, rows=rows, values=values, notes=crossover_notes(values))


def crossover_values(gains: dict[int, list[float]]) -> dict[str, Any]:
    """The recipe's mean gain over plain fine-tuning per size measured, and the first size where it is gone."""
    gain = {size: round(statistics.mean(gains[size]), 4) for size in sorted(gains)}
    gone = [size for size in gain if gain[size] <= 0]
    return {"gain": gain, "few_shot_below": gone[0] if gone else max(gain), "won_everywhere": not gone}


def crossover_notes(values: dict[str, Any]) -> list[str]:
    gains = ", ".join(f"{size}: {g:+.3f}" for size, g in values["gain"].items())
    below = values["few_shot_below"]
    tail = "(the recipe won at every size measured)" if values["won_everywhere"] else \
        "(the first size where its mean gain is gone)"
    return [f"recipe minus plain fine-tuning, accuracy averaged over the sets, per labels per class: {gains}",
            f"few_shot='auto' uses the recipe below {below} labels per class {tail}"]


if __name__ == "__main__":
    main()
