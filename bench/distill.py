"""Benchmark: distillation of a large teacher into MiniLM, against the plain default and TF-IDF.

Same splits for every model (``lmworks datasets export NAME``, seed 13). The teacher is
trained once (``--teacher-model mpnet --teacher-epochs 0.25`` by default: MiniLM's
training budget) unless ``--teacher DIR`` names an existing one; students are trained
for every seed in ``--seeds``. Reported per model: accuracy and macro-F1 on the
reported split, training wall time (a distilled student's includes the teacher's
predictions over its training texts; the recipe's total adds the teacher's training),
predict texts/s (median of 3 runs over the reported texts after a warm-up), model size.

    .venv/bin/python bench/distill.py --data data/rotten_tomatoes --teacher runs/rt-mpnet \\
        --seeds 42,1,2 --json runs/bench_distill.json
    # choosing alpha and temperature without the test split:
    .venv/bin/python bench/distill.py ... --report-split dev --alpha 0.5 --temperature 2 --no-plain
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np


def dir_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()) / 2**20


def speed(model, texts, repeats: int = 3) -> float:
    model.predict_proba(texts[:64])
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict_proba(texts)
        times.append(time.perf_counter() - start)
    return len(texts) / float(np.median(times))


def row(name, model, directory, data, seconds, **extra):
    metrics = model.evaluate(data.texts, data.require_labels())
    out = {"model": name, "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"],
           "train_seconds": seconds, "texts_per_s": speed(model, data.texts),
           "size_mb": dir_mb(directory) if directory else None, **extra}
    print(json.dumps(out), flush=True)
    return out


def held_out_free(texts, data):
    """``texts`` less any that match a dev or test text (case and punctuation ignored), with a count."""
    import re

    def key(text):
        return " ".join(re.findall(r"\w+", str(text).lower()))

    held_out = {key(t) for part in ("dev", "test") for t in data[part].texts}
    kept = [t for t in texts if key(t) not in held_out]
    print(f"unlabelled texts: {len(texts)}; {len(texts) - len(kept)} dropped as copies of dev/test texts", flush=True)
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder with train.csv, dev.csv, test.csv")
    parser.add_argument("--teacher", type=Path, default=Path("runs/distill-teacher"))
    parser.add_argument("--teacher-model", default="mpnet")
    parser.add_argument("--teacher-epochs", type=float, default=0.25)
    parser.add_argument("--student", default="minilm")
    parser.add_argument("--seeds", default="42,1,2", help="student seeds ('' for none)")
    parser.add_argument("--extra", type=Path, action="append", default=[], metavar="DIR",
                        help="also score this existing model dir (e.g. an int8 export) on the reported split")
    parser.add_argument("--alpha", type=float, default=None)
    parser.add_argument("--temperature", type=float, default=None)
    parser.add_argument("--unlabeled", type=Path, help="extra unlabelled texts (.txt, one per line)")
    parser.add_argument("--unlabeled-limit", type=int, default=None,
                        help="use a random sample of this many unlabelled texts (DistillConfig.unlabeled_limit)")
    parser.add_argument("--augment", type=int, default=None, help="fragments per training text (default: distill's)")
    parser.add_argument("--epochs", type=float, default=None, help="student epochs (default: train's)")
    parser.add_argument("--report-split", choices=["test", "dev"], default="test")
    parser.add_argument("--no-plain", action="store_true", help="skip the plain students")
    parser.add_argument("--no-tfidf", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-distill"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import lmworks
    from lmworks.data import read_texts
    from lmworks.distill import DistillConfig, distill

    data = {p: lmworks.read_dataset(args.data / f"{p}.csv") for p in ("train", "dev", "test")}
    report = data[args.report_split]
    rows, teacher_seconds = [], None
    if not (args.teacher / "lmworks.json").is_file():
        start = time.perf_counter()
        teacher = lmworks.TextClassifier(args.teacher_model, epochs=args.teacher_epochs)
        teacher.fit(data["train"].texts, data["train"].labels, data["dev"].texts, data["dev"].labels, progress=False)
        teacher.save(args.teacher)
        teacher_seconds = time.perf_counter() - start
    teacher = lmworks.TextClassifier.load(args.teacher)
    if teacher_seconds is None:
        teacher_seconds = float(teacher.train_info_.get("train_seconds", float("nan")))
    rows.append(row(f"teacher ({teacher.model})", teacher, args.teacher, report, teacher_seconds))
    teacher = None
    for directory in args.extra:
        model = lmworks.load(directory)
        rows.append(row(directory.name, model, directory, report,
                        float(model.meta.get("train_info", {}).get("train_seconds", float("nan")))))
    unlabeled = held_out_free(read_texts(args.unlabeled), data) if args.unlabeled else []
    defaults = DistillConfig()
    config = DistillConfig(alpha=args.alpha if args.alpha is not None else defaults.alpha,
                           temperature=args.temperature if args.temperature is not None else defaults.temperature,
                           augment=args.augment if args.augment is not None else defaults.augment,
                           unlabeled_limit=args.unlabeled_limit)
    options = {"epochs": args.epochs} if args.epochs else {}
    for seed in [int(s) for s in args.seeds.split(",") if s.strip()]:
        out = args.out / f"distilled-{seed}"
        start = time.perf_counter()
        student = distill(args.teacher, data["train"].texts, data["train"].labels, data["dev"].texts,
                          data["dev"].labels, unlabeled=unlabeled,
                          student=lmworks.TextClassifier(args.student, seed=seed, **options), config=config,
                          progress=False)
        seconds = time.perf_counter() - start
        student.save(out)
        rows.append(row(f"{args.student} distilled", student, out, report, seconds, seed=seed,
                        alpha=config.alpha, temperature=config.temperature, augment=config.augment,
                        unlabeled=student.train_info_["distillation"]["unlabeled_texts"]))
        if not args.no_plain:
            out = args.out / f"plain-{seed}"
            start = time.perf_counter()
            plain = lmworks.TextClassifier(args.student, seed=seed, **options)
            plain.fit(data["train"].texts, data["train"].labels, data["dev"].texts, data["dev"].labels,
                      progress=False)
            seconds = time.perf_counter() - start
            plain.save(out)
            rows.append(row(f"{args.student} plain", plain, out, report, seconds, seed=seed))
    if not args.no_tfidf:
        start = time.perf_counter()
        tfidf = lmworks.TextClassifier("tfidf").fit(data["train"].texts, data["train"].labels, data["dev"].texts,
                                                    data["dev"].labels, progress=False)
        seconds = time.perf_counter() - start
        tfidf.save(args.out / "tfidf")
        rows.append(row("tfidf", tfidf, args.out / "tfidf", report, seconds))
    summarise(rows, args.report_split, teacher_seconds)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rows": rows, "split": args.report_split, "config": config.to_dict()},
                                        indent=2))


def summarise(rows, split, teacher_seconds) -> None:
    print(f"\n{split} split: mean (min-max) over seeds")
    print("| model | seeds | accuracy | macro-F1 | train min | texts/s | size MB |")
    print("|---|---|---|---|---|---|---|")
    for name in dict.fromkeys(r["model"] for r in rows):
        group = [r for r in rows if r["model"] == name]
        acc = [r["accuracy"] for r in group]
        f1 = np.mean([r["macro_f1"] for r in group])
        minutes = np.mean([r["train_seconds"] for r in group]) / 60
        spread = f" ({min(acc):.4f}-{max(acc):.4f})" if len(acc) > 1 else ""
        size = group[0]["size_mb"]
        print(f"| {name} | {len(group)} | {np.mean(acc):.4f}{spread} | {f1:.4f} | {minutes:.1f} | "
              f"{np.mean([r['texts_per_s'] for r in group]):.1f} | {size:.0f} |")
    print(f"teacher training: {teacher_seconds / 60:.1f} min")


if __name__ == "__main__":
    main()
