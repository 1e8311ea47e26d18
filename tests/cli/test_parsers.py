"""The one CLI convention, checked on every parser: help on every option, one meaning per flag,
defaults shown, --json FILE|-, list options, deprecated aliases that still work."""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

import pytest

from lmworks.cli import build_parser, main, walk_parsers
from lmworks.cli.common import SHARED_OPTIONS, HelpFormatter, ListOption

PARSER = build_parser()
PARSERS = list(walk_parsers(PARSER))


def _options(parser):
    for action in parser._actions:
        if action.option_strings and not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            yield action


def _visible(action) -> bool:
    return action.help != argparse.SUPPRESS


def _family(action) -> str:
    """What kind of value a flag takes: none, a list, a number or a string."""
    if isinstance(action, (ListOption, argparse._AppendAction)):
        return "list"
    if action.nargs == 0:
        return "flag"
    name = getattr(action.type, "__name__", str(action.type))
    return "number" if name in ("int", "float", "positive_int", "non_negative_int") else "string"


def _commands(parser) -> str:
    return parser.prog.removeprefix("lmworks ")


def test_every_option_has_help():
    missing = [f"{_commands(p)} {a.option_strings[0]}" for p in PARSERS for a in _options(p) if not a.help]
    assert missing == []


def test_every_command_has_help_and_description():
    for parser in PARSERS[1:]:
        assert parser.description and len(parser.description.split()) >= 3, parser.prog
        assert parser.formatter_class is HelpFormatter, parser.prog


def test_one_flag_one_meaning():
    uses = collections.defaultdict(list)
    for parser in PARSERS:
        for action in filter(_visible, _options(parser)):
            for flag in action.option_strings:
                uses[flag].append((_commands(parser), action))
    problems = []
    for flag, where in uses.items():
        if len(where) < 2:
            continue
        families = {_family(a) for _, a in where}
        if len(families) > 1:
            problems.append(f"{flag} takes {sorted(families)} in {[c for c, _ in where]}")
        helps = {a.help for _, a in where}
        if len(helps) == 1:  # one definition shared by the commands
            continue
        if flag not in SHARED_OPTIONS:
            problems.append(f"{flag} is defined separately in {[c for c, _ in where]}: add it to SHARED_OPTIONS")
            continue
        phrase = SHARED_OPTIONS[flag][1]
        problems += [f"{flag} in {c}: help does not say {phrase!r}: {a.help!r}" for c, a in where
                     if phrase not in a.help.lower()]
    assert problems == []


def test_shared_options_table_has_no_stale_entries():
    counts = collections.Counter(flag for p in PARSERS for a in filter(_visible, _options(p))
                                 for flag in a.option_strings)
    assert [flag for flag in SHARED_OPTIONS if counts[flag] < 2] == []


def test_help_shows_defaults():
    """Every option with a real default shows it in --help."""
    problems = []
    for parser in PARSERS:
        formatter = parser._get_formatter()
        for action in filter(_visible, _options(parser)):
            if action.default in (None, False, argparse.SUPPRESS) or action.nargs == 0:
                continue
            shown = formatter._get_help_string(action) or ""
            if "default" not in shown.lower():
                problems.append(f"{_commands(parser)} {action.option_strings[0]}")
    assert problems == []


def test_every_json_option_takes_a_file_or_stdout():
    json_options = [(p, a) for p in PARSERS for a in _options(p) if "--json" in a.option_strings]
    assert len(json_options) >= 15
    for parser, action in json_options:
        assert action.metavar == "FILE", parser.prog
        assert "'-' for standard output" in action.help, parser.prog
        assert parser.parse_known_args(["--json", "-"])[0].json == "-" if not _positionals(parser) else True


def _positionals(parser):
    return [a for a in parser._actions if not a.option_strings and not isinstance(a, argparse._SubParsersAction)]


def test_validation_data_is_eval_everywhere():
    flags = {flag for p in PARSERS for a in filter(_visible, _options(p)) for flag in a.option_strings}
    assert {"--dev", "--calibration", "--validation", "--valid"} & flags == set()


def test_each_service_has_its_own_default_port():
    ports = {}
    for parser in PARSERS:
        for action in _options(parser):
            if "--port" in action.option_strings and parser.prog.endswith("serve"):
                ports[_commands(parser)] = action.default
    assert len(ports) == 5 and len(set(ports.values())) == 5, ports


def test_list_options_take_commas_and_repeats():
    args = PARSER.parse_args(["train", "x.csv", "-o", "out", "--text-column", "a,b", "--text-column", "c"])
    assert args.text_column == ["a", "b", "c"]
    args = PARSER.parse_args(["advisor", "backtest", "p.csv", "--seeds", "3,4"])
    assert args.seeds == [3, 4]
    assert PARSER.parse_args(["advisor", "backtest", "p.csv"]).seeds == [0, 1, 2]
    args = PARSER.parse_args(["monitor", "ingest", "s.jsonl", "--db", "m.db", "--sentiment-model", "m",
                              "--rule", "surge:z=3,min_volume=5,threshold"])
    assert args.rule == ["surge:z=3,min_volume=5", "threshold"]
    with pytest.raises(SystemExit):
        PARSER.parse_args(["advisor", "backtest", "p.csv", "--seeds", "1,x"])


