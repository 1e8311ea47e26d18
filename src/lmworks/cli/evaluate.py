"""``lmworks evaluate``: classification report of a model on labelled data."""

from __future__ import annotations

import argparse
import logging

from .common import add_column_options, add_data_options, add_json_option, model_inputs, write_json

LOGGER = logging.getLogger("lmworks")


def register(sub) -> None:
    """Add the subcommand."""
    p = sub.add_parser(
        "evaluate", help="classification report on labelled data",
        description="Print per-class precision/recall/F1/support, accuracy, macro and weighted "
        "averages, the confusion matrix and the calibration error of MODEL_DIR on DATA. Labels "
        "the model never saw are reported, not fatal.",
    )
    p.add_argument("model_dir", metavar="MODEL_DIR")
    p.add_argument("data", metavar="DATA", help=".csv, .jsonl, .parquet, or - for JSONL on stdin")
    add_data_options(p)
    add_column_options(p)
    add_json_option(p, "also write the metrics as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate and print."""
    from ..classifier import TextClassifier
    from ..evaluation import format_report

    clf = TextClassifier.load(args.model_dir)
    inputs = model_inputs(args, clf.meta_)
    data = inputs.read(args.data, multi_label=clf.config.multi_label, label_separator=args.label_separator,
                       encoding=args.encoding, delimiter=args.delimiter)
    metrics = clf.evaluate(data.inputs, data.require_labels())
    print(format_report(metrics))
    if metrics["unseen_labels"]:
        LOGGER.warning("%d rows carry labels the model was never trained on: %s",
                       sum(metrics["unseen_labels"].values()), ", ".join(metrics["unseen_labels"]))
    if args.json:
        write_json(args.json, metrics)
    return 0
