"""``lmworks distill``: train a small student on a large teacher's predictions."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from .common import one_text_column
from .train import add_training_arguments, report, train_job

LOGGER = logging.getLogger("lmworks")


def register(sub) -> None:
    """Add the subcommand."""
    from ..distill import DistillConfig

    d = DistillConfig()
    p = sub.add_parser(
        "distill", help="distil a teacher model into a small, fast student",
        description="Train the student (--model, default minilm) on DATA's labels and on TEACHER_DIR's "
        "temperature-softened probabilities, computed once (cached) over DATA and any --unlabeled in-domain "
        "texts. Every option of 'lmworks train' applies; the result is an ordinary model directory that "
        "records its teacher.",
    )
    p.add_argument("teacher", metavar="TEACHER_DIR", help="any lmworks model directory (PyTorch, ONNX, blended)")
    p.add_argument("data", metavar="DATA", help="labelled training data: .csv, .jsonl, .parquet")
    k = p.add_argument_group("distillation")
    k.add_argument("--unlabeled", metavar="FILE", help="extra in-domain texts without labels (.txt one per line, or "
                   "a data file's --text-column); the student learns them from the teacher alone")
    k.add_argument("--unlabeled-limit", type=int, metavar="N",
                   help="use a random sample of N --unlabeled texts (fixed seed, shared by every student seed): "
                   "each costs one teacher prediction and student steps, so this sets the recipe's time "
                   "(default: all)")
    k.add_argument("--alpha", type=float, default=d.alpha,
                   help=f"weight of the true labels' loss; 1 - alpha goes to the teacher (default: {d.alpha:g})")
    k.add_argument("--temperature", type=float, default=d.temperature,
                   help=f"softening temperature of both distributions (default: {d.temperature:g})")
    k.add_argument("--augment", type=int, default=d.augment, metavar="N",
                   help="N fragments (word windows) per training text for the teacher to label and the student to "
                   "learn from: more of the teacher's behaviour to copy, at the cost of teacher predictions and "
                   f"student steps (default: {d.augment})")
    k.add_argument("--teacher-cache", metavar="DIR", help="where the teacher's probabilities are cached "
                   "(default: $LMWORKS_CACHE/teacher)")
    add_training_arguments(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Distil, save, report (as ``train`` does: the same workflow, with distillation as its fit)."""
    from ..workflow import train_files

    return report(train_files(train_job(args), lambda student, train, dev, ckpt, job: _distil(
        args, student, train, dev, ckpt, job)), args)


def _distil(args: argparse.Namespace, student: Any, train: Any, dev: Any, ckpt: Path, job: Any) -> Any:
    from ..data import read_texts
    from ..distill import DistillConfig, distill
    from ..errors import ConfigError

    config = DistillConfig(alpha=args.alpha, temperature=args.temperature, cache_dir=args.teacher_cache,
                           teacher_threads=args.num_threads, augment=args.augment,
                           unlabeled_limit=args.unlabeled_limit)
    unlabeled = read_texts(args.unlabeled, text_column=one_text_column(args), encoding=args.encoding,
                           delimiter=args.delimiter) if args.unlabeled else []
    LOGGER.info("distilling %s into %s on %d labelled and %d unlabelled texts", args.teacher, args.model,
                len(train), len(unlabeled))
    if not hasattr(train, "texts"):
        raise ConfigError("distillation trains text models: give one --text-column and no image, numeric or "
                          "categorical columns")
    return distill(args.teacher, train.texts, train.require_labels(), dev.texts if dev else None,
                   dev.require_labels() if dev else None, unlabeled=unlabeled, student=student, config=config,
                   checkpoint_dir=ckpt, resume=job.resume, progress=job.progress, columns=job.inputs.record())
