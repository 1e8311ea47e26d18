"""Options shared by several subcommands."""

from __future__ import annotations

import argparse
from typing import Any


def add_data_options(parser: argparse.ArgumentParser, *, labels: bool = True) -> None:
    """``--text-column``, ``--label-column``, ``--label-separator``, ``--encoding``, ``--delimiter``."""
    group = parser.add_argument_group("data")
    group.add_argument("--text-column", default="text", help="column holding the text (default: text)")
    if labels:
        group.add_argument("--label-column", default="label", help="column holding the label (default: label)")
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


def read_options(args: argparse.Namespace, *, labels: bool = True) -> dict[str, Any]:
    """The :func:`~lmworks.data.read_dataset` keywords that :func:`add_data_options` defined."""
    out: dict[str, Any] = {"text_column": args.text_column, "label_separator": args.label_separator,
                           "encoding": args.encoding, "delimiter": args.delimiter}
    if labels:
        out["label_column"] = args.label_column
    return out
