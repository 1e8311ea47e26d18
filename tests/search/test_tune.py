"""lmworks tune: trials through the one training engine, pruning, the budget, storage, resume, workers, report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import free_port, make_sentiment
from lmworks import Predictor, TuneConfig, tune
from lmworks.cli import main
from lmworks.errors import ConfigError
from lmworks.search.space import default_space, length_choices, load_space, parse_fixed

optuna = pytest.importorskip("optuna")

# Small, fast trials: a tiny random BERT (real tokenizer) and TF-IDF; one thread each.
FAST = ["epochs=2", "batch_size=16", "num_threads=1", "lr=0.003", "head_lr_multiplier=1.0", "few_shot=off"]


def fixed(*extra: str) -> dict:
    return parse_fixed([*FAST, *extra])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tune-data")
    for name, n, seed in (("train", 300, 1), ("test", 80, 3), ("other", 300, 7)):
        texts, labels = make_sentiment(n, seed=seed)
        pd.DataFrame({"text": texts, "label": labels}).to_csv(folder / f"{name}.csv", index=False)
    return folder


def test_tune_returns_the_study_and_the_best_fitted_classifier(tiny_encoder):
    texts, labels = make_sentiment(300, seed=1)
    config = TuneConfig(budget_s=120, n_trials=4, models=("tfidf", str(tiny_encoder)), fixed=fixed())
    study, clf = tune(texts, labels, config=config, progress=False)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(study.trials) >= 4
    # Warm start: the cheapest model's defaults first, then the encoder's.
    assert study.trials[0].params["model"] == "tfidf" and study.trials[1].params["model"] == str(tiny_encoder)
    assert clf.dev_metrics_["macro_f1"] == pytest.approx(max(t.values[0] for t in done))
    assert clf.config.model == study.best_trial.params["model"]
    test_texts, test_labels = make_sentiment(80, seed=3)
    assert clf.score(test_texts, test_labels) > 0.9


def test_cli_writes_a_model_dir_with_trials_and_a_report_checked_in_a_browser(files, tmp_path, tiny_encoder):
    out = tmp_path / "tuned"
    summary = tmp_path / "tune.json"
    code = main(["tune", str(files / "train.csv"), "--output", str(out), "--test", str(files / "test.csv"),
                 "--budget", "90s", "--n-trials", "5", "--models", f"tfidf,{tiny_encoder}", "--fix", ",".join(FAST),
                 "--json", str(summary), "--quiet"])
    assert code == 0
    meta = json.loads((out / "lmworks.json").read_text())
    record = meta["tune"]
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == sum(record["trials"].values()) + record["repeats"] >= 5
    best = trials.loc[trials["number"] == record["best_trial"]].iloc[0]
    assert best["value_0"] == pytest.approx(record["best_values"][0])
    assert record["best_values"][0] == pytest.approx(trials.loc[trials["state"] == "complete", "value_0"].max())
    assert record["config"]["storage"].startswith("sqlite:///") and (tmp_path / "tuned.tune" / "study.db").is_file()
    assert record["test_metrics"]["n"] == 80
    # The output is an ordinary model directory: evaluate and predict work on it.
    predictor = Predictor.load(out)
    assert predictor.predict(["a wonderful and charming film"])[0] == "pos"
    assert main(["evaluate", str(out), str(files / "test.csv"), "--json", str(tmp_path / "eval.json")]) == 0
    assert json.loads((tmp_path / "eval.json").read_text())["accuracy"] == pytest.approx(
        record["test_metrics"]["accuracy"])

    page = tmp_path / "tune.html"
    assert main(["tune", "report", str(out), "--output", str(page)]) == 0
    from browser import Browser

    browser = Browser(free_port())
    try:
        browser.goto(page.as_uri())
        browser.wait_for("document.querySelectorAll('figure svg').length > 0")
        sizes = browser.eval("[...document.querySelectorAll('figure svg')].map(s => s.getBoundingClientRect().width)")
        assert len(sizes) >= 1 and min(sizes) > 200
        assert browser.eval("document.querySelectorAll('#trials tbody tr').length") == len(trials)
        assert f"Best trial {record['best_trial']}" in browser.eval("document.querySelector('.summary').textContent")
        browser.screenshot(Path(os.environ.get("LMWORKS_SCREENSHOTS", tmp_path)) / "tune_report.png")
    finally:
        browser.close()


def _study_with_a_strong_trial(metric_steps: dict[int, float]):
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=1,
                                                                                          n_warmup_steps=0))
    study.add_trial(optuna.trial.create_trial(value=1.0, intermediate_values=metric_steps))
    return study


def test_a_trial_reports_each_dev_evaluation_and_is_pruned_inside_the_engine(tiny_encoder):
    from lmworks.search.trial import SearchData, run_trial

    texts, labels = make_sentiment(200, seed=1)
    dev_texts, dev_labels = make_sentiment(60, seed=2)
    data = SearchData(texts, labels, dev_texts, dev_labels)
    study = _study_with_a_strong_trial({s: 1.0 for s in range(0, 401, 5)})
    trial = study.ask()
    values = {"model": str(tiny_encoder), **fixed("lr=1e-7", "epochs=4")}  # learns nothing: below the bar
    with pytest.raises(optuna.TrialPruned):
        run_trial(trial, values, data, TuneConfig(budget_s=60, evals_per_epoch=4), deadline=time.monotonic() + 60,
                  trial_dir=None)
    reported = study._storage.get_trial(trial._trial_id).intermediate_values
    assert list(reported) == [25]  # pruned at the first evaluation, a quarter of an epoch in


def test_the_budget_stops_a_trial_between_steps_and_keeps_its_best_checkpoint(tiny_encoder):
    from lmworks.search.trial import SearchData, run_trial

    texts, labels = make_sentiment(2000, seed=1)
    dev_texts, dev_labels = make_sentiment(60, seed=2)
    data = SearchData(texts, labels, dev_texts, dev_labels)
    study = optuna.create_study(direction="maximize")
    values = {"model": str(tiny_encoder), **fixed("epochs=50", "patience=0")}
    start = time.monotonic()
    outcome = run_trial(study.ask(), values, data, TuneConfig(budget_s=60), deadline=start + 12, trial_dir=None)
    assert outcome.attrs["stopped_by_budget"] is True
    assert time.monotonic() - start < 12
    info = outcome.classifier.train_info_
    assert info["stopped_early"] and info["steps"] < info["total_steps"]
    assert outcome.values[0] == pytest.approx(outcome.classifier.dev_metrics_["macro_f1"])


def test_a_trial_keeps_the_tail_earlier_trials_measured_before_its_first_evaluation(tiny_encoder):
    """A fresh trial has no dev timing of its own: the reserve (earlier trials' tail_s) stops it in time."""
    from lmworks.search.trial import SearchData, run_trial

    texts, labels = make_sentiment(2000, seed=1)
    data = SearchData(texts, labels, *make_sentiment(60, seed=2))
    values = {"model": str(tiny_encoder), **fixed("epochs=50", "patience=0")}
    start = time.monotonic()
    outcome = run_trial(optuna.create_study(direction="maximize").ask(), values, data, TuneConfig(budget_s=60),
                        deadline=start + 40, trial_dir=None, reserve=34)
    assert outcome.attrs["stopped_by_budget"] is True
    assert time.monotonic() - start < 15  # without the reserve it trains until about 35 s
    assert 0 <= outcome.attrs["tail_s"] < 34


def test_space_follows_the_data_and_the_user():
    assert length_choices([10] * 60 + [40] * 39 + [300]) == [32, 64]
    assert length_choices([200] * 100) == [256]
    space = default_space(["tfidf", "minilm"], [32, 64], latency=True)
    assert space["model"].choices == ("tfidf", "minilm") and space["runtime"].choices == ("torch", "int8")
    assert parse_fixed(["lr=3e-5", "max-length=64", "model=minilm"]) == {"lr": 3e-5, "max_length": 64,
                                                                         "model": "minilm"}


def _replay(pruner, models):
    """Trials of a small and a big model, reporting at each quarter epoch; their final states and last steps."""
    def curve(model: str, number: int) -> dict[int, float]:  # the big model starts lower and ends higher
        return {s: (0.80 if model == "small" else 0.55 + 0.001 * s) - 1e-4 * number for s in range(25, 401, 25)}

    study = optuna.create_study(direction="maximize", pruner=pruner)
    for number, model in enumerate(models):
        study.enqueue_trial({"model": model})
        trial = study.ask()
        assert trial.suggest_categorical("model", ["small", "big"]) == model
        for step, value in curve(model, number).items():
            trial.report(value, step)
            if trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                break
        else:
            study.tell(trial, value)
    return [(t.state.name, t.last_step) for t in study.trials]


@pytest.mark.parametrize("pruner", ["median", "hyperband"])
def test_each_model_is_judged_against_its_own_trials_only(pruner):
    from lmworks.search.study import make_pruner

    states = _replay(make_pruner(TuneConfig(pruner=pruner)), ["small", "big", "big", "small"])
    # The first big trial has no big peer: it finishes, though it trails the small one for 2.5 epochs.
    assert states[1] == ("COMPLETE", 400)
    # The second big trial trails the first big one and is pruned at the first point it may be.
    assert states[2] == ("PRUNED", 25)
    # Judged against every trial (Optuna's plain pruner), the first big trial is stopped at a quarter epoch.
    assert _replay(optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=20), ["small", "big"])[1] \
        == ("PRUNED", 25)


