"""Benchmark: lmworks fine-tuning vs a plain transformers Trainer vs TF-IDF on Rotten Tomatoes.

Same encoder (MiniLM), same epochs, learning rate and batch size for both neural runs;
the Trainer baseline pads every text to max_length=128 with the stock CLS head, as most
tutorials do. Split: stratified 80/10/10 with seed 13 (``lmworks datasets export``).
Accuracy is measured on the held-out test split, which neither run trains or selects on.

    .venv/bin/python bench/train_rotten_tomatoes.py                # full run (~45 min on 2 cores)
    .venv/bin/python bench/train_rotten_tomatoes.py --limit 2000   # quick smoke run

Prints one table and (with --json) writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def load_split(limit: int | None, seed: int):
    from lmworks.data import read_dataset
    from lmworks.datasets import export

    folder = Path(tempfile.mkdtemp(prefix="lmworks-bench-rt-"))
    export("rotten_tomatoes", folder, seed=seed, limit=limit)
    return {part: read_dataset(folder / f"{part}.csv") for part in ("train", "dev", "test")}


def run_lmworks(data, args, model="minilm"):
    from lmworks import TextClassifier

    start = time.perf_counter()
    clf = TextClassifier(model, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    clf.fit(data["train"].texts, data["train"].labels, data["dev"].texts, data["dev"].labels,
            progress=not args.quiet)
    wall = time.perf_counter() - start
    metrics = clf.evaluate(data["test"].texts, data["test"].labels)
    info = clf.train_info_
    blend = info.get("blend")
    rows = [{
        "method": f"lmworks {model}" + (" (default)" if model == "minilm" else ""),
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "train_samples_per_s": info.get("samples_per_second"),
        "wall_s": wall,
        "notes": f"steps {info.get('steps', '-')}, best step {info.get('best_step', '-')}"
        + (f", TF-IDF blend weight {blend['weight']} (chosen on dev)" if blend else ""),
    }]
    if blend:
        # The same trained encoder without the blend, for an honest view of each part.
        from sklearn.metrics import accuracy_score, f1_score

        proba = clf.backend_.primary.predict_proba(data["test"].texts)
        pred = clf.decide(proba)
        rows.append({**rows[0], "method": f"lmworks {model}, encoder alone (same run, blend off)",
                     "accuracy": accuracy_score(data["test"].labels, pred),
                     "macro_f1": f1_score(data["test"].labels, pred, average="macro"),
                     "notes": "same weights as the row above"})
    return rows


def run_hf_trainer(data, args):
    """What a tutorial does: pad to 128, stock head, Trainer defaults plus our epochs/lr/batch."""
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        Trainer,
        TrainingArguments,
    )

    from lmworks.models import resolve_encoder

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    encoder = resolve_encoder("minilm")
    labels = sorted(set(data["train"].labels))
    label2id = {name: i for i, name in enumerate(labels)}
    tok = AutoTokenizer.from_pretrained(encoder, local_files_only=True)

    class Padded(torch.utils.data.Dataset):
        def __init__(self, ds):
            self.enc = tok(ds.texts, padding="max_length", truncation=True, max_length=128)
            self.y = [label2id[y] for y in ds.labels]

        def __len__(self):
            return len(self.y)

        def __getitem__(self, i):
            item = {k: torch.tensor(v[i]) for k, v in self.enc.items()}
            item["labels"] = torch.tensor(self.y[i])
            return item

    start = time.perf_counter()
    model = AutoModelForSequenceClassification.from_pretrained(
        encoder, num_labels=len(labels), local_files_only=True
    )
    train = Padded(data["train"])
    steps = int(np.ceil(len(train) / args.batch_size) * args.epochs)
    targs = TrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="lmworks-bench-hf-"), num_train_epochs=args.epochs,
        learning_rate=args.lr, per_device_train_batch_size=args.batch_size, seed=args.seed,
        warmup_steps=int(0.06 * steps), weight_decay=0.01, eval_strategy="no", save_strategy="no",
        logging_strategy="no", report_to=[], use_cpu=True, disable_tqdm=args.quiet,
    )
    trainer = Trainer(model=model, args=targs, train_dataset=train)
    out = trainer.train()
    wall = time.perf_counter() - start
    model.eval()
    test = Padded(data["test"])
    preds = []
    with torch.inference_mode():
        for i in range(0, len(test), 128):
            batch = [test[j] for j in range(i, min(i + 128, len(test)))]
            logits = model(input_ids=torch.stack([b["input_ids"] for b in batch]),
                           attention_mask=torch.stack([b["attention_mask"] for b in batch])).logits
            preds.extend(logits.argmax(-1).tolist())
    from sklearn.metrics import accuracy_score, f1_score

    return {
        "method": "transformers Trainer (pad 128, CLS head)",
        "accuracy": accuracy_score(test.y, preds),
        "macro_f1": f1_score(test.y, preds, average="macro"),
        "train_samples_per_s": out.metrics.get("train_samples_per_second"),
        "wall_s": wall,
        "notes": f"steps {out.global_step}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=42, help="training seed")
    parser.add_argument("--split-seed", type=int, default=13)
    parser.add_argument("--limit", type=int, default=None, help="use a stratified sample of N texts")
    parser.add_argument("--skip", nargs="*", default=[], choices=["lmworks", "trainer", "tfidf"])
    parser.add_argument("--json", help="write results to this file")
    parser.add_argument("--results", action="store_true",
                        help="also write docs/results/fine_tuning.json, the table the docs render")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()

    data = load_split(args.limit, args.split_seed)
    print(f"Rotten Tomatoes: train {len(data['train'])}, dev {len(data['dev'])}, test {len(data['test'])}; "
          f"epochs {args.epochs}, batch {args.batch_size}, lr {args.lr}, seed {args.seed}", flush=True)
    rows = []
    if "tfidf" not in args.skip:
        rows.extend(run_lmworks(data, args, model="tfidf"))
        print(rows[-1], flush=True)
    if "lmworks" not in args.skip:
        rows.extend(run_lmworks(data, args))
        print(rows[-2:], flush=True)
    if "trainer" not in args.skip:
        rows.append(run_hf_trainer(data, args))
        print(rows[-1], flush=True)

    base = next((r for r in rows if r["method"].startswith("transformers")), None)
    print()
    print("| method | test accuracy | test macro-F1 | train samples/s | speed-up vs Trainer | wall time | notes |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        sps = r["train_samples_per_s"]
        speed = f"{sps / base['train_samples_per_s']:.2f}x" if base and sps and "tfidf" not in r["method"] else "-"
        print(f"| {r['method']} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | {sps:.1f} | {speed} | "
              f"{r['wall_s'] / 60:.1f} min | {r['notes']} |")
    print(f"\nmachine: {platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} CPUs")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2) + "\n")
    if args.results:
        write_results(rows, base, args, data)


def write_results(rows, base, args, data) -> None:
    from results import record

    default = next(r for r in rows if r["method"] == "lmworks minilm (default)")
    table = [[r["method"], round(r["accuracy"], 4), round(r["macro_f1"], 4), round(r["train_samples_per_s"] or 0, 1),
              f"{r['train_samples_per_s'] / base['train_samples_per_s']:.2f}x" if base and r["train_samples_per_s"]
              and "tfidf" not in r["method"] else "-", f"{r['wall_s'] / 60:.1f} min"] for r in rows]
    record("fine_tuning", title="Fine-tuning on Rotten Tomatoes",
           what=f"Rotten Tomatoes (stratified split, seed {args.split_seed}: train {len(data['train'])}, dev "
                f"{len(data['dev'])}, test {len(data['test'])}). Accuracy on the test split, which no run trains on "
                f"or selects with. MiniLM, {args.epochs:g} epochs, lr {args.lr:g}, batch {args.batch_size}, "
                f"seed {args.seed}.",
           baseline="transformers Trainer (pad every text to 128 tokens, stock CLS head), same encoder, epochs, lr "
                    "and batch",
           columns=["method", "test accuracy", "test macro-F1", "train samples/s", "speed-up vs Trainer", "wall time"],
           rows=table,
           values={"default_accuracy": default["accuracy"], **({"trainer_accuracy": base["accuracy"]} if base else {})},
           headline={"task": f"Rotten Tomatoes sentiment, test accuracy (MiniLM default, seed {args.seed})",
                     "lmworks": round(default["accuracy"], 4),
                     "baseline": f"transformers Trainer {base['accuracy']:.4f}" if base else "-"})


if __name__ == "__main__":
    main()
