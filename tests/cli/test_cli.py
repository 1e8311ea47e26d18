"""The command line, end to end on files, with the tiny real checkpoint."""

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import make_sentiment
from lmworks import TextClassifier
from lmworks.cli import main


def write_data(path: Path, texts, labels, text_col="text", label_col="label"):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow([text_col, label_col])
        w.writerows(zip(texts, labels))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    train = write_data(d / "train.csv", *make_sentiment(200, seed=11))
    dev = write_data(d / "dev.csv", *make_sentiment(40, seed=12))
    test = write_data(d / "test.csv", *make_sentiment(40, seed=13))
    return d, train, dev, test


TINY = ["--few-shot", "off", "--epochs", "6", "--batch-size", "16", "--lr", "3e-3", "--head-lr-multiplier", "1",
        "--max-length", "32", "--threads", "1", "--quiet"]


@pytest.fixture(scope="module")
def trained(files, tiny_encoder):
    d, train, dev, test = files
    out = d / "model"
    code = main(["train", str(train), "--eval", str(dev), "--model", str(tiny_encoder), "--output", str(out),
                 "--json", str(d / "train_metrics.json"), *TINY])
    assert code == 0
    return out


def test_train_writes_model_dir_and_removes_checkpoints(trained, files):
    d = files[0]
    assert (trained / "lmworks.json").is_file() and (trained / "model.safetensors").is_file()
    assert (trained / "train_log.jsonl").is_file()
    assert not (d / "model.ckpt").exists()
    metrics = json.loads((d / "train_metrics.json").read_text())
    assert metrics["dev"]["n"] == 40


def test_evaluate_prints_report_and_json(trained, files, capsys, tmp_path):
    _, _, _, test = files
    assert main(["evaluate", str(trained), str(test), "--json", str(tmp_path / "m.json")]) == 0
    out = capsys.readouterr().out
    assert "precision" in out and "confusion matrix" in out and "macro avg" in out
    m = json.loads((tmp_path / "m.json").read_text())
    assert set(m) >= {"accuracy", "macro_f1", "weighted_f1", "per_class", "confusion_matrix", "n"}
    assert m["n"] == 40 and m["accuracy"] > 0.8
    assert set(m["per_class"]["pos"]) == {"precision", "recall", "f1", "support"}
    # The numbers are the model's own on this file: recomputed from its predictions, and printed as saved.
    frame = pd.read_csv(test)
    predicted = TextClassifier.load(trained).predict(frame["text"].tolist())
    truth = frame["label"].tolist()
    assert m["accuracy"] == pytest.approx(sum(p == t for p, t in zip(predicted, truth)) / len(truth))
    said_pos = [t for p, t in zip(predicted, truth) if p == "pos"]
    assert m["per_class"]["pos"]["precision"] == pytest.approx(said_pos.count("pos") / len(said_pos))
    assert m["per_class"]["pos"]["support"] == truth.count("pos")
    assert f"{m['accuracy']:.4f}" in out.split("accuracy", 2)[2].splitlines()[0]


def test_evaluate_reports_unseen_label(trained, tmp_path, capsys):
    data = write_data(tmp_path / "d.csv", ["a great film", "an awful film", "so so"], ["pos", "neg", "neutral"])
    assert main(["evaluate", str(trained), str(data)]) == 0
    captured = capsys.readouterr()
    assert "never saw" in captured.out and "neutral" in captured.err


@pytest.mark.parametrize("ext", ["csv", "jsonl", "parquet"])
def test_predict_writes_rows_labels_and_probabilities(trained, files, tmp_path, ext):
    import pandas as pd

    _, _, _, test = files
    out = tmp_path / f"pred.{ext}"
    assert main(["predict", str(trained), str(test), "--output", str(out), "--quiet", "--chunk-size", "7"]) == 0
    frame = {"csv": pd.read_csv, "jsonl": lambda p: pd.read_json(p, lines=True), "parquet": pd.read_parquet}[ext](out)
    assert len(frame) == 40
    assert list(frame.columns) == ["text", "label_input", "label", "prob_neg", "prob_pos"]
    assert ((frame["prob_neg"] + frame["prob_pos"] - 1).abs() < 1e-4).all()
    assert (frame["label"] == frame["label_input"]).mean() > 0.8