def test_warm_start_gives_a_larger_encoder_the_default_encoder_s_training_time(tiny_encoder):
    from lmworks.search.warm import encoder_cost, warm_start_values

    config = json.loads((Path(tiny_encoder) / "config.json").read_text())
    assert encoder_cost(str(tiny_encoder)) == config["num_hidden_layers"] * config["hidden_size"] ** 2
    big = Path(tiny_encoder).parent / "big-encoder"
    if not big.exists():
        big.mkdir()
        (big / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 12, "hidden_size": 768}))
    share = encoder_cost("minilm") / encoder_cost(str(big))  # 6 x 384^2 against 12 x 768^2: an eighth
    assert share == pytest.approx(1 / 8)
    values = warm_start_values(default_space(["tfidf", "minilm", str(big)], [64], latency=False), {})
    assert [v["model"] for v in values] == ["tfidf", "minilm", str(big)]
    assert "epochs" not in values[0] and values[1]["epochs"] == 2.0 and values[2]["epochs"] == 0.25
    # With latency as an objective, the default model's int8 export is warm-started too: the front's fast end.
    fronted = warm_start_values(default_space(["tfidf", "minilm", str(big)], [64], latency=True), {})
    assert [(v["model"], v.get("runtime")) for v in fronted] == [
        ("tfidf", None), ("minilm", "torch"), ("minilm", "int8"), (str(big), "torch")]
    assert warm_start_values(default_space(["minilm"], [64], latency=True), {"runtime": "torch"}) == [
        {k: v for k, v in fronted[1].items() if k != "runtime"}]


