"""Options shared by several subcommands."""

from __future__ import annotations

import argparse
from typing import Any


def add_data_options(parser: argparse.ArgumentParser, *, labels: bool = True) -> None:
    """``--text-column``, ``--label-column``, ``--label-separator``, ``--encoding``, ``--delimiter``."""
    group = parser.add_argument_group("data")
    group.add_argument("--text-column", action="append", metavar="NAME",
                       help="column holding the text (default: text; for a saved model, the column it was trained "
                       "on); repeat it for several text columns (a multimodal model)")
    if labels:
        group.add_argument("--label-column", metavar="NAME",
                           help="column holding the label (default: label; for a saved model, its own)")
    group.add_argument(
        "--label-separator", default="|",
        help="separator between labels of a multi-label row in CSV (default: |); JSONL may use lists",
    )
    group.add_argument("--encoding", default="utf-8", help="text encoding of CSV/JSONL input (default: utf-8)")
    group.add_argument("--delimiter", help="CSV field delimiter (default: detected from the header line among "
                       "comma, semicolon, tab and |)")


def positive_int(value: str) -> int:
    """Argparse type: an integer > 0."""
    number = int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return number


def non_negative_int(value: str) -> int:
    """Argparse type: an integer >= 0."""
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return number


def add_column_options(parser: argparse.ArgumentParser) -> None:
    """The columns of a multimodal model: images, numbers, categories, or no text at all."""
    group = parser.add_argument_group("multimodal columns")
    group.add_argument("--image-column", action="append", metavar="NAME",
                       help="column of image paths (absolute, or relative to the data file's folder); repeatable")
    group.add_argument("--numeric-column", action="append", metavar="NAME", help="column of numbers; repeatable")
    group.add_argument("--categorical-column", action="append", metavar="NAME",
                       help="column of categories; repeatable")


def read_options(args: argparse.Namespace, *, labels: bool = True) -> dict[str, Any]:
    """The :func:`~lmworks.data.read_dataset` keywords that :func:`add_data_options` defined (one text column)."""
    from ..errors import ConfigError

    texts = args.text_column or ["text"]
    if len(texts) > 1:
        raise ConfigError("this command reads one --text-column")
    out: dict[str, Any] = {"text_column": texts[0], "label_separator": args.label_separator,
                           "encoding": args.encoding, "delimiter": args.delimiter}
    if labels:
        out["label_column"] = args.label_column or "label"
    return out


def model_inputs(args: argparse.Namespace, meta: dict[str, Any]) -> Any:
    """What a saved model reads, with the column options given on the command line."""
    from ..inference.inputs import ModelInputs

    return ModelInputs.for_model(meta, text=args.text_column, label=getattr(args, "label_column", None),
                                 image=getattr(args, "image_column", None),
                                 numeric=getattr(args, "numeric_column", None),
                                 categorical=getattr(args, "categorical_column", None))
