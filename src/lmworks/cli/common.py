"""Options shared by several subcommands."""

from __future__ import annotations

import argparse
import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any, TextIO

from ..atomic import STDOUT


def add_data_options(parser: argparse.ArgumentParser, *, labels: bool = True) -> None:
    """``--text-column``, ``--label-column``, ``--label-separator``, ``--encoding``, ``--delimiter``."""
    group = parser.add_argument_group("data")
    group.add_argument("--text-column", action=ListOption, metavar="NAME[,NAME]",
                       help="column holding the text (default: text; for a saved model, the column it was trained "
                       "on); several for several text columns (a multimodal model)")
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
    group.add_argument("--image-column", action=ListOption, metavar="NAME[,NAME]",
                       help="column(s) of image paths (absolute, or relative to the data file's folder)")
    group.add_argument("--numeric-column", action=ListOption, metavar="NAME[,NAME]", help="column(s) of numbers")
    group.add_argument("--categorical-column", action=ListOption, metavar="NAME[,NAME]",
                       help="column(s) of categories")


def read_options(args: argparse.Namespace, *, labels: bool = True) -> dict[str, Any]:
    """The :func:`~lmworks.data.read_dataset` keywords that :func:`add_data_options` defined (one text column)."""
    out: dict[str, Any] = {"text_column": one_text_column(args), "label_separator": args.label_separator,
                           "encoding": args.encoding, "delimiter": args.delimiter}
    if labels:
        out["label_column"] = args.label_column or "label"
    return out


def one_text_column(args: argparse.Namespace) -> str:
    """The single ``--text-column`` of a command that reads one (default: ``text``)."""
    from ..errors import ConfigError

    texts = args.text_column or ["text"]
    if len(texts) > 1:
        raise ConfigError("this command reads one --text-column")
    return texts[0]


def model_inputs(args: argparse.Namespace, meta: dict[str, Any]) -> Any:
    """What a saved model reads, with the column options given on the command line."""
    from ..inference.inputs import ModelInputs

    return ModelInputs.for_model(meta, text=args.text_column, label=getattr(args, "label_column", None),
                                 image=getattr(args, "image_column", None),
                                 numeric=getattr(args, "numeric_column", None),
                                 categorical=getattr(args, "categorical_column", None))


# -- the one CLI convention --------------------------------------------------------------------
# Every command follows it (docs/reference/cli.md states it for users; tests/cli/test_parsers.py
# walks every parser and holds each option to it):
#   * the main input is positional; --output PATH names what the command writes, '-' streams to stdout;
#   * --json FILE writes JSON to a file, --json - to stdout;
#   * validation data is --eval;
#   * a list option takes comma-separated values, and may also be repeated (the values add up);
#   * every option has help, and --help shows its default.
# Old spellings stay as deprecated aliases for a release: hidden from --help, they still work and
# warn with the new spelling.

# ``--output -`` / ``--json -`` (STDOUT, imported above) write to standard output, not a file.


class HelpFormatter(argparse.HelpFormatter):
    """Argparse's formatter, plus ``(default: X)`` on every option whose help does not state it already.

    Unlike :class:`argparse.ArgumentDefaultsHelpFormatter` it does not repeat a default that the
    help text already explains in words, and it says nothing for flags and empty defaults.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (not action.option_strings or "default" in text.lower() or default in (None, False, argparse.SUPPRESS)
                or isinstance(action, (argparse._HelpAction, argparse._VersionAction))):
            return text
        if isinstance(default, (list, tuple)):
            default = ",".join(map(str, default))
        shown = str(default).replace("%", "%%")
        return f"{text} (default: {shown})"


def warn_deprecated(old: str, new: str) -> None:
    """Tell the user an old spelling still works but will go."""
    import sys

    print(f"lmworks: warning: {old} is deprecated and will be removed in a later release; use {new}",
          file=sys.stderr)


class _DeprecatedAlias(argparse.Action):
    """An old option spelling: stores into the new option's ``dest`` and warns with the new spelling."""

    def __init__(self, option_strings, dest, *, new: str, **kw) -> None:
        super().__init__(option_strings, dest, **kw)
        self.new = new

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        """Warn with the new spelling, then store."""
        warn_deprecated(option_string or self.option_strings[0], self.new)
        setattr(namespace, self.dest, values)


