"""``lmworks.tune``: the best model a time budget can buy, by an Optuna search over ``train`` runs.

The loop is Optuna's ask/tell: ask the storage for a trial, fit it (:mod:`lmworks.search.trial`),
tell the result. Everything that must survive a crash lives in the storage; everything a
user reads is written at the end: the best trial's model directory with ``trials.csv`` and the
study's record in ``lmworks.json``.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..classifier import TextClassifier
from ..data import as_label_names, split_dataset
from ..errors import ConfigError
from ..model_dir import check_output_dir, data_fingerprint
from ..training.config import TrainConfig
from .config import TuneConfig
from .output import write_output
from .space import Param, default_space, length_choices, load_space, suggest
from .study import open_study, require_optuna, this_worker
from .trial import WARM_START, SearchData, run_trial
from .warm import warm_start_values

LOGGER = logging.getLogger("lmworks")

#: Proposals in a row that repeat a finished trial after which a (small) space counts as exhausted.
MAX_REPEATS = 20


@dataclass
class TuneResult:
    """What :func:`tune` returns; unpacks as ``study, classifier = lmworks.tune(...)``.

    Attributes
    ----------
    study:
        The Optuna study (every trial, its parameters, values and state).
    classifier:
        The best trial's fitted classifier (with two objectives: the most accurate on the front).
    output:
        Where its model directory was written, if anywhere.
    test_metrics:
        Its metrics on the test data, scored once after the search; never used to choose.
    record:
        What ``lmworks.json`` holds about the search (``tune``).
    """

    study: Any
    classifier: TextClassifier
    output: Path | None = None
    test_metrics: dict[str, Any] | None = None
    record: dict[str, Any] = field(default_factory=dict)

    def __iter__(self):
        return iter((self.study, self.classifier))


class _Clock:
    """The budget, and a progress bar of time spent, trials run and the best score so far."""

    def __init__(self, config: TuneConfig, progress: bool) -> None:
        self.start = time.monotonic()
        self.end = self.start + config.budget_s
        self.train_end = self.start + config.budget_s * (1 - config.margin)
        self.tails: dict[str, float] = {}  # per model: the longest measured time from last step to trial end
        self.bar = None
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=int(config.budget_s), unit="s", dynamic_ncols=True, desc="tune",
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s {postfix}")

    def left(self) -> float:
        return self.end - time.monotonic()

    def reserve(self, model: Any) -> float:
        """Seconds a trial of ``model`` keeps after training: its model's measured tail, else the longest seen."""
        return self.tails.get(str(model), max(self.tails.values(), default=0.0))

    def add_tail(self, model: Any, seconds: float) -> None:
        self.tails[str(model)] = max(seconds, self.tails.get(str(model), 0.0))

    def tick(self) -> None:
        if self.bar is not None:
            spent = min(self.bar.total, int(time.monotonic() - self.start))
            if spent > self.bar.n:
                self.bar.update(spent - self.bar.n)  # tqdm redraws at most every mininterval

    def show(self, text: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(text)
        self.tick()

    def close(self) -> None:
        if self.bar is not None:
            self.tick()
            self.bar.close()


def tune(texts: Sequence[str], labels: Sequence[Any], eval_texts: Sequence[str] | None = None,
         eval_labels: Sequence[Any] | None = None, *, config: TuneConfig | None = None,
         multi_label: bool = False, output: str | Path | None = None, workdir: str | Path | None = None,
         test_texts: Sequence[str] | None = None, test_labels: Sequence[Any] | None = None,
         columns: dict[str, Any] | None = None, progress: bool = True,
         callbacks: Sequence[Callable[[Any, Any], None]] = ()) -> TuneResult:
    """Search models and hyperparameters for ``config.budget_s`` seconds; return the study and the best model.

    Without eval data, 10 % of the training rows are held out as the dev split (as ``train``
    does), the same rows for every trial. ``workdir`` keeps each trial's model directory
    (needed to resume or share a study across processes); ``output`` receives the best one
    with ``trials.csv``. Test data is scored once, at the end. ``callbacks`` are called as
    Optuna's ``study.optimize`` calls them, ``callback(study, frozen_trial)``, after each trial
    this process finishes (the trial's ``model_dir`` attribute names its directory until a
    better trial replaces it).
    """
    config = config or TuneConfig()
    clock = _Clock(config, progress)
    if output is not None:
        check_output_dir(output)
    data = _search_data(texts, labels, eval_texts, eval_labels, multi_label, columns)
    space = _space(config, data)
    fingerprint = data_fingerprint(data.texts, data.labels, data.eval_texts, data.eval_labels)
    study = open_study(config, fingerprint)
    if config.warm_start and not config.resume and not study.trials:  # a joining worker never re-enqueues
        for values in warm_start_values(space, config.fixed):
            study.enqueue_trial(values, user_attrs={WARM_START: True}, skip_if_exists=True)
    trials_dir = Path(workdir) / "trials" if workdir is not None else None
    mine: dict[int, TextClassifier] = {}
    interrupted = False
    try:
        interrupted = _search(study, space, data, config, clock, trials_dir, mine, callbacks)
    finally:
        clock.close()
    result = _finish(study, config, data, mine, output, test_texts, test_labels, clock)
    if interrupted:
        raise KeyboardInterrupt
    return result


def _search_data(texts, labels, eval_texts, eval_labels, multi_label: bool, columns) -> SearchData:
    texts, labels = [str(t) for t in texts], as_label_names(list(labels), multi_label)
    if eval_texts is None:
        base = TrainConfig()
        texts, labels, eval_texts, eval_labels = split_dataset(texts, labels, fraction=base.eval_fraction,
                                                               seed=base.seed, multi_label=multi_label)
    return SearchData(texts, labels, [str(t) for t in eval_texts], as_label_names(list(eval_labels), multi_label),
                      multi_label=multi_label, columns=columns)


def _space(config: TuneConfig, data: SearchData) -> dict[str, Param]:
    """The default space for this data (installed models, token budgets from its lengths), then the user's."""
    models = list(config.models or _installed_models())
    encoder = next((m for m in models if m != "tfidf"), None)
    lengths = length_choices(_token_counts(encoder, data.texts)) if encoder else [128]
    space = default_space(models, lengths, latency=config.latency)
    if config.space_file:
        space = load_space(config.space_file, space)
    return space


def _installed_models() -> list[str]:
    from ..models import list_models

    return [str(m["name"]) for m in list_models() if m["available"] and m["name"] in ("tfidf", "minilm", "mpnet")]


def _token_counts(model: str, texts: Sequence[str], sample: int = 2000) -> list[int]:
    """Token counts of (up to ``sample``) training texts under the first encoder's tokenizer."""
    from ..models import resolve_encoder
    from ..tokens import load_tokenizer

    tokenizer = load_tokenizer(resolve_encoder(model))
    step = max(1, len(texts) // sample)
    return [len(ids) for ids in tokenizer(list(texts[::step]), add_special_tokens=True)["input_ids"]]


def _search(study: Any, space: dict[str, Param], data: SearchData, config: TuneConfig, clock: _Clock,
            trials_dir: Path | None, mine: dict[int, TextClassifier],
            callbacks: Sequence[Callable[[Any, Any], None]] = ()) -> bool:
    """Ask, fit, tell until the budget or ``n_trials`` is spent; True when Ctrl-C stopped it."""
    done = repeats = 0
    while config.n_trials is None or done < config.n_trials:
        if clock.left() < 2 * config.margin * config.budget_s:
            break  # a trial started now could only be cut short
        trial = study.ask()
        trial.set_user_attr("worker", this_worker())
        values = suggest(trial, space, config.fixed)
        same = _finished_with(study, trial)
        if same is not None:
            # A small (categorical) space runs out: the sampler proposes a finished point again.
            trial.set_user_attr("repeat_of", same.number)
            study.tell(trial, same.values)
            repeats += 1
            if repeats >= MAX_REPEATS:
                LOGGER.info("the search space is exhausted (%d proposals in a row were finished trials)", repeats)
                break
            continue
        repeats = 0
        clock.show(f"trial {trial.number} ({values.get('model')}), best {_best_text(study, config)}")
        if not _fit_and_tell(study, trial, values, data, config, clock, trials_dir, mine, callbacks):
            LOGGER.warning("interrupted during trial %d: it is lost, the %d finished ones are kept", trial.number,
                           done)
            return True
        done += 1
        clock.show(f"{done} trial(s), best {_best_text(study, config)}")
    return False


def _fit_and_tell(study: Any, trial: Any, values: dict[str, Any], data: SearchData, config: TuneConfig,
                  clock: _Clock, trials_dir: Path | None, mine: dict[int, TextClassifier],
                  callbacks: Sequence[Callable[[Any, Any], None]]) -> bool:
    """Run one trial and tell the study how it ended (complete, pruned or failed); False on Ctrl-C."""
    optuna = require_optuna()
    try:
        outcome = run_trial(trial, values, data, config, deadline=clock.train_end,
                            trial_dir=trials_dir / str(trial.number) if trials_dir is not None else None,
                            tick=clock.tick, reserve=clock.reserve(values.get("model")))
    except optuna.TrialPruned as err:
        trial.set_user_attr("pruned", str(err))
        frozen = study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        LOGGER.info("trial %d (%s) pruned: %s", trial.number, values.get("model"), err)
    except KeyboardInterrupt:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return False
    except Exception:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        raise
    else:
        for key, value in outcome.attrs.items():
            trial.set_user_attr(key, value)
        clock.add_tail(values.get("model"), outcome.attrs["tail_s"])
        frozen = study.tell(trial, outcome.values)
        mine[trial.number] = outcome.classifier
        LOGGER.info("trial %d (%s): dev %s %s%s", trial.number, values.get("model"), config.metric.value,
                    f"{outcome.values[0]:.4f}", f", {outcome.values[1]:.2f} ms/text" if config.latency else "")
    for callback in callbacks:
        callback(study, frozen)
    _forget_beaten(study, mine, trials_dir)
    return True


def _finished_with(study: Any, trial: Any) -> Any:
    """A finished trial (not a repeat itself) with the same parameters as ``trial``, or ``None``."""
    optuna = require_optuna()
    for other in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if other.params == trial.params and "repeat_of" not in other.user_attrs:
            return other
    return None


def _best_text(study: Any, config: TuneConfig) -> str:
    best = best_trials(study)
    return f"{best[0].values[0]:.4f}" if best else "-"


def best_trials(study: Any) -> list[Any]:
    """The best finished trial (one objective) or the Pareto front, most accurate first."""
    optuna = require_optuna()
    if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        return []
    best = [study.best_trial] if len(study.directions) == 1 else list(study.best_trials)
    return sorted(best, key=lambda t: (-t.values[0], *t.values[1:]))


def _forget_beaten(study: Any, mine: dict[int, TextClassifier], trials_dir: Path | None) -> None:
    """Free the models (memory and trial folders) of this process's trials that are no longer best."""
    keep = {t.number for t in best_trials(study)}
    for number in [n for n in mine if n not in keep]:
        del mine[number]
        if trials_dir is not None:
            shutil.rmtree(trials_dir / str(number), ignore_errors=True)


def _finish(study: Any, config: TuneConfig, data: SearchData, mine: dict[int, TextClassifier],
            output: str | Path | None, test_texts, test_labels, clock: _Clock) -> TuneResult:
    """Pick the best trial, score it once on test, write the output directory."""
    best = best_trials(study)
    if not best:
        raise ConfigError(f"no trial finished within the budget of {config.budget_s:g} s "
                          f"({len(study.trials)} started); give a larger --budget")
    winner = best[0]
    clf = mine.get(winner.number)
    model_dir = winner.user_attrs.get("model_dir")
    if clf is None:
        if not model_dir or not Path(model_dir).is_dir():
            raise ConfigError(f"the best trial ({winner.number}) ran on {winner.user_attrs.get('worker')} and its "
                              f"model directory {model_dir} is not reachable here")
        clf = TextClassifier.load(model_dir)
    test = None
    if test_texts is not None and test_labels is not None:
        test = clf.evaluate(test_texts, test_labels)
    record = study_record(study, config, winner, clock, test)
    out = None
    if output is not None:
        out = write_output(Path(output), clf, study, record, Path(model_dir) if model_dir else None)
    return TuneResult(study, clf, out, test, record)


def study_record(study: Any, config: TuneConfig, winner: Any, clock: _Clock,
                 test: dict[str, Any] | None) -> dict[str, Any]:
    """``lmworks.json``'s ``tune`` entry: how the search ran and what it found."""
    states = [t.state.name.lower() for t in study.trials if "repeat_of" not in t.user_attrs]
    record: dict[str, Any] = {
        "config": config.to_dict(), "study_name": study.study_name,
        "objectives": [o.value for o in config.objectives],
        "best_trial": winner.number, "best_values": list(winner.values), "best_params": winner.params,
        "trials": {s: states.count(s) for s in sorted(set(states))},
        "repeats": sum("repeat_of" in t.user_attrs for t in study.trials),
        "elapsed_s": round(time.monotonic() - clock.start, 1),
        "importances": importances(study),
        "front": [t.number for t in best_trials(study)] if config.latency else None,
        "test_metrics": ({k: test[k] for k in ("accuracy", "macro_f1", "n") if k in test} if test else None),
    }
    return record


def importances(study: Any) -> dict[str, float]:
    """FANOVA importance of each parameter for the dev metric (empty until trials differ enough to tell)."""
    optuna = require_optuna()
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(done) < 3:
        return {}
    try:
        found = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0), target=lambda t: t.values[0])
    except (RuntimeError, ValueError):  # too few distinct values of any parameter yet
        return {}
    return {k: round(float(v), 4) for k, v in found.items()}
