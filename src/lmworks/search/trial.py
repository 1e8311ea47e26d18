"""One trial of a search: an ordinary ``TextClassifier.fit`` watched by the search.

The trial's dev evaluations go to Optuna (``trial.report``, keyed by the share of an epoch
seen, so trials of different batch sizes and models are compared at equal data), the pruner
may stop it there, and the time budget stops it between optimiser steps with its best
checkpoint kept. No second training loop: the engine's :class:`TrainMonitor` hook is all.
"""

from __future__ import annotations

import contextlib
import logging
import math
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..classifier import TextClassifier
from ..tokens import TRUNCATED
from ..training.config import TrainConfig
from .config import TuneConfig

LOGGER = logging.getLogger("lmworks")

#: Seconds kept for writing a trial's model directory, beyond the measured cost of dev scoring.
SAVE_SECONDS = 5.0
#: User attribute of an enqueued warm-start trial: it trains as ``lmworks train`` would with its values.
WARM_START = "warm_start"


@dataclass
class SearchData:
    """The data every trial of one search sees: the same training rows and the same dev split."""

    texts: list[str]
    labels: list[Any]
    eval_texts: list[str]
    eval_labels: list[Any]
    multi_label: bool = False
    columns: dict[str, Any] | None = None


@dataclass
class TrialOutcome:
    """What a finished trial gives the search."""

    values: list[float]
    classifier: TextClassifier
    attrs: dict[str, Any]


class Watch:
    """The :class:`~lmworks.training.engine.TrainMonitor` of one trial: report, prune, keep to the deadline.

    ``deadline`` is a ``time.monotonic()`` value at which training must be over; the watch
    stops earlier by the measured cost of the work after training (dev scoring ~ one
    evaluation per model scored, and saving), so the search as a whole ends on time.
    ``reserve`` is that cost as earlier trials measured it end to end (their ``tail_s``): a
    trial that has not evaluated yet has no estimate of its own.
    """

    def __init__(self, trial: Any, deadline: float, *, metric: str, prune: bool, evals_per_epoch: int = 4,
                 tick: Callable[[], None] | None = None, report: bool | None = None, reserve: float = 0.0) -> None:
        self.trial = trial
        self.reserve = reserve
        self.report = prune if report is None else report
        self.evals_per_epoch = evals_per_epoch
        self.deadline = deadline
        self.metric = metric
        self.prune = prune
        self.tick = tick
        self.eval_seconds = 0.0
        self._last = time.monotonic()
        self.reported: list[tuple[int, float]] = []
        self.stopped = False

    def on_evaluate(self, epochs: float, score: float, metrics: dict[str, Any]) -> None:
        """Report the dev metric at this share of an epoch; raise ``TrialPruned`` when the pruner says so."""
        import optuna

        now = time.monotonic()
        self.eval_seconds = max(self.eval_seconds, now - self._last)  # the evaluation and the step before it
        self._last = now
        value = float(metrics.get(self.metric, score))
        # On a grid of 1/evals_per_epoch epochs, in hundredths: the pruner compares trials at equal steps only,
        # and trials of other batch sizes evaluate after slightly different shares of an epoch.
        step = round(epochs * self.evals_per_epoch) * 100 // self.evals_per_epoch
        if self.reported and self.reported[-1][0] == step:
            return
        self.reported.append((step, value))
        if self.report:
            self.trial.report(value, step)
        if self.prune and self.trial.should_prune():
            raise optuna.TrialPruned(f"dev {self.metric} {value:.4f} after {epochs:.2f} epochs is below the "
                                     "pruner's bar")

    @property
    def last_step(self) -> float:
        """When training last asked whether to stop (or the watch began): where the trial's tail starts."""
        return self._last

    def should_stop(self) -> bool:
        """True when what is left of the budget only covers scoring and saving."""
        now = time.monotonic()
        self._last = now
        if self.tick is not None:
            self.tick()
        if now + max(3 * self.eval_seconds + SAVE_SECONDS, self.reserve) >= self.deadline:
            self.stopped = True
        return self.stopped


def trial_config(values: dict[str, Any], data: SearchData, tune: TuneConfig, *, warm: bool = False) -> TrainConfig:
    """The ``TrainConfig`` of a trial: its values, the search's dev split, and evaluations it can prune at.

    A warm-start trial (``warm``) keeps ``train``'s own evaluation cadence and patience, so it
    gives the model ``lmworks train`` gives for the same values (the same checkpoint chosen on
    dev), not a sibling evaluated more often. It still reports each evaluation, on the same
    epoch grid, as the pruner's reference.
    """
    options = {k: v for k, v in values.items() if k != "runtime"}
    config = TrainConfig(multi_label=data.multi_label, eval_fraction=0.0).replace(**options)
    if warm:
        return config
    steps_per_epoch = math.ceil(len(data.texts) / (config.batch_size * config.grad_accum_steps))
    every = max(1, math.ceil(steps_per_epoch / tune.evals_per_epoch))
    # Evaluating more often must not make early stopping more eager than train's default
    # (two epochs without improvement): patience counts evaluations.
    return config.replace(eval_every=every, patience=config.patience * tune.evals_per_epoch)


