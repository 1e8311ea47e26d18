"""``lmworks predict``: label every row of a data file, streamed."""

from __future__ import annotations

import argparse
import logging

from .common import (
    STDOUT,
    ListOption,
    add_column_options,
    deprecated_alias,
    model_inputs,
    positive_int,
)

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
    p.add_argument("--output", "-o", required=True, metavar="FILE",
                   help="file to write (.csv, .jsonl, .parquet), or - for JSON lines on standard output as they are "
                   "predicted; with --engine ray a folder of Parquet part files")
    p.add_argument("--text-column", action=ListOption, metavar="NAME[,NAME]",
                   help="column holding the text (default: the column the model was trained on); several for a "
                   "model with several text columns")
    p.add_argument("--label-separator", default="|", help="joins multi-label predictions in CSV (default: |)")
    p.add_argument("--encoding", default="utf-8", help="text encoding of CSV/JSONL input (default: utf-8)")
    p.add_argument("--delimiter", help="CSV field delimiter (default: detected from the header line)")
    add_column_options(p)
    p.add_argument("--chunk-size", type=positive_int, default=10_000, help="rows per chunk (default: 10000)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    r = p.add_argument_group("scale-out (Ray Data)")
    r.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: this process, streamed into one file (default); ray: Ray Data actors, each with a "
                   "model copy, writing Parquet part files into the --output folder. DATA may then be a folder or "
                   "a glob of part files")
    r.add_argument("--ray-address", metavar="ADDRESS", help="Ray cluster to join ('auto' or HOST:PORT; default: "
                   "a local Ray instance for this call)")
    deprecated_alias(r, "--address", "--ray-address", "ray_address")
    r.add_argument("--actors", type=positive_int, default=2, help="Ray actors (model copies) (default: 2)")
    r.add_argument("--threads-per-actor", type=positive_int,
                   help="inference threads per actor (default: this machine's CPUs / --actors)")
    r.add_argument("--keep-order", action="store_true",
                   help="write rows in input order (slower); otherwise join back on an id column")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Predict and write."""
    from ..classifier import TextClassifier
    from ..errors import ConfigError
    from ..inference.files import predict_file
    from ..readers import detect_format

    if args.engine == "ray":
        if args.output == STDOUT:
            raise ConfigError("--engine ray writes a folder of Parquet part files; --output - is for --engine local")
        return _run_ray(args)
    if args.output != STDOUT:
        detect_format(args.output)  # refuse an unknown output type before loading the model
    clf = TextClassifier.load(args.model_dir)
    rows = predict_file(
        clf, args.data, args.output, inputs=model_inputs(args, clf.meta_), chunk_size=args.chunk_size,
        encoding=args.encoding, delimiter=args.delimiter, label_separator=args.label_separator,
        progress=not args.quiet,
    )
    LOGGER.info("wrote %d rows to %s", rows, "standard output" if args.output == STDOUT else args.output)
    return 0


def _run_ray(args: argparse.Namespace) -> int:
    from ..integrations.ray_data import RayConfig, predict_ray
    from ..model_dir import read_meta

    config = RayConfig(address=args.ray_address, actors=args.actors, threads_per_actor=args.threads_per_actor,
                       batch_size=args.chunk_size, preserve_order=args.keep_order, progress=not args.quiet)
    rows = predict_ray(args.model_dir, args.data, args.output, inputs=model_inputs(args, read_meta(args.model_dir)),
                       config=config, encoding=args.encoding, delimiter=args.delimiter,
                       label_separator=args.label_separator)
    LOGGER.info("wrote %d rows to %s (Parquet part files)", rows, args.output)
    return 0