def deprecated_alias(parser: Any, old: str, new: str, dest: str, *, type=None) -> None:  # noqa: A002
    """Add ``old`` as a hidden, deprecated spelling of ``new`` (same ``dest``, converted by ``type``)."""
    parser.add_argument(old, dest=dest, action=_DeprecatedAlias, new=new, type=type,
                        default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def positional_with_alias(parser: Any, dest: str, metavar: str, help: str, *, old: str) -> None:  # noqa: A002
    """The main input as a positional argument, still accepted under its old option spelling ``old``.

    Both are optional to argparse, so a command reads the value with :func:`need`.
    """
    parser.add_argument(dest, nargs="?", metavar=metavar, default=argparse.SUPPRESS, help=help)
    deprecated_alias(parser, old, f"the positional {metavar}", dest)


def need(args: argparse.Namespace, dest: str, metavar: str) -> Any:
    """The value of a positional added by :func:`positional_with_alias`; a clear error when it is missing."""
    from ..errors import ConfigError

    value = getattr(args, dest, None)
    if value is None:
        raise ConfigError(f"{metavar} is required (see --help)")
    return value


#: Each service's own default port, so two of them run side by side without a flag.
SERVE_PORT, ASSISTANT_PORT, RECOMMEND_PORT, ADVISOR_PORT, MONITOR_PORT = 8000, 8001, 8002, 8003, 8050
LABEL_PORT = 8004


def add_server_options(parser: Any, *, port: int) -> None:
    """``--host`` and ``--port`` of a service."""
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default: 127.0.0.1, this machine only; 0.0.0.0 for every interface)")
    parser.add_argument("--port", type=int, default=port, help="port to listen on (0 picks a free one)")


def split_rules(text: str) -> list[str]:
    """Split ``--rule`` values: ``surge:z=3,min_volume=10,threshold`` -> ``["surge:z=3,min_volume=10", "threshold"]``.

    A rule's own parameters are ``key=value`` pairs, so a comma-separated part without ``=`` starts a new rule.
    """
    rules: list[str] = []
    for part in split_commas(text):
        if rules and "=" in part and ":" not in part:
            rules[-1] += f",{part}"
        else:
            rules.append(part)
    return rules


class ListOption(argparse.Action):
    """A list option: ``--x a,b`` and ``--x a --x b`` both give ``[a, b]``.

    ``item`` converts each value; ``split`` (default: on commas) breaks one argument into values.
    A default given to the option is replaced, not extended, by the first value on the command line.
    """

    def __init__(self, option_strings, dest, *, item=str, split=None, **kw) -> None:
        kw.setdefault("metavar", "A,B")
        super().__init__(option_strings, dest, **kw)
        self.item = item
        self.split = split or split_commas

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        """Split, convert and add the values (the first use replaces the default)."""
        try:
            parsed = [self.item(v) for v in self.split(values)]
        except (TypeError, ValueError) as err:
            raise argparse.ArgumentError(self, f"invalid value {values!r} ({err})") from err
        seen = getattr(namespace, f"_given_{self.dest}", False)
        current = list(getattr(namespace, self.dest, None) or []) if seen else []
        setattr(namespace, self.dest, current + parsed)
        setattr(namespace, f"_given_{self.dest}", True)