def test_predict_from_stdin(trained, tmp_path):
    out = tmp_path / "p.jsonl"
    lines = "\n".join(json.dumps({"text": t, "id": i}) for i, t in enumerate(["a great film", "dull"]))
    result = subprocess.run([sys.executable, "-m", "lmworks.cli", "predict", str(trained), "-", "--output",
                             str(out), "--quiet"], input=lines, text=True, capture_output=True)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [0, 1] and all("prob_pos" in r for r in rows)


def test_tfidf_baseline_cli(files, tmp_path, capsys):
    _, train, dev, test = files
    assert main(["train", str(train), "--eval", str(dev), "--test", str(test), "--model", "tfidf",
                 "--output", str(tmp_path / "t")]) == 0
    trained_out = capsys.readouterr().out
    assert "test metrics" in trained_out
    assert main(["evaluate", str(tmp_path / "t"), str(test), "--json", str(tmp_path / "e.json")]) == 0
    evaluated = json.loads((tmp_path / "e.json").read_text())
    # train --test and a later evaluate score the same saved model on the same file: one accuracy.
    test_block = trained_out.split("test metrics", 1)[1]
    assert f"{evaluated['accuracy']:.4f}" in test_block and evaluated["accuracy"] > 0.9


def run_cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "lmworks.cli", *map(str, args)], capture_output=True,
                          text=True, **kw)


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing_file", "nope.csv: file not found"),
        ("missing_column", "column 'text' not found"),
        ("empty_text", "row 2: column 'text' is empty"),
        ("non_string", "line 2: column 'text' must be a string"),
        ("missing_label", "row 1: column 'label' is empty"),
        ("single_class", "single class 'pos'"),
        ("encoding", "not valid utf-8 text"),
        ("unknown_model", "unknown --model 'bert-huge'"),
    ],
)
def test_bad_input_one_line_error_and_no_output(tmp_path, tiny_encoder, case, expected):
    data = tmp_path / "d.csv"
    model = str(tiny_encoder)
    if case == "missing_file":
        data = tmp_path / "nope.csv"
    elif case == "missing_column":
        write_data(data, ["a"], ["pos"], text_col="body")
    elif case == "empty_text":
        write_data(data, ["fine", " "], ["pos", "neg"])
    elif case == "non_string":
        data = tmp_path / "d.jsonl"
        data.write_text('{"text": "ok", "label": "a"}\n{"text": 3, "label": "b"}\n')
    elif case == "missing_label":
        write_data(data, ["fine", "bad"], ["", "neg"])
    elif case == "single_class":
        write_data(data, ["fine", "good", "nice"] * 5, ["pos"] * 15)
    elif case == "encoding":
        data.write_bytes("text,label\nna\xefve,pos\nbad,neg\n".encode("latin-1"))
    elif case == "unknown_model":
        write_data(data, *make_sentiment(20))
        model = "bert-huge"
    result = run_cli("train", data, "--model", model, "--output", tmp_path / "out", "--quiet")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("lmworks: error: ") and expected in lines[-1], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_corrupt_model_dir_cli(trained, tmp_path, files):
    import shutil

    copy = tmp_path / "m"
    shutil.copytree(trained, copy)
    (copy / "model.safetensors").write_bytes(b"\0" * 100)
    out = tmp_path / "p.csv"
    result = run_cli("predict", copy, files[3], "--output", out)
    assert result.returncode == 1 and "checksum mismatch" in result.stderr
    assert not out.exists()


def test_failed_predict_leaves_no_partial_output(trained, tmp_path):
    data = tmp_path / "d.csv"
    write_data(data, ["good"] * 30 + [""], ["x"] * 31)
    out = tmp_path / "p.csv"
    out.write_text("previous results\n")
    assert main(["predict", str(trained), str(data), "--output", str(out), "--chunk-size", "10", "--quiet"]) == 1
    assert out.read_text() == "previous results\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".p.csv")]


def test_models_command(capsys):
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = {r["name"]: r for r in rows}
    assert names["minilm"]["available"] and names["tfidf"]["kind"] == "baseline"