@pytest.mark.parametrize(("argv", "dest", "value", "new"), [
    (["assistant", "build", "faq.csv", "-o", "o", "--calibration", "q.csv"], "eval", "q.csv", "--eval"),
    (["assistant", "tune", "dir", "-o", "o", "--dev", "q.csv"], "eval", "q.csv", "--eval"),
    (["federated", "simulate", "d.csv", "-o", "o", "--alpha", "0.3"], "dirichlet_alpha", 0.3, "--dirichlet-alpha"),
    (["recommend", "train", "--interactions", "i.csv", "-o", "o"], "interactions", "i.csv", "INTERACTIONS"),
    (["recommend", "train", "i.csv", "-o", "o", "--history", "7"], "history", 7, "--history-size"),
    (["monitor", "alerts", "--db", "m.sqlite"], "db", "m.sqlite", "DB"),
    (["federated", "client", "--data", "d.csv"], "data", "d.csv", "DATA"),
    (["predict", "m", "d.csv", "-o", "o.csv", "--address", "auto"], "ray_address", "auto", "--ray-address"),
    (["models", "--json"], "json", "-", "--json -"),
])
def test_old_spellings_still_work_and_warn(argv, dest, value, new, capsys):
    args = PARSER.parse_args(argv)
    assert getattr(args, dest) == value
    err = capsys.readouterr().err
    assert "deprecated" in err and new in err


def test_json_dash_prints_pure_json_on_stdout(capsys):
    assert main(["models", "--json", "-"]) == 0
    out = capsys.readouterr().out
    rows = json.loads(out)
    assert {"name", "available"} <= set(rows[0])


def test_json_file_is_written(tmp_path, capsys):
    target = tmp_path / "models.json"
    assert main(["models", "--json", str(target)]) == 0
    assert capsys.readouterr().out == ""
    assert json.loads(target.read_text())[0]["name"]


def test_verbose_shows_the_traceback_with_its_cause(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine", "label": "a"}\n{not json\n', encoding="utf-8")
    assert main(["train", str(bad), "-o", str(tmp_path / "m"), "--model", "tfidf"]) == 1
    quiet = capsys.readouterr().err
    assert "line 2: invalid JSON" in quiet and "Traceback" not in quiet
    assert main(["-v", "train", str(bad), "-o", str(tmp_path / "m"), "--model", "tfidf"]) == 1
    loud = capsys.readouterr().err
    assert "Traceback" in loud and "JSONDecodeError" in loud
    assert "The above exception was the direct cause of the following exception" in loud
    assert loud.rstrip().endswith("invalid JSON (Expecting property name enclosed in double quotes)")
    assert not (tmp_path / "m").exists()


def test_predict_output_dash_streams_json_lines(tiny_model_dir, tmp_path, capsys):
    data = tmp_path / "in.csv"
    data.write_text("id,text\n7,what a fine film\n8,dull and tedious\n", encoding="utf-8")
    assert main(["predict", str(tiny_model_dir), str(data), "--output", "-", "--quiet"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [str(r["id"]) for r in rows] == ["7", "8"]
    assert all(r["label"] in ("pos", "neg") for r in rows)
    assert not Path("-").exists()


def test_federated_flags_are_the_config_fields_with_its_defaults():
    """`lmworks federated` builds its config from the flags' table: with no flags, the config's own defaults;
    every field of FederatedConfig has a flag (or is set otherwise), and each flag reaches its field."""
    import dataclasses

    from lmworks.cli.federated import FEDERATION, LOCAL_TRAINING, _config
    from lmworks.federated.config import FederatedConfig, default_local_training

    args = PARSER.parse_args(["federated", "simulate", "data.csv", "--output", "out"])
    assert _config(args) == FederatedConfig(min_clients=2)
    flagged = {row[1] for row in FEDERATION}
    assert {f.name for f in dataclasses.fields(FederatedConfig)} - flagged == {"train", "min_clients"}
    args = PARSER.parse_args(["federated", "simulate", "data.csv", "--output", "out", "--rounds", "3", "--scaffold",
                              "--no-lr-decay", "--optimizer", "sgd", "--head", "cls", "--no-logit-adjustment",
                              "--seed", "7", "--dp-clipping-norm", "2.5"])
    config = _config(args)
    assert (config.rounds, config.scaffold, config.lr_decay, config.dp_clipping_norm) == (3, True, False, 2.5)
    assert (config.train.head, config.train.logit_adjustment, config.train.seed) == ("cls", False, 7)
    assert {row[1] for row in LOCAL_TRAINING} <= {f.name for f in dataclasses.fields(default_local_training())}
    with pytest.raises(SystemExit):  # choices come from the mode enum
        PARSER.parse_args(["federated", "simulate", "d.csv", "--output", "o", "--optimizer", "adam"])
