"""``lmworks`` command line: a thin dispatcher over one module per subcommand.

Each subcommand module exposes ``register(subparsers)`` and ``run(args) -> int``;
all real work happens in the Python API, so anything the CLI does can be done
from Python too.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Iterator, Sequence

from ..errors import LmworksError
from .common import HelpFormatter, json_to_stdout

SUBCOMMANDS = ("train", "tune", "distill", "evaluate", "predict", "explain", "audit", "robustness", "pretrain",
               "export", "serve", "assistant", "recommend", "monitor", "advisor", "label", "federated", "models",
               "datasets")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (subcommand modules add their own options)."""
    import importlib

    from ..runtime import lmworks_version

    parser = argparse.ArgumentParser(
        prog="lmworks", formatter_class=HelpFormatter,
        description="Fine-tune, evaluate and apply pretrained transformer text classifiers, "
        "on a CPU and offline.",
        epilog="Run 'lmworks COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"lmworks {lmworks_version()}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show debug messages, and an error's full traceback with its cause")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        importlib.import_module(f".{name}", __name__).register(sub)
    for each in walk_parsers(parser):
        each.formatter_class = HelpFormatter
        _describe_children(each)
    return parser


def _describe_children(parser: argparse.ArgumentParser) -> None:
    """A subcommand registered with only a one-line ``help`` shows that line on its own --help too."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for listed in action._choices_actions:
                child = action.choices[listed.dest]
                if not child.description and listed.help:
                    text = listed.help[0].upper() + listed.help[1:]
                    child.description = text if text.endswith((".", "!", "?")) else text + "."


def walk_parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """``parser`` and every subcommand parser below it, depth first."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases map to the same parser
                yield from walk_parsers(child)


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prefix = "warning: " if record.levelno >= logging.WARNING else ""
        return f"lmworks: {prefix}{record.getMessage()}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lmworks`` console script; returns the exit status."""
    from .tune import route

    parser = build_parser()
    args = parser.parse_args(route(list(sys.argv[1:] if argv is None else argv)))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine())
    logger = logging.getLogger("lmworks")
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    logger.propagate = False
    try:
        with json_to_stdout(args):
            return int(args.run(args) or 0)
    except LmworksError as err:
        if args.verbose:
            traceback.print_exception(err, file=sys.stderr)
        print(f"lmworks: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lmworks: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 141
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
