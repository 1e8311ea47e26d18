"""``lmworks train``: fine-tune a classifier on a data file and write a model directory."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from ..modes import Adversarial, AdvLoss, AdvNorm, BlendMode, ClassWeighting, FewShot, Pooling
from ..training.config import TrainConfig
from .common import add_column_options, add_data_options, add_json_option, config_option, positive_int, write_json

LOGGER = logging.getLogger("lmworks")


def _option(group, flag: str, field: str, kind, help: str, **kw) -> None:
    """Add ``flag`` for a :class:`TrainConfig` field; its default and help come from the config."""
    config_option(group, TrainConfig, flag, field, kind, help, **kw)


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
    add_training_arguments(p)
    p.set_defaults(run=run)


def add_training_arguments(p: argparse.ArgumentParser) -> None:
    """Every option of ``train`` after DATA (``distill`` takes the same ones)."""
    p.add_argument("--output", "-o", required=True, metavar="DIR", help="model directory to write")
    add_data_options(p)
    add_column_options(p)
    _multimodal_options(p)
    ev = p.add_mutually_exclusive_group()
    ev.add_argument("--eval", metavar="DATA", help="held-out dev data for early stopping, thresholds and the blend "
                    "weight")
    _option(ev, "--eval-fraction", "eval_fraction", float, "hold out this share of DATA as dev data "
            "when --eval is not given")
    p.add_argument("--test", metavar="DATA", help="also evaluate the final model on this held-out data")
    _model_options(p)
    _training_options(p)
    _adversarial_options(p)
    c = p.add_argument_group("checkpoints")
    c.add_argument("--checkpoint-dir", metavar="DIR",
                   help="where checkpoints and the metrics log go during training (default: OUTPUT.ckpt)")
    c.add_argument("--resume", action="store_true", help="continue the run saved in --checkpoint-dir")
    c.add_argument("--keep-checkpoints", action="store_true", help="keep --checkpoint-dir after success")
    add_json_option(p, "write the dev (and --test) metrics as JSON")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def _multimodal_options(p) -> None:
    from ..multimodal.columns import MultimodalConfig

    d = MultimodalConfig()
    g = p.add_argument_group("multimodal model (with image, numeric or categorical columns, or several text columns)")
    g.add_argument("--no-text", action="store_true", help="an image/tabular-only model: no text column")
    g.add_argument("--image-size", type=positive_int, default=d.image_size,
                   help=f"image input resolution, pixels per side (default: {d.image_size})")
    g.add_argument("--skip-bad-images", action="store_true",
                   help="treat an undecodable image as missing (warned) instead of stopping with an error")
    g.add_argument("--modality-dropout", type=float, default=d.modality_dropout,
                   help=f"drop each modality per row with this probability while training (default: "
                   f"{d.modality_dropout:g})")


def _model_options(p) -> None:
    m = p.add_argument_group("model")
    _option(m, "--model", "model", str, "encoder: minilm, mpnet, tfidf (the TF-IDF baseline), or a checkpoint "
            "directory")
    _option(m, "--head", "head", str, "mean pooling + linear, or the stock transformers CLS head",
            choices=Pooling.choices())
    _option(m, "--blend", "blend", str, "average with a TF-IDF model, weight chosen on dev data "
            "(auto: unless --head cls)", choices=BlendMode.choices())
    _option(m, "--max-length", "max_length", positive_int, "max tokens per text; longer ones are truncated")
    m.add_argument("--multi-label", action="store_true", help="texts may carry several labels")
    _option(m, "--few-shot", "few_shot", str, "fit an encoder with the few-shot recipe (a contrastive stage, then a "
            "logistic-regression head); auto: when there are fewer than --few-shot-below labels per class",
            choices=FewShot.choices())
    _option(m, "--few-shot-below", "few_shot_below", int, "labels per class (mean) under which --few-shot auto "
            "uses the recipe: the crossover bench/fewshot.py measured")


def _training_options(p) -> None:
    t = p.add_argument_group("training")
    _option(t, "--epochs", "epochs", float, "passes over the data")
    _option(t, "--batch-size", "batch_size", positive_int, "texts per batch")
    _option(t, "--lr", "lr", float, "peak encoder learning rate")
    _option(t, "--head-lr-multiplier", "head_lr_multiplier", float, "the head learns this many times faster")
    _option(t, "--layer-lr-decay", "layer_lr_decay", float, "each encoder layer learns this times slower than "
            "the one above (1 disables)")
    _option(t, "--weight-decay", "weight_decay", float, "AdamW weight decay")
    _option(t, "--warmup-ratio", "warmup_ratio", float, "share of steps warming the learning rate up")
    _option(t, "--grad-accum", "grad_accum_steps", positive_int, "batches per optimiser step")
    _option(t, "--class-weights", "class_weights", str, "weigh the loss by inverse class frequency",
            choices=ClassWeighting.choices())
    _option(t, "--eval-every", "eval_every", int, "evaluate every N optimiser steps (0: each epoch)")
    _option(t, "--patience", "patience", int, "stop after N evaluations without a better dev macro-F1 "
            "(0: never)")
    _option(t, "--dropout", "dropout", float, "dropout before the classification head")
    _option(t, "--label-smoothing", "label_smoothing", float, "train towards 1-X on the true class (0: off)")
    t.add_argument("--logit-adjustment", action="store_true",
                   help="train against the data's label prior, so the model scores as if classes were balanced")
    t.add_argument("--freeze-embeddings", action="store_true",
                   help="keep the pretrained word embeddings fixed (cheaper steps; words unseen in training "
                   "stay where the encoder put them)")
    _option(t, "--seed", "seed", int, "random seed")
    _option(t, "--threads", "num_threads", int, "torch threads (default: the CPUs this process may use)")


def _adversarial_options(p) -> None:
    a = p.add_argument_group("adversarial training")
    _option(a, "--adversarial", "adversarial", str, "perturb the word embeddings along the loss gradient while "
            "training (FGM: one step; PGD: --adv-steps projected steps)", choices=Adversarial.choices())
    _option(a, "--adv-epsilon", "adv_epsilon", float,
            "perturbation radius (L2 norm: per text, or over the batch with --adv-norm batch)")
    _option(a, "--adv-steps", "adv_steps", positive_int, "PGD steps")
    _option(a, "--adv-norm", "adv_norm", str, "what the radius measures: batch (the batch's embedding-matrix "
            "gradient as a whole) or example (each text's embedded tokens on their own)", choices=AdvNorm.choices())
    _option(a, "--adv-loss", "adv_loss", str, "what the perturbed text is trained towards: label (its true label) "
            "or consistency (the model's clean prediction, by KL divergence: TRADES)",
            choices=AdvLoss.choices())


def run(args: argparse.Namespace) -> int:
    """Train, save, report."""
    from ..workflow import train_files

    return report(train_files(train_job(args)), args)


def train_job(args: argparse.Namespace):
    """The :class:`~lmworks.workflow.TrainJob` the options describe (every TrainConfig field the parser defines)."""
    import dataclasses

    from ..inference.inputs import ModelInputs
    from ..workflow import TrainJob

    inputs = ModelInputs.for_training(
        text=args.text_column, label=args.label_column, image=args.image_column, numeric=args.numeric_column,
        categorical=args.categorical_column, no_text=args.no_text, image_size=args.image_size,
        skip_bad_images=args.skip_bad_images, modality_dropout=args.modality_dropout)
    options = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)}
    return TrainJob(data=args.data, output=args.output, inputs=inputs, eval=args.eval, test=args.test,
                    options=options, checkpoint_dir=args.checkpoint_dir, keep_checkpoints=args.keep_checkpoints,
                    resume=args.resume, progress=not args.quiet, multi_label=args.multi_label,
                    label_separator=args.label_separator, encoding=args.encoding, delimiter=args.delimiter)


def report(outcome, args: argparse.Namespace) -> int:
    """Print the dev report (best checkpoint) and the --test report; write both with --json; the exit status."""
    from ..evaluation import format_report

    if not outcome.written:
        return outcome.status
    results: dict[str, Any] = {"dev": outcome.dev_metrics}
    if outcome.dev_metrics:
        print(f"dev metrics ({outcome.dev_metrics['n']} texts, best checkpoint):")
        print(format_report(outcome.dev_metrics))
    if outcome.test_metrics is not None:
        results["test"] = outcome.test_metrics
        print(f"\ntest metrics ({args.test}, {outcome.test_metrics['n']} texts):")
        print(format_report(outcome.test_metrics))
    if args.json:
        write_json(args.json, results)
    print(f"\nmodel written to {args.output}")
    return outcome.status
