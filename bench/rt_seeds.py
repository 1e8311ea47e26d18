"""Seed spread of lmworks fine-tuning on Rotten Tomatoes, for the default and variants.

One test split of 1,276 texts moves by about a point between seeds, so a setting is
judged by its mean over seeds, not by one run. Each run trains on the train split,
selects on dev and is scored on the held-out test split (same split as
``bench/train_rotten_tomatoes.py``).

    .venv/bin/python bench/rt_seeds.py --seeds 1 2 3 --variant default \\
        --variant 'frozen-emb={"freeze_embeddings": true}' --jsonl runs/rt_seeds.jsonl

Every finished run is appended to ``--jsonl`` at once (a long sweep can be stopped and
read); the table at the end gives mean and standard deviation per variant.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def parse_variant(text: str) -> tuple[str, dict]:
    name, _, overrides = text.partition("=")
    return name, (json.loads(overrides) if overrides else {})


def run(data, overrides: dict, seed: int, probs_dir: Path | None = None, name: str = "") -> dict:
    from sklearn.metrics import accuracy_score

    from lmworks import TextClassifier

    start = time.perf_counter()
    clf = TextClassifier("minilm", seed=seed, **overrides)
    clf.fit(data["train"].texts, data["train"].labels, data["dev"].texts, data["dev"].labels, progress=False)
    wall = time.perf_counter() - start
    blended = clf.evaluate(data["test"].texts, data["test"].labels)["accuracy"]
    backend = clf.backend_
    primary = getattr(backend, "primary", backend)
    alone = accuracy_score(data["test"].labels, clf.decide(primary.predict_proba(data["test"].texts)))
    info = clf.train_info_
    if probs_dir is not None:
        # Both models' dev and test probabilities, so blending rules can be compared offline.
        import numpy as np

        from lmworks.backends.tfidf import TfidfBackend

        def encode(labels):
            return np.array([clf.labels_.index(y) for y in labels])

        # TF-IDF is deterministic and trains in seconds: fit it here whatever weight dev chose.
        secondary = TfidfBackend()
        secondary.fit(data["train"].texts, encode(data["train"].labels), labels=clf.labels_, config=clf.config,
                      eval_texts=None, score_fn=None)
        probs_dir.mkdir(parents=True, exist_ok=True)
        np.savez(probs_dir / f"{name}-seed{seed}.npz", labels=np.array(clf.labels_),
                 dev_y=encode(data["dev"].labels), test_y=encode(data["test"].labels),
                 dev_enc=primary.predict_proba(data["dev"].texts), test_enc=primary.predict_proba(data["test"].texts),
                 dev_tfidf=secondary.predict_proba(data["dev"].texts),
                 test_tfidf=secondary.predict_proba(data["test"].texts))
    return {"seed": seed, "test_accuracy": blended, "encoder_alone": alone,
            "blend_weight": (info.get("blend") or {}).get("weight"),
            "samples_per_s": info.get("samples_per_second"), "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--variant", action="append", default=[],
                        help='NAME or NAME={"option": value} (TrainConfig fields); repeatable')
    parser.add_argument("--split-seed", type=int, default=13)
    parser.add_argument("--jsonl", type=Path, help="append each finished run here")
    parser.add_argument("--probs", type=Path, help="save dev/test probabilities of the encoder and TF-IDF "
                        "per run here (NAME-seedN.npz)")
    args = parser.parse_args()
    variants = [parse_variant(v) for v in (args.variant or ["default"])]

    from train_rotten_tomatoes import load_split  # same folder: the benchmark's own split

    data = load_split(None, args.split_seed)
    results: dict[str, list[dict]] = {}
    for name, overrides in variants:
        for seed in args.seeds:
            row = {"variant": name, "overrides": overrides, **run(data, overrides, seed, args.probs, name)}
            results.setdefault(name, []).append(row)
            print(json.dumps(row), flush=True)
            if args.jsonl:
                args.jsonl.parent.mkdir(parents=True, exist_ok=True)
                with args.jsonl.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")

    def fmt(values: list[float]) -> str:
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.4f} ({sd:.4f})"

    print("\n| variant | seeds | test accuracy, mean (sd) | encoder alone, mean (sd) | samples/s | wall min |")
    print("|---|---|---|---|---|---|")
    for name, rows in results.items():
        print(f"| {name} | {' '.join(str(r['seed']) for r in rows)} | {fmt([r['test_accuracy'] for r in rows])} "
              f"| {fmt([r['encoder_alone'] for r in rows])} "
              f"| {statistics.mean(r['samples_per_s'] for r in rows):.1f} "
              f"| {statistics.mean(r['wall_s'] for r in rows) / 60:.1f} |")


if __name__ == "__main__":
    main()