def run_trial(trial: Any, values: dict[str, Any], data: SearchData, tune: TuneConfig, *, deadline: float,
              trial_dir: Path | None, tick: Callable[[], None] | None = None, reserve: float = 0.0) -> TrialOutcome:
    """Fit, score on dev, measure latency if asked, write the model directory if ``trial_dir``.

    The outcome's ``tail_s`` is the time from the last optimiser step to the end (the blend,
    dev scoring, export, saving): the next trial of this model keeps that much in ``reserve``.
    """
    with _no_truncation_warnings():
        return _run_trial(trial, values, data, tune, deadline=deadline, trial_dir=trial_dir, tick=tick,
                          reserve=reserve)


def _run_trial(trial: Any, values: dict[str, Any], data: SearchData, tune: TuneConfig, *, deadline: float,
               trial_dir: Path | None, tick: Callable[[], None] | None = None, reserve: float = 0.0) -> TrialOutcome:
    warm = bool(trial.user_attrs.get(WARM_START))
    config = trial_config(values, data, tune, warm=warm)
    report = not tune.latency and tune.pruner != "none"  # Optuna prunes single-objective studies only
    watch = Watch(trial, deadline, metric=tune.metric.value, prune=report and not warm, report=report,
                  evals_per_epoch=tune.evals_per_epoch, tick=tick, reserve=reserve)
    clf = TextClassifier(config=config)
    start = time.monotonic()
    clf.fit(data.texts, data.labels, data.eval_texts, data.eval_labels, progress=False, monitor=watch,
            columns=data.columns)
    if clf.train_info_.get("interrupted"):
        raise KeyboardInterrupt
    attrs: dict[str, Any] = {"train_seconds": round(time.monotonic() - start, 1),
                             "stopped_by_budget": watch.stopped,
                             "epochs_seen": watch.reported[-1][0] / 100 if watch.reported else None}
    if values.get("runtime") == "int8" and config.model != "tfidf":
        clf = _int8(clf, data, trial_dir or Path(tempfile.mkdtemp(prefix="lmworks-int8-")) / "model")
        dev = clf.evaluate(data.eval_texts, data.eval_labels)
    else:
        dev = clf.dev_metrics_ or clf.evaluate(data.eval_texts, data.eval_labels)
        if trial_dir is not None:
            clf.save(trial_dir)
    if trial_dir is not None:
        attrs["model_dir"] = str(trial_dir.resolve())
    result = [float(dev[tune.metric.value])]
    if tune.latency:
        attrs["latency_ms"] = latency_ms(clf, data.eval_texts[: tune.latency_texts])
        result.append(attrs["latency_ms"])
    attrs["tail_s"] = round(time.monotonic() - watch.last_step, 1)
    return TrialOutcome(result, clf, attrs)


@contextlib.contextmanager
def _no_truncation_warnings() -> Iterator[None]:
    """Silence "N texts were truncated" during a trial: max_length is one of the choices searched."""

    def keep(record: logging.LogRecord) -> bool:
        return record.msg != TRUNCATED

    LOGGER.addFilter(keep)
    try:
        yield
    finally:
        LOGGER.removeFilter(keep)


def _int8(clf: TextClassifier, data: SearchData, target: Path) -> TextClassifier:
    """The trial's model exported to ONNX Runtime with int8 weights (``lmworks export --quantize int8``), loaded.

    An exported directory is not re-saved, only copied: it is written straight to ``target``.
    """
    from ..data import TextDataset
    from ..export import ExportOptions, export_onnx

    with tempfile.TemporaryDirectory(prefix="lmworks-fp32-") as tmp:
        clf.save(Path(tmp) / "fp32")
        export_onnx(Path(tmp) / "fp32", target, ExportOptions(quantize="int8", search=False),
                    eval_data=TextDataset(texts=data.eval_texts, labels=data.eval_labels, source="dev split"))
    return TextClassifier.load(target)


def latency_ms(clf: TextClassifier, texts: Sequence[str]) -> float:
    """Median milliseconds to classify one text, one call per text (a service's request), after warm-up."""
    sample = list(texts) or ["a short text"]
    for text in sample[:5]:
        clf.predict_proba([text])
    times = []
    for text in sample:
        start = time.perf_counter()
        clf.predict_proba([text])
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 3)
