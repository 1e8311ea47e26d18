"""Domain-adaptive MLM pretraining vs none, at small label budgets, over seeds.

Usage: python bench/pretrain.py [--data data/rt] [--budgets 200 1000] [--seeds 0 1 2] [--json FILE]

--data is a folder with train/dev/test.csv from `lmworks datasets export` (rotten_tomatoes,
chinese_reviews). Unlabelled text for pretraining: the texts of the training split, labels
ignored (never the dev or test texts).
For each budget and seed, a stratified sample of that many labelled training texts fine-tunes
(a) the shipped MiniLM and (b) the pretrained encoder, with the same settings; a 200-text dev
sample picks the checkpoint; every number is accuracy on the whole held-out test split.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pandas as pd  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from lmworks import TextClassifier  # noqa: E402
from lmworks.pretrain import PretrainConfig, pretrain  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/rt")
    parser.add_argument("--budgets", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--encoder", default="runs/rt-dapt", help="where the pretrained encoder goes (reused)")
    parser.add_argument("--pretrain-epochs", type=float, default=1.0)
    parser.add_argument("--pretrain-lr", type=float, default=5e-5)
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--json")
    args = parser.parse_args()
    data = Path(args.data)
    train, dev, test = (pd.read_csv(data / f"{part}.csv") for part in ("train", "dev", "test"))
    encoder = Path(args.encoder)
    out: dict = {"pretraining": None, "rows": []}
    if not (encoder / "config.json").is_file():
        info = pretrain(train["text"].tolist(), encoder,
                        PretrainConfig(epochs=args.pretrain_epochs, lr=args.pretrain_lr, max_length=64,
                                       whole_word_masking=True),
                        progress=False)
        print(f"pretrained on {info['texts']} texts: MLM loss {info['first_loss']} -> {info['last_loss']} "
              f"in {info['seconds']:.0f} s", flush=True)
    out["pretraining"] = json.loads((encoder / "pretraining.json").read_text())
    dev_small, _ = train_test_split(dev, train_size=200, stratify=dev["label"], random_state=0)
    for budget in args.budgets:
        for seed in args.seeds:
            labelled, _ = train_test_split(train, train_size=budget, stratify=train["label"], random_state=seed)
            for name, model in (("minilm", "minilm"), ("minilm+dapt", str(encoder))):
                started = time.perf_counter()
                clf = TextClassifier(model, epochs=args.epochs, batch_size=16, max_length=64, blend="none",
                                     seed=seed, patience=0)
                clf.fit(labelled["text"].tolist(), labelled["label"].tolist(), dev_small["text"].tolist(),
                        dev_small["label"].tolist(), progress=False)
                accuracy = clf.evaluate(test["text"].tolist(), test["label"].tolist())["accuracy"]
                row = {"budget": budget, "seed": seed, "encoder": name, "test_accuracy": accuracy,
                       "seconds": round(time.perf_counter() - started)}
                out["rows"].append(row)
                print(f"budget {budget} seed {seed} {name:<12} test accuracy {accuracy:.4f} ({row['seconds']} s)",
                      flush=True)
    print(f"\n{'labels':>7} {'encoder':<13} {'mean':>8} {'sd':>8}")
    summary = {}
    for budget in args.budgets:
        for name in ("minilm", "minilm+dapt"):
            accs = [r["test_accuracy"] for r in out["rows"] if r["budget"] == budget and r["encoder"] == name]
            summary[f"{budget}/{name}"] = (statistics.mean(accs), statistics.pstdev(accs))
            print(f"{budget:>7} {name:<13} {statistics.mean(accs):>8.4f} {statistics.pstdev(accs):>8.4f}")
    out["summary"] = summary
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
