"""Train from files to a model directory: the one workflow behind ``lmworks train`` and ``lmworks distill``.

It reads the data files, builds the classifier (a multimodal one when the columns ask for it),
fits it with a checkpoint directory beside the output, and writes the model on rank 0 only
(under torchrun every rank trains its share, one writes). An interrupted run (Ctrl-C) still
writes its best checkpoint and keeps the checkpoint directory for ``--resume``; a finished run
removes it unless asked to keep it. The CLI only turns its options into a :class:`TrainJob` and
prints the :class:`TrainOutcome`; a Python user calls :func:`train_files` the same way.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .classifier import TextClassifier
from .inference.inputs import ModelInputs
from .model_dir import check_output_dir
from .runtime import init_distributed

LOGGER = logging.getLogger("lmworks")

#: The exit status of an interrupted run (128 + SIGINT), which the CLI returns.
INTERRUPTED = 130


@dataclass
class TrainJob:
    """What to train on and where to write it.

    Attributes
    ----------
    data, eval, test:
        Data files (``eval``: the dev data for early stopping; ``test``: scored once at the end).
    output:
        The model directory to write.
    inputs:
        Which columns hold the text (or image, numeric and categorical values) and the label.
    options:
        :class:`~lmworks.TrainConfig` fields for the classifier.
    checkpoint_dir:
        Where training checkpoints go (default: ``OUTPUT.ckpt`` beside the output).
    keep_checkpoints:
        Keep the checkpoint directory after a finished run.
    resume:
        Continue the run saved in the checkpoint directory.
    """

    data: str | Path
    output: str | Path
    inputs: ModelInputs = field(default_factory=ModelInputs)
    eval: str | Path | None = None
    test: str | Path | None = None
    options: dict[str, Any] = field(default_factory=dict)
    checkpoint_dir: str | Path | None = None
    keep_checkpoints: bool = False
    resume: bool = False
    progress: bool = True
    multi_label: bool = False
    label_separator: str = "|"
    encoding: str = "utf-8"
    delimiter: str | None = None

    def checkpoints(self) -> Path:
        """The checkpoint directory."""
        output = Path(self.output)
        return Path(self.checkpoint_dir) if self.checkpoint_dir else output.with_name(output.name + ".ckpt")


@dataclass
class TrainOutcome:
    """What a :func:`train_files` run did: the classifier, whether it wrote the model, its scores."""

    classifier: TextClassifier
    status: int = 0
    written: bool = False
    dev_metrics: dict[str, Any] | None = None
    test_metrics: dict[str, Any] | None = None


#: ``fit(classifier, train, dev, checkpoint_dir, job)`` -> the fitted classifier (distillation passes its own).
FitFn = Callable[[TextClassifier, Any, Any, Path, TrainJob], TextClassifier]


def fit_plainly(clf: TextClassifier, train: Any, dev: Any, checkpoints: Path, job: TrainJob) -> TextClassifier:
    """``TextClassifier.fit`` on the files' rows (TF-IDF keeps no checkpoints)."""
    LOGGER.info("training %s on %d rows from %s", clf.config.model, len(train), job.data)
    return clf.fit(train.inputs, train.require_labels(), dev.inputs if dev else None,
                   dev.require_labels() if dev else None,
                   checkpoint_dir=None if clf.config.model == "tfidf" else checkpoints, resume=job.resume,
                   progress=job.progress, columns=job.inputs.record())


def train_files(job: TrainJob, fit: FitFn = fit_plainly) -> TrainOutcome:
    """Read, fit, write the model directory (rank 0), score ``job.test``; see the module doc."""
    check_output_dir(job.output)  # fail before training, not after
    rank, world = init_distributed()  # under torchrun: one process per rank, each with its share of a batch
    train = _read(job, job.data)
    dev = _read(job, job.eval) if job.eval else None
    test = _read(job, job.test) if job.test else None
    checkpoints = job.checkpoints()
    clf = fit(new_classifier(job, has_dev=dev is not None), train, dev, checkpoints, job)
    info = clf.train_info_
    outcome = TrainOutcome(clf, dev_metrics=clf.dev_metrics_)
    if rank != 0:
        return outcome  # rank 0 writes the model and scores the test data
    if world > 1:
        LOGGER.info("trained on %d processes (global batch %d)", world, clf.config.batch_size)
    if info.get("interrupted") and info.get("best_step", 0) < 0:
        LOGGER.warning("interrupted before the first evaluation: no model written; "
                       "continue with the same command plus --resume")
        outcome.status = INTERRUPTED
        return outcome
    clf.save(job.output)
    outcome.written = True
    if info.get("interrupted"):
        LOGGER.warning("interrupted: wrote the best checkpoint so far (step %s) to %s; "
                       "continue with the same command plus --resume", info.get("best_step"), job.output)
        outcome.status = INTERRUPTED
    elif checkpoints.exists() and not job.keep_checkpoints:
        shutil.rmtree(checkpoints, ignore_errors=True)
    if "samples_per_second" in info:
        LOGGER.info("trained in %.1f s (%.1f samples/s)", info["train_seconds"], info["samples_per_second"])
    if test is not None:
        outcome.test_metrics = clf.evaluate(test.inputs, test.require_labels())  # type: ignore[arg-type]
    return outcome


def _read(job: TrainJob, path: str | Path) -> Any:
    return job.inputs.read(path, multi_label=job.multi_label, label_separator=job.label_separator,
                           encoding=job.encoding, delimiter=job.delimiter)


def new_classifier(job: TrainJob, *, has_dev: bool) -> TextClassifier:
    """The classifier ``job.options`` describe: multimodal when the columns ask for it; no dev split with dev data."""
    options = {**job.options, "multi_label": job.multi_label}
    if has_dev:
        options["eval_fraction"] = 0.0
    if job.inputs.multimodal is not None:
        from .fusion import MultimodalClassifier

        return MultimodalClassifier(columns=job.inputs.multimodal, **options)
    return TextClassifier(**options)