def split_commas(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``."""
    return [part.strip() for part in str(text).split(",") if part.strip()]


def add_json_option(parser: Any, help: str, *, stream: bool = False) -> None:  # noqa: A002
    """``--json FILE`` (``-``: standard output), as every command that writes JSON takes it.

    A bare ``--json`` (the old spelling of commands that printed JSON) still means standard output,
    with a deprecation warning. ``stream``: the command writes JSON lines as it goes.
    """
    parser.add_argument("--json", metavar="FILE", nargs="?", const=_BARE_JSON, action=_JsonAction,
                        help=f"{help}; '-' for standard output" + (" (JSON lines)" if stream else ""))


_BARE_JSON = object()


class _JsonAction(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None) -> None:
        """Store the path; a bare ``--json`` (deprecated) means standard output."""
        if values is _BARE_JSON:
            warn_deprecated("a bare --json", "--json - (standard output) or --json FILE")
            values = STDOUT
        setattr(namespace, self.dest, values)


#: Where ``--json -`` writes: the real standard output while :func:`json_to_stdout` sends the
#: command's human-readable lines to stderr (so that ``lmworks evaluate ... --json - | jq`` reads pure JSON).
_JSON_STDOUT: contextvars.ContextVar[TextIO | None] = contextvars.ContextVar("lmworks_json_stdout", default=None)


def json_stream() -> TextIO:
    """The stream ``--json -`` writes to."""
    import sys

    return _JSON_STDOUT.get() or sys.stdout


@contextlib.contextmanager
def json_to_stdout(args: argparse.Namespace) -> Iterator[None]:
    """While a command runs with ``--json -``, its other printed lines go to stderr; restored afterwards."""
    import sys

    if getattr(args, "json", None) != STDOUT:
        yield
        return
    token = _JSON_STDOUT.set(sys.stdout)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        _JSON_STDOUT.reset(token)


def write_json(path: str, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` (atomically), or to standard output for ``-``."""
    import json

    from ..atomic import write_text_atomic

    text = json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n"
    if path == STDOUT:
        out = json_stream()
        out.write(text)
        out.flush()
    else:
        write_text_atomic(path, text)


def config_option(group: Any, config: Any, flag: str, field: str, kind: Any, help: str,  # noqa: A002
                  **kw: Any) -> None:
    """Add ``flag`` for ``field`` of a config (dataclass or instance).

    Its default, and its choices when the field holds a mode enum, come from the config, so the
    CLI cannot drift from what the config takes.
    """
    from ..modes import Mode

    default = getattr(config, field)
    if isinstance(default, Mode):
        kw.setdefault("choices", type(default).choices())
    if kind is bool:  # a switch: --flag turns on a False default, --no-flag turns off a True one
        group.add_argument(flag, dest=field, action="store_false" if default else "store_true", help=help, **kw)
        return
    if default is not None:
        help += f" (default: {default:g})" if isinstance(default, float) else f" (default: {default})"
    group.add_argument(flag, dest=field, type=kind, default=default, help=help, **kw)


def fields_from(args: argparse.Namespace, flags: Any) -> dict[str, Any]:
    """The config fields that ``config_option`` rows (``(flag, field, ...)``) defined, as parsed."""
    return {row[1]: getattr(args, row[1]) for row in flags}


#: Options that several commands share, with what each means everywhere and a phrase that every
#: command's help for it contains. ``tests/cli/test_parsers.py`` holds each shared option to this
#: table, so one flag cannot quietly take a second meaning; the CLI reference prints it.
SHARED_OPTIONS: dict[str, tuple[str, str]] = {
    "--api-key-env": ("name of the environment variable holding the API key a service requires",
                      "environment variable"),
    "--baselines": ("also evaluate the recommender's baselines (popularity, implicit ALS)",
                    "popularity and implicit als"),
    "--batch-size": ("texts (or pairs, users) per batch", "per batch"),
    "--delimiter": ("CSV field delimiter; detected from the header line by default", "csv field delimiter"),
    "--encoding": ("text encoding of CSV/JSONL input", "text encoding"),
    "--epochs": ("passes over the training data", "passes over"),
    "--eval": ("held-out validation data (dev data); never used for training", "held-out"),
    "--eval-every": ("evaluate every N steps (or rounds)", "every n"),
    "--eval-fraction": ("share of DATA held out as dev data when --eval is not given", "hold out this share of data"),
    "--freeze-embeddings": ("keep the pretrained word embeddings fixed", "word embeddings fixed"),
    "--head": ("classification head: mean pooling + linear, or the CLS head", "head"),
    "--head-lr-multiplier": ("the classification head learns this many times faster than the encoder",
                             "head learns this many times faster"),
    "--json": ("write JSON to FILE, or to standard output with -", "as json"),
    "--labels": ("the label set, comma-separated", "the label set"),
    "--label-separator": ("separator between the labels of a multi-label row in CSV", "multi-label"),
    "--limit": ("at most this many rows (or alerts)", "at most this many"),
    "--lr": ("peak learning rate", "learning rate"),
    "--max-chars": ("characters per text a service accepts", "characters per"),
    "--max-length": ("max tokens per text; longer ones are truncated", "max tokens per"),
    "--model": ("the encoder to start from: minilm, mpnet, a directory (train also: tfidf)", "encoder"),
    "--multi-label": ("rows may carry several labels (one score per label, a threshold each)", "several labels"),
    "--output": ("what the command writes (file or directory); - for standard output where it is a stream",
                 "write"),
    "-o": ("short for --output", "write"),
    "--port": ("the port a service listens on; each service has its own default", "port"),
    "--resume": ("continue an interrupted run: train from --checkpoint-dir, tune the study in --storage",
                 "continue"),
    "--risk": ("the client's risk profile: conservative, moderate or aggressive", "conservative, moderate"),
    "--seed": ("random seed", "seed"),
    "--sentiment-model": ("the monitor's sentiment model directory", "sentiment model"),
    "--test": ("held-out test data: train and distill evaluate on it, audit looks in it for copies of DATA's rows",
               "held-out"),
    "--text-column": ("column(s) holding the text", "column holding the text"),
    "--threads": ("torch/inference threads (default: the CPUs this process may use)", "threads"),
    "--topic-model": ("the monitor's topic model directory", "topic model"),
    "--top": ("how many entries to print per text, class or finding", "print"),
    "--window": ("the monitor's aggregation and alert window", "window"),
    "--workdir": ("where a command keeps its working files", "where"),
    "-k": ("cut-off: how many items to rank or list", "cut-off"),
}