def test_the_warm_start_trial_is_the_model_train_would_give(tiny_encoder):
    """Same checkpoint as a plain fit: train's evaluation cadence (once an epoch), never pruned, still reported."""
    from lmworks import TextClassifier
    from lmworks.training.config import TrainConfig

    texts, labels = make_sentiment(200, seed=1)
    dev_texts, dev_labels = make_sentiment(60, seed=2)
    config = TuneConfig(budget_s=120, n_trials=1, models=(str(tiny_encoder),), fixed=fixed())
    study, clf = tune(texts, labels, dev_texts, dev_labels, config=config, progress=False)
    warm = study.trials[0]
    assert warm.user_attrs["warm_start"] is True and warm.state == optuna.trial.TrialState.COMPLETE
    assert sorted(warm.intermediate_values) == [100, 200]  # epochs 1 and 2, on the pruner's grid
    plain = TextClassifier(config=TrainConfig(eval_fraction=0.0).replace(**warm.params)).fit(
        texts, labels, dev_texts, dev_labels, progress=False)
    probe, _ = make_sentiment(20, seed=5)
    assert clf.predict_proba(probe) == pytest.approx(plain.predict_proba(probe), abs=1e-6)
    assert clf.dev_metrics_["macro_f1"] == pytest.approx(plain.dev_metrics_["macro_f1"])


