"""``lmworks predict``: label every row of a data file, streamed."""

from __future__ import annotations

import argparse
import logging

from .common import add_column_options, model_inputs, positive_int

LOGGER = logging.getLogger("lmworks")


def register(sub) -> None:
    """Add the subcommand."""
    p = sub.add_parser(
        "predict", help="predict labels for a data file",
        description="Write every input row with the predicted 'label' and one 'prob_<class>' column "
        "per class to --output (.csv, .jsonl or .parquet). Rows are streamed in chunks, so "
        "memory stays bounded for any file size; the output appears only once complete.",
    )
    p.add_argument("model_dir", metavar="MODEL_DIR")
    p.add_argument("data", metavar="DATA", help=".csv, .jsonl, .parquet, or - for JSONL on stdin")
    p.add_argument("--output", "-o", required=True, metavar="FILE", help="output file (.csv, .jsonl, .parquet)")
    p.add_argument("--text-column", action="append", metavar="NAME",
                   help="column holding the text (default: the column the model was trained on); repeatable")
    p.add_argument("--label-separator", default="|", help="joins multi-label predictions in CSV (default: |)")
    p.add_argument("--encoding", default="utf-8", help="text encoding of CSV/JSONL input (default: utf-8)")
    p.add_argument("--delimiter", help="CSV field delimiter (default: detected from the header line)")
    add_column_options(p)
    p.add_argument("--chunk-size", type=positive_int, default=10_000, help="rows per chunk (default: 10000)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Predict and write."""
    from ..classifier import TextClassifier
    from ..data import detect_format
    from ..inference.files import predict_file

    detect_format(args.output)  # refuse an unknown output type before loading the model
    clf = TextClassifier.load(args.model_dir)
    rows = predict_file(
        clf, args.data, args.output, inputs=model_inputs(args, clf.meta_), chunk_size=args.chunk_size,
        encoding=args.encoding, delimiter=args.delimiter, label_separator=args.label_separator,
        progress=not args.quiet,
    )
    LOGGER.info("wrote %d rows to %s", rows, args.output)
    return 0