def test_help_explains_every_command(capsys):
    """Every command and subcommand answers --help with its usage, what it does and every option."""
    import argparse

    from lmworks.cli import build_parser, walk_parsers

    parsers = list(walk_parsers(build_parser()))[1:]
    seen = set()
    for parser in parsers:
        path = parser.prog.split()[1:]
        with pytest.raises(SystemExit) as exit_:
            main([*path, "--help"])
        assert exit_.value.code == 0, path
        out = " ".join(capsys.readouterr().out.split())  # the formatter wraps lines
        assert out.startswith(f"usage: {parser.prog}"), path
        assert " ".join(parser.description.split())[:60] in out, path
        for action in parser._actions:
            if action.help != argparse.SUPPRESS:
                assert all(flag in out for flag in action.option_strings), (path, action.option_strings)
        seen.add(tuple(path))
    assert {("train",), ("tune",), ("monitor", "alerts"), ("label", "start")} <= seen


def test_ctrl_c_keeps_best_checkpoint_and_resume_finishes(files, tiny_encoder, tmp_path):
    _, train, dev, _ = files
    out = tmp_path / "model"
    args = ["train", train, "--eval", dev, "--model", tiny_encoder, "--output", out, "--few-shot", "off",
            "--epochs", "400", "--eval-every", "5", "--patience", "0", "--batch-size", "16", "--max-length", "32",
            "--threads", "1", "--quiet"]
    proc = subprocess.Popen([sys.executable, "-m", "lmworks.cli", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = tmp_path / "model.ckpt" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline:
        if log.exists() and sum('"event": "eval"' in line for line in log.read_text().splitlines()) >= 2:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "--resume" in err
    meta = json.loads((out / "lmworks.json").read_text())
    assert meta["train_info"]["interrupted"] is True
    assert meta["train_info"]["best_step"] > 0
    assert (tmp_path / "model.ckpt" / "trainer_state.pt").is_file()
    # Resume with a shorter budget so the test ends: epochs is allowed to change on resume.
    args[args.index("--epochs") + 1] = str(max(1, (meta["train_info"]["steps"] // 13) + 1))
    result = run_cli(*args, "--resume", timeout=300)
    assert result.returncode == 0, result.stderr
    meta = json.loads((out / "lmworks.json").read_text())
    assert meta["train_info"]["interrupted"] is False
    assert not (tmp_path / "model.ckpt").exists()


def test_refuses_to_replace_unrelated_folder(files, tmp_path):
    _, train, _, _ = files
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    assert main(["train", str(train), "--model", "tfidf", "--output", str(precious)]) == 1
    assert (precious / "notes.txt").read_text() == "keep me"


def test_resume_with_other_data_refused(files, tiny_encoder, tmp_path, capsys):
    _, train, dev, test = files
    out = tmp_path / "m"
    args = ["--eval", str(dev), "--model", str(tiny_encoder), "--output", str(out), "--keep-checkpoints", *TINY]
    assert main(["train", str(train), *args]) == 0
    assert main(["train", str(test), *args, "--resume"]) == 1
    assert "data differ from the checkpointed run" in capsys.readouterr().err


def test_semicolon_csv_trains_evaluates_and_predicts(tmp_path, capsys):
    """A European spreadsheet export (';'-separated) works without options; the delimiter is reported."""
    texts, labels = make_sentiment(120, seed=51)
    path = tmp_path / "reviews.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, delimiter=";")
        w.writerow(["review", "stars"])
        w.writerows(zip(texts, labels))
    assert main(["train", str(path), "--text-column", "review", "--label-column", "stars", "--model", "tfidf",
                 "--output", str(tmp_path / "m"), "--quiet"]) == 0
    assert main(["evaluate", str(tmp_path / "m"), str(path), "--text-column", "review", "--label-column",
                 "stars", "--json", str(tmp_path / "e.json")]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["n"] == 120
    assert main(["predict", str(tmp_path / "m"), str(path), "--text-column", "review", "--output",
                 str(tmp_path / "p.csv"), "--quiet"]) == 0
    with open(tmp_path / "p.csv", newline="", encoding="utf-8") as fh:
        assert len(list(csv.DictReader(fh))) == 120
    captured = capsys.readouterr()
    assert "detected ';' as the CSV delimiter" in captured.err