@pytest.mark.parametrize(("make", "message"), [
    (lambda tmp: TuneConfig(budget_s="10s"), "too small for one trial: the minimum is 30 s"),
    (lambda tmp: TuneConfig(budget_s="ten minutes"), "expected a duration such as 30m"),
    (lambda tmp: TuneConfig(objectives="latency"), "exactly one dev metric"),
    (lambda tmp: parse_fixed(["lrr=0.1"]), "unknown parameter(s) lrr"),
    (lambda tmp: parse_fixed(["lr=-1"]), "lr must be > 0"),
    (lambda tmp: parse_fixed(["epochs"]), "expected NAME=VALUE"),
    (lambda tmp: load_space(_write(tmp, {"lr": {"low": 1e-3, "high": 1e-5}}), {}), "low=0.001 >= high=1e-05"),
    (lambda tmp: load_space(_write(tmp, {"lr": {"low": 0, "high": 1, "log": True}}), {}), "needs low > 0"),
    (lambda tmp: load_space(_write(tmp, {"warp": {"choices": [1]}}), {}), "unknown parameter(s) warp"),
    (lambda tmp: load_space(_write(tmp, {"head": {"choices": []}}), {}), "empty 'choices'"),
])
def test_bad_settings_are_one_line_errors(tmp_path, make, message):
    with pytest.raises(ConfigError) as err:
        make(tmp_path)
    assert message in str(err.value) and "\n" not in str(err.value)


def _write(folder: Path, obj) -> Path:
    path = folder / "space.json"
    path.write_text(json.dumps(obj))
    return path


