"""``lmworks train``: fine-tune a classifier on a data file and write a model directory."""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path

from ..training.config import TrainConfig
from ._common import add_data_options, positive_int

LOGGER = logging.getLogger("lmworks")


def register(sub) -> None:
    """Add the subcommand."""
    p = sub.add_parser(
        "train",
        help="fine-tune a text classifier",
        description="Fine-tune an encoder (or the TF-IDF baseline) on DATA and write a model "
        "directory to --output. Early stopping keeps the checkpoint with the best dev macro-F1; "
        "Ctrl-C keeps the best checkpoint so far and --resume continues the run.",
    )
    p.add_argument("data", metavar="DATA", help="training data: .csv, .jsonl, .parquet, or - for JSONL on stdin")
    p.add_argument("--output", "-o", required=True, metavar="DIR", help="model directory to write")
    add_data_options(p)
    ev = p.add_mutually_exclusive_group()
    ev.add_argument("--eval", metavar="DATA", help="dev data for early stopping and thresholds")
    ev.add_argument("--eval-fraction", type=float, default=0.1,
                    help="hold out this share of DATA as dev data when --eval is not given (default: 0.1)")
    p.add_argument("--test", metavar="DATA", help="also evaluate the final model on this held-out data")
    m = p.add_argument_group("model")
    m.add_argument("--model", default="minilm", help="minilm (default), mpnet, tfidf, or a checkpoint directory")
    m.add_argument("--head", choices=["mean", "cls"], default="mean",
                   help="mean pooling + linear (default) or the stock transformers CLS head")
    m.add_argument("--max-length", type=positive_int, default=128, help="max tokens per text (default: 128)")
    m.add_argument("--multi-label", action="store_true", help="texts may carry several labels")
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=float, default=TrainConfig.epochs,
                   help=f"passes over the data (default: {TrainConfig.epochs:g})")
    t.add_argument("--batch-size", type=positive_int, default=32, help="texts per batch (default: 32)")
    t.add_argument("--lr", type=float, default=1e-4, help="peak encoder learning rate (default: 1e-4)")
    t.add_argument("--head-lr-multiplier", type=float, default=10.0, help="head lr = lr x this (default: 10)")
    t.add_argument("--layer-lr-decay", type=float, default=TrainConfig.layer_lr_decay,
                   help="each encoder layer learns this times slower than the one above "
                   f"(default: {TrainConfig.layer_lr_decay}; 1 disables)")
    t.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay (default: 0.01)")
    t.add_argument("--warmup-ratio", type=float, default=0.06, help="share of steps warming up (default: 0.06)")
    t.add_argument("--grad-accum", type=positive_int, default=1, help="batches per optimiser step (default: 1)")
    t.add_argument("--class-weights", choices=["none", "balanced"], default="none",
                   help="weigh the loss by inverse class frequency (default: none)")
    m.add_argument("--blend", choices=["auto", "tfidf", "none"], default="auto",
                   help="average with a TF-IDF model, weight chosen on dev data (auto: unless --head cls)")
    t.add_argument("--eval-every", type=int, default=0, help="evaluate every N steps (default: each epoch)")
    t.add_argument("--patience", type=int, default=2,
                   help="stop after N evaluations without improvement; 0 never stops (default: 2)")
    t.add_argument("--seed", type=int, default=42, help="random seed (default: 42)")
    t.add_argument("--threads", type=int, default=None, help="torch threads (default: usable CPUs)")
    c = p.add_argument_group("checkpoints")
    c.add_argument("--checkpoint-dir", metavar="DIR",
                   help="where checkpoints and the metrics log go during training (default: OUTPUT.ckpt)")
    c.add_argument("--resume", action="store_true", help="continue the run saved in --checkpoint-dir")
    c.add_argument("--keep-checkpoints", action="store_true", help="keep --checkpoint-dir after success")
    p.add_argument("--json", metavar="FILE", help="write the dev (and --test) metrics as JSON")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Train, save, report."""
    from .._io import write_text_atomic
    from ..classifier import TextClassifier
    from ..data import read_dataset
    from ..evaluation import format_report
    from ..model_dir import check_output_dir

    check_output_dir(args.output)  # fail before training, not after
    read = dict(text_column=args.text_column, label_column=args.label_column,
                multi_label=args.multi_label, label_separator=args.label_separator, encoding=args.encoding)
    train = read_dataset(args.data, **read)
    dev = read_dataset(args.eval, **read) if args.eval else None
    test = read_dataset(args.test, **read) if args.test else None
    clf = TextClassifier(
        args.model, head=args.head, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        head_lr_multiplier=args.head_lr_multiplier, layer_lr_decay=args.layer_lr_decay,
        weight_decay=args.weight_decay,
        warmup_ratio=args.warmup_ratio, grad_accum_steps=args.grad_accum, max_length=args.max_length,
        class_weights=args.class_weights, blend=args.blend, multi_label=args.multi_label,
        eval_fraction=0.0 if dev else args.eval_fraction, eval_every=args.eval_every,
        patience=args.patience, seed=args.seed, num_threads=args.threads,
    )
    output = Path(args.output)
    ckpt = Path(args.checkpoint_dir) if args.checkpoint_dir else output.with_name(output.name + ".ckpt")
    LOGGER.info("training %s on %d texts from %s", args.model, len(train), args.data)
    clf.fit(
        train.texts, train.require_labels(),
        dev.texts if dev else None, dev.require_labels() if dev else None,
        checkpoint_dir=None if args.model == "tfidf" else ckpt,
        resume=args.resume, progress=not args.quiet,
    )
    info = clf.train_info_
    if info.get("interrupted") and info.get("best_step", 0) < 0:
        LOGGER.warning("interrupted before the first evaluation: no model written; "
                       "continue with the same command plus --resume")
        return 130
    clf.save(output)
    if info.get("interrupted"):
        LOGGER.warning("interrupted: wrote the best checkpoint so far (step %s) to %s; "
                       "continue with the same command plus --resume", info.get("best_step"), output)
    elif ckpt.exists() and not args.keep_checkpoints:
        shutil.rmtree(ckpt, ignore_errors=True)
    if "samples_per_second" in info:
        LOGGER.info("trained in %.1f s (%.1f samples/s)", info["train_seconds"], info["samples_per_second"])
    results = {"dev": clf.dev_metrics_}
    if clf.dev_metrics_:
        print(f"dev metrics ({clf.dev_metrics_['n']} texts, best checkpoint):")
        print(format_report(clf.dev_metrics_))
    if test is not None:
        test_metrics = clf.evaluate(test.texts, test.require_labels())
        results["test"] = test_metrics
        print(f"\ntest metrics ({args.test}, {test_metrics['n']} texts):")
        print(format_report(test_metrics))
    if args.json:
        write_text_atomic(args.json, json.dumps(results, indent=2) + "\n")
    print(f"\nmodel written to {output}")
    return 130 if info.get("interrupted") else 0
