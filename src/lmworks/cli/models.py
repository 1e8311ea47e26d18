"""``lmworks models``: list the encoders and baselines available offline."""

from __future__ import annotations

import argparse

from .common import add_json_option, write_json


def register(sub) -> None:
    """Add the subcommand."""
    p = sub.add_parser("models", help="list encoders available offline",
                       description="List named models, whether they are installed, and where.")
    add_json_option(p, "write the list as JSON instead of printing a table")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the model list."""
    from ..models import list_models

    rows = list_models()
    if args.json:
        write_json(args.json, rows)
        return 0
    for row in rows:
        status = "available" if row["available"] else "not installed"
        print(f"{row['name']:<8} {row['kind']:<8} {status:<13} {row['description']}")
        if row["available"] and row["path"]:
            print(f"{'':<8} path: {row['path']}")
        elif not row["available"]:
            print(f"{'':<8} install: {row['install']}")
    return 0