def test_storage_errors_and_a_study_for_other_data(files, tmp_path, capsys):
    train = str(files / "train.csv")
    base = ["--budget", "40s", "--models", "tfidf", "--n-trials", "1", "--quiet"]
    unreachable = f"postgresql://nobody@127.0.0.1:{free_port()}/none"
    assert main(["tune", train, "--output", str(tmp_path / "a"), "--storage", unreachable, *base]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(err) == 1 and err[0].startswith(f"lmworks: error: cannot open --storage {unreachable}: ")
    assert main(["tune", train, "--output", str(tmp_path / "a"), "--storage", "redis://x", *base]) == 1
    assert "expected a database URL" in capsys.readouterr().err
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    assert main(["tune", train, "--output", str(tmp_path / "a"), "--storage", storage, *base]) == 0
    capsys.readouterr()
    assert main(["tune", train, "--output", str(tmp_path / "b"), "--storage", storage, *base]) == 1
    assert "already has 1 trial(s): pass --resume" in capsys.readouterr().err
    other = str(files / "other.csv")
    assert main(["tune", other, "--output", str(tmp_path / "b"), "--storage", storage, "--resume", *base]) == 1
    assert "was created for other data" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def _tune_process(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lmworks", "tune", *args, "--quiet"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def _wait_for(test, timeout: float = 120.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if test():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _trials(storage: str):
    try:
        return optuna.load_study(study_name="lmworks-tune", storage=storage).get_trials(deepcopy=False)
    except KeyError:
        return []


@pytest.mark.processes
def test_kill_9_loses_at_most_the_running_trial_and_resume_goes_on(files, tmp_path, tiny_encoder):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    args = [str(files / "train.csv"), "--output", str(tmp_path / "out"), "--storage", storage, "--budget", "5m",
            "--models", str(tiny_encoder), "--fix", ",".join([*FAST, "epochs=30"]), "--pruner", "none"]
    proc = _tune_process(args)
    try:
        def one_done_one_running() -> bool:
            states = [t.state for t in _trials(storage)]
            return optuna.trial.TrialState.COMPLETE in states and states[-1] == optuna.trial.TrialState.RUNNING
        _wait_for(one_done_one_running, what="a finished trial and a running one")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    before = _trials(storage)
    finished = {t.number: t.values for t in before if t.state == optuna.trial.TrialState.COMPLETE}
    running = [t for t in before if t.state == optuna.trial.TrialState.RUNNING]
    assert len(running) == 1
    lost = running[0]
    again = subprocess.run([sys.executable, "-m", "lmworks", "tune", *args[:-2], "--resume", "--n-trials", "1",
                            "--quiet"], capture_output=True, text=True, timeout=300,
                           env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert again.returncode == 0, again.stderr
    assert f"trial(s) {lost.number} were left running by a process that is gone" in again.stderr
    after = {t.number: t for t in _trials(storage)}
    assert {n: after[n].values for n in finished} == finished  # nothing finished was lost
    assert after[lost.number].state == optuna.trial.TrialState.FAIL
    retry = [t for t in after.values() if t.user_attrs.get("retry_of") == lost.number]
    assert len(retry) == 1 and retry[0].state == optuna.trial.TrialState.COMPLETE
    assert retry[0].params == lost.params
    assert (tmp_path / "out" / "lmworks.json").is_file()


@pytest.mark.processes
def test_two_workers_share_one_postgresql_study_without_losing_or_repeating_a_trial(files, tmp_path, tiny_encoder,
                                                                                      postgres_url):
    common = [str(files / "train.csv"), "--storage", postgres_url, "--budget", "3m", "--n-trials", "4",
              "--models", f"tfidf,{tiny_encoder}", "--fix", ",".join(FAST)]
    first = _tune_process([*common, "--output", str(tmp_path / "a")])
    _wait_for(lambda: len(_trials(postgres_url)) > 0, what="the first worker's study")
    second = _tune_process([*common, "--output", str(tmp_path / "b"), "--resume"])
    outputs = [p.communicate(timeout=300)[0] for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    trials = [t for t in _trials(postgres_url) if "repeat_of" not in t.user_attrs]
    states = {t.state for t in trials}
    assert states <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}  # none lost or stuck
    workers = [t.user_attrs["worker"]["pid"] for t in trials]
    assert set(workers) == {first.pid, second.pid}
    assert workers.count(first.pid) == 4 and workers.count(second.pid) == 4
    # The two warm-start configurations each ran once, whichever worker took them.
    warm = [t for t in trials if t.params.get("model") == "tfidf" and t.params.get("class_weights") == "none"]
    assert len(warm) == 1
    assert len({t.number for t in trials}) == len(trials) == 8


def test_accuracy_and_latency_give_a_measured_front_with_an_int8_export(files, tmp_path, tiny_encoder):
    out = tmp_path / "front"
    space = _write(tmp_path, {"model": {"choices": ["tfidf", str(tiny_encoder)]}, "runtime": {"choices": ["int8"]}})
    code = main(["tune", str(files / "train.csv"), "--output", str(out), "--objective", "accuracy,latency",
                 "--budget", "2m", "--n-trials", "3", "--models", f"tfidf,{tiny_encoder}", "--space", str(space),
                 "--fix", ",".join(FAST), "--quiet"])
    assert code == 0
    record = json.loads((out / "lmworks.json").read_text())["tune"]
    trials = pd.read_csv(out / "trials.csv")
    done = trials[trials["state"] == "complete"]
    assert (done["latency_ms"] > 0).all() and (done["value_1"] == done["latency_ms"]).all()  # measured, per trial
    assert record["front"] and record["best_trial"] in record["front"]
    encoder = done[done["model"] == str(tiny_encoder)]
    assert set(encoder["runtime"]) == {"int8"}
    int8_dir = Path(encoder.iloc[0]["model_dir"])
    if int(encoder.iloc[0]["number"]) in record["front"]:
        assert json.loads((int8_dir / "lmworks.json").read_text())["backend"] == "onnx"
    page = tmp_path / "tune.html"
    assert main(["tune", "report", str(out), "--output", str(page)]) == 0
    assert "<figure id='front'><svg" in page.read_text()
