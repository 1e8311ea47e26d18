"""``TextClassifier``: the scikit-learn-shaped public API for text classification.

It owns what every backend shares: label encoding and order, the dev split used
for early stopping, multi-label thresholds tuned on dev, metrics, and the model
directory. Backends (:mod:`lmworks.backends`) only map texts to probabilities.

It follows scikit-learn's estimator contract: the constructor only stores settings
(in one :class:`~lmworks.TrainConfig`, every field of which ``get_params`` and
``set_params`` reach), ``fit`` returns ``self``, learned state ends in ``_`` and
exists only after ``fit`` (or ``load``), so ``sklearn.base.clone``, ``Pipeline`` and
``GridSearchCV`` work with it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from .atomic import atomic_dir
from .backends import Backend, FitRun, backend_for_model
from .data import as_label_names, label_set, split_dataset
from .errors import DataError, NotFittedError
from .evaluation import classification_metrics, multilabel_metrics, tune_thresholds
from .model_dir import check_output_dir, data_fingerprint, read_meta, write_meta
from .modes import Task
from .teacher import TeacherSignal
from .training.config import TrainConfig

LOGGER = logging.getLogger("lmworks")


class TextClassifier(ClassifierMixin, BaseEstimator):
    """Fine-tune and apply a text classifier (single- or multi-label).

    Parameters
    ----------
    model:
        ``"minilm"`` (default), ``"mpnet"``, ``"tfidf"`` or a transformers checkpoint dir;
        ``None`` keeps ``config.model``.
    config:
        A :class:`~lmworks.training.TrainConfig`; keyword options override its fields.
    **options:
        Any :class:`TrainConfig` field, e.g. ``epochs=1, multi_label=True``. A misspelt
        name is an error.

    Attributes
    ----------
    labels_ : list of str
        Label names; column ``j`` of :meth:`predict_proba` is ``labels_[j]``.
    thresholds_ : ndarray or None
        Per-label decision thresholds (multi-label only).
    dev_metrics_ : dict or None
        Metrics of the kept checkpoint on the dev data.
    train_info_ : dict
        Throughput, steps, whether training was interrupted, and the metrics history.
    meta_ : dict
        What ``lmworks.json`` records about the model (task, labels, head, metrics...):
        what :class:`~lmworks.Predictor` and the services read.
    """

    def __init__(self, model: str | None = None, *, config: TrainConfig | None = None, **options: Any) -> None:
        base = TrainConfig.of(config)
        self.config = base.replace(**({"model": model} if model is not None else {}), **options)

    @property
    def model(self) -> str:
        """The encoder name or path (``config.model``)."""
        return self.config.model

    # -- scikit-learn parameters ----------------------------------------------------------
    @classmethod
    def _get_param_names(cls) -> list[str]:
        return sorted(f.name for f in dataclasses.fields(TrainConfig))

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Every :class:`TrainConfig` field by name (``model`` included)."""
        return {f.name: getattr(self.config, f.name) for f in dataclasses.fields(TrainConfig)}

    def set_params(self, **params: Any) -> TextClassifier:
        """Change settings (validated as the config is; a misspelt name is an error); returns ``self``."""
        self.config = self.config.replace(**params)
        return self

    def __repr__(self, N_CHAR_MAX: int = 700) -> str:  # noqa: N803 - scikit-learn's signature
        default = type(self)().get_params()
        changed = {k: v for k, v in self.get_params().items() if default[k] != v}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "backend_")

    @property
    def classes_(self) -> np.ndarray:
        """The labels as an array (scikit-learn's name for :attr:`labels_`)."""
        self.check_fitted()
        return np.asarray(self.labels_)

    # -- fitting -------------------------------------------------------------------------
    def fit(
        self,
        texts: Sequence[str],
        labels: Sequence[Any],
        eval_texts: Sequence[str] | None = None,
        eval_labels: Sequence[Any] | None = None,
        *,
        checkpoint_dir: str | Path | None = None,
        resume: bool = False,
        progress: bool = True,
        teacher: TeacherSignal | None = None,
        columns: dict[str, Any] | None = None,
        monitor: Any = None,
    ) -> TextClassifier:
        """Train on ``texts``/``labels``; early-stop on ``eval_*`` (or a split of the data).

        Labels are strings (or anything with a string form); for multi-label data
        each label is a list of names. ``teacher`` adds a teacher's soft targets
        (knowledge distillation, :mod:`lmworks.distill`). ``columns`` names the data columns the
        inputs came from (``lmworks.json`` records them, so evaluate, predict and serve read the
        same ones). ``monitor``: a search's :class:`~lmworks.training.engine.TrainMonitor`.
        """
        cfg = self.config
        self.columns_ = dict(columns or {})
        few_shot = self._few_shot_choice(labels, teacher is not None)
        if few_shot:
            LOGGER.info("the few-shot recipe is used: %s (few_shot='off' fine-tunes as usual)", few_shot)
        texts, labels, eval_texts, eval_labels, kept = self.split(texts, labels, eval_texts, eval_labels,
                                                                   hold_out=few_shot is None)
        names = label_set(labels, multi_label=cfg.multi_label)
        self._check_eval_labels(names, eval_labels)
        targets = self._encode(labels, names)
        eval_targets = self._encode(eval_labels, names) if eval_labels is not None else None
        soft = None
        n_train = len(texts)
        if teacher is not None:
            texts, targets, soft = teacher.extend(texts, targets, names, kept, multi_label=cfg.multi_label)

        def score_fn(proba: np.ndarray) -> tuple[float, dict[str, Any]]:
            assert eval_labels is not None and eval_targets is not None
            thresholds = tune_thresholds(proba, eval_targets) if cfg.multi_label else None
            metrics = self._metrics(names, eval_labels, proba, thresholds)
            return metrics["macro_f1"], _brief(metrics)

        # Recorded with the run (and compared on --resume): the data a checkpoint belongs to.
        data_sha256 = data_fingerprint(texts, labels, eval_texts, eval_labels,
                                   soft.proba.round(6).tolist() if soft is not None else None)
        run_config = cfg.replace(extra={**cfg.extra, "data_sha256": data_sha256})
        backend = self._new_backend(bool(eval_texts), few_shot=few_shot is not None)
        info = backend.fit(texts, targets, FitRun(
            names, run_config, eval_texts=eval_texts, score_fn=score_fn if eval_texts else None,
            checkpoint_dir=Path(checkpoint_dir) if checkpoint_dir else None, resume=resume, progress=progress,
            soft_targets=soft, monitor=monitor))
        if few_shot is not None:
            info["few_shot"] = {**info.get("few_shot", {}), "chosen": few_shot}
        if teacher is not None:
            info["distillation"] = {**teacher.record, "alpha": teacher.alpha, "temperature": teacher.temperature,
                                    "unlabeled_texts": len(teacher.unlabeled_texts)}
        self._set_fitted(backend, names, info, eval_texts, eval_labels, eval_targets, n_train=n_train)
        return self

    def _few_shot_choice(self, labels: Sequence[Any], distilling: bool) -> str | None:
        """Why the few-shot recipe is used for these labels (``None``: it is not; never when distilling)."""
        names = as_label_names(list(labels), self.config.multi_label)
        per_class = len(names) / max(1, len(label_set(names, multi_label=self.config.multi_label)))
        return None if distilling else self.config.few_shot_reason(per_class)

    def split(self, texts, labels, eval_texts, eval_labels, *,
              hold_out: bool = True) -> tuple[list[str], list[Any], Any, Any, list[int]]:
        """Validated lists, the dev split of the training data when no eval data is given, and the kept rows.

        ``fit`` calls it, and distillation first (no augmented fragment may come from a dev text).
        ``hold_out=False`` (the few-shot recipe, which has no epochs to stop early) keeps every row for training.
        """
        multi = self.config.multi_label
        texts, labels = self._inputs(texts), list(labels)
        if len(texts) != len(labels):
            raise DataError(f"{len(texts)} texts but {len(labels)} labels")
        labels = as_label_names(labels, multi)
        names = label_set(labels, multi_label=multi)
        if len(names) < 2 and not (multi and len(names) == 1):
            found = f"a single class {names[0]!r}" if names else "no labels"
            raise DataError(f"training data has {found}; a classifier needs at least two classes")
        if eval_texts is None and self.config.eval_fraction > 0 and hold_out:
            kept, kept_labels, held, held_labels = split_dataset(
                list(range(len(texts))), labels, fraction=self.config.eval_fraction, seed=self.config.seed,
                multi_label=multi)
            return [texts[i] for i in kept], kept_labels, [texts[i] for i in held], held_labels, kept
        everything = list(range(len(texts)))
        if eval_texts is None:
            return texts, labels, None, None, everything
        eval_texts = self._inputs(eval_texts)
        if eval_labels is None or len(eval_labels) != len(eval_texts):
            raise DataError("eval_texts and eval_labels must have the same length")
        return texts, labels, eval_texts, as_label_names(eval_labels, multi), everything

    def _inputs(self, texts: Any) -> list[Any]:
        """Inputs as the backend to be trained reads them (strings; a sibling estimator may read rows)."""
        return [str(t) for t in texts]

    def _check_eval_labels(self, names: list[str], eval_labels: Sequence[Any] | None) -> None:
        if eval_labels is None:
            return
        unknown = sorted(set(label_set(eval_labels, multi_label=self.config.multi_label)) - set(names))
        if unknown:
            raise DataError(f"eval data has label(s) {unknown} that never occur in the training data")

    def _new_backend(self, has_dev_data: bool, *, few_shot: bool = False) -> Backend:
        if few_shot:
            from .backends.fewshot import FewShotBackend

            return FewShotBackend(self.config.model)  # no blend: too few labels to weigh it on
        backend = backend_for_model(self.config.model)
        if self.config.blend_with_tfidf() and has_dev_data:
            from .backends.blend import BlendBackend

            return BlendBackend(backend)
        return backend

    def _set_fitted(self, backend: Backend, names: list[str], info: dict[str, Any], eval_texts: Any,
                    eval_labels: Any, eval_targets: np.ndarray | None, *, n_train: int) -> None:
        """The learned state: backend, labels, thresholds and dev metrics of the kept model."""
        self.backend_ = backend
        self.labels_ = names
        self.thresholds_ = None
        self.dev_metrics_ = None
        if eval_texts and eval_labels is not None and eval_targets is not None:
            proba = backend.predict_proba(eval_texts)
            if self.config.multi_label:
                self.thresholds_ = tune_thresholds(proba, eval_targets)
            self.dev_metrics_ = self._metrics(names, eval_labels, proba, self.thresholds_)
        self.train_info_ = {k: v for k, v in info.items() if k != "dev_metrics"}
        self.train_info_["n_train"] = n_train
        self.train_info_["n_eval"] = len(eval_texts) if eval_texts else 0
        self.meta_ = self._description()

    def _encode(self, labels: Sequence[Any], names: list[str]) -> np.ndarray:
        index = {name: i for i, name in enumerate(names)}
        if self.config.multi_label:
            out = np.zeros((len(labels), len(names)), dtype=np.float32)
            for row, row_names in enumerate(labels):
                out[row, [index[n] for n in row_names]] = 1.0
            return out
        return np.asarray([index[name] for name in labels], dtype=np.int64)

    # -- prediction ----------------------------------------------------------------------
    def check_fitted(self) -> None:
        """Raise :class:`~lmworks.errors.NotFittedError` unless the classifier was fitted or loaded."""
        if not hasattr(self, "backend_"):
            raise NotFittedError("this TextClassifier is not fitted yet; call fit() or TextClassifier.load()")

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities, shape ``(n_texts, n_labels)``, columns in ``labels_`` order."""
        self.check_fitted()
        return self.backend_.predict_proba(self.backend_.inputs(texts))

    def predict_proba_counted(self, texts: Sequence[str]) -> tuple[np.ndarray, int]:
        """:meth:`predict_proba`, and how many texts were cut at the token limit, without a warning.

        For callers that predict in chunks and report truncation once (``lmworks predict``).
        """
        self.check_fitted()
        return self.backend_.predict_proba_counted(self.backend_.inputs(texts))

    def decide(self, proba: np.ndarray, thresholds: np.ndarray | None = None) -> list[Any]:
        """Turn probabilities into labels: argmax, or per-label thresholds for multi-label.

        ``thresholds`` defaults to the tuned ``thresholds_`` (0.5 where there are none).
        """
        self.check_fitted()
        return _decide(self.labels_, proba, self.config.multi_label,
                       thresholds if thresholds is not None else self.thresholds_)

    def predict(self, texts: Sequence[str]) -> list[Any]:
        """One label per text (a list of labels per text for multi-label models)."""
        return self.decide(self.predict_proba(texts))

    def explain(self, texts: Sequence[str], *, target: str | None = None, **options: Any) -> list[Any]:
        """Which words made each decision: one :class:`~lmworks.explain.Explanation` per text.

        ``target`` explains that class instead of the prediction; ``options`` go to
        :func:`lmworks.explain.explain` (``method``, ``all_classes``, ``steps``, ``baseline``).
        """
        from .explain import explain

        return explain(self, texts, target=target, **options)

    def score(self, texts: Sequence[str], labels: Sequence[Any], sample_weight: Any = None) -> float:
        """Accuracy on labelled data (multi-label: the share of texts whose label set is exactly right)."""
        predicted = self.predict(texts)
        truth = as_label_names(labels, self.config.multi_label)
        hits = np.asarray([p == y for p, y in zip(predicted, truth)], dtype=float)
        return float(np.average(hits, weights=sample_weight))

    def evaluate(self, texts: Sequence[str], labels: Sequence[Any]) -> dict[str, Any]:
        """Metrics on labelled data (see :mod:`lmworks.evaluation`)."""
        return self.metrics_from_proba(labels, self.predict_proba(texts))

    def metrics_from_proba(self, labels: Sequence[Any], proba: np.ndarray) -> dict[str, Any]:
        """The :meth:`evaluate` metrics of probabilities already computed (e.g. by another runtime)."""
        self.check_fitted()
        return self._metrics(self.labels_, as_label_names(labels, self.config.multi_label), proba, self.thresholds_)

    def _metrics(self, names: list[str], labels: Sequence[Any], proba: np.ndarray,
                 thresholds: np.ndarray | None) -> dict[str, Any]:
        predicted = _decide(names, proba, self.config.multi_label, thresholds)
        if self.config.multi_label:
            return multilabel_metrics(labels, predicted, proba, model_labels=names)
        return classification_metrics(labels, predicted, proba, model_labels=names)

    # -- persistence ---------------------------------------------------------------------
    def _description(self) -> dict[str, Any]:
        """What ``lmworks.json`` records about the fitted model, directory bookkeeping aside."""
        meta = self.backend_.describe()
        meta.update(
            {
                "backend": self.backend_.name,
                "task": (Task.MULTI_LABEL if self.config.multi_label else Task.SINGLE_LABEL).value,
                "labels": list(self.labels_),
                "thresholds": (
                    dict(zip(self.labels_, map(float, self.thresholds_))) if self.thresholds_ is not None else None
                ),
                "training": self.config.to_dict(),
                "data_columns": getattr(self, "columns_", {}),
                "train_info": {k: v for k, v in self.train_info_.items() if k != "history"},
                "metrics": {"dev": self.dev_metrics_},
            }
        )
        meta.setdefault("max_length", self.config.max_length)
        return meta

    def save(self, directory: str | Path) -> Path:
        """Write the model directory atomically; an existing one is replaced only on success."""
        self.check_fitted()
        directory = Path(directory)
        check_output_dir(directory)
        with atomic_dir(directory) as tmp:
            self.backend_.save(tmp)
            history = self.train_info_.get("history")
            if history:
                import json

                with open(tmp / "train_log.jsonl", "w", encoding="utf-8") as fh:
                    fh.writelines(json.dumps(r) + "\n" for r in history)
            self.meta_ = write_meta(tmp, self._description())
        return directory

    @classmethod
    def from_fitted(cls, backend: Backend, labels: Sequence[str], *, config: TrainConfig,
                    dev_metrics: dict[str, Any] | None = None, train_info: dict[str, Any] | None = None,
                    thresholds: np.ndarray | None = None) -> TextClassifier:
        """A classifier over a backend trained elsewhere (a federation's global model, for instance)."""
        self = cls(config=config)
        self.backend_ = backend
        self.labels_ = list(labels)
        self.thresholds_ = thresholds
        self.dev_metrics_ = dev_metrics
        self.train_info_ = dict(train_info or {})
        self.meta_ = self._description()
        return self

    @classmethod
    def load(cls, directory: str | Path, *, num_threads: int | None = None) -> TextClassifier:
        """Load a model directory written by :meth:`save` (checksums and labels verified).

        ``num_threads`` bounds the intra-op threads of inference (default: the usable CPUs);
        servers with several worker processes give each a share.
        """
        from .backends.blend import BlendBackend

        directory = Path(directory)
        meta = read_meta(directory)
        self = cls(config=TrainConfig.from_dict(meta["training"]).replace(num_threads=num_threads))
        # Loads the backend named in lmworks.json and wraps it only if a blend is recorded.
        self.backend_ = BlendBackend.load(directory, {**meta, "num_threads": num_threads})
        self.labels_ = list(meta["labels"])
        thresholds = meta.get("thresholds")
        self.thresholds_ = np.asarray([thresholds[n] for n in self.labels_]) if thresholds else None
        self.dev_metrics_ = meta.get("metrics", {}).get("dev")
        self.train_info_ = meta.get("train_info", {})
        self.columns_ = meta.get("data_columns", {})
        self.meta_ = meta
        return self


def _decide(names: list[str], proba: np.ndarray, multi_label: bool, thresholds: np.ndarray | None) -> list[Any]:
    if multi_label:
        cut = thresholds if thresholds is not None else np.full(len(names), 0.5)
        return [[names[j] for j in np.flatnonzero(row >= cut)] for row in proba]
    return [names[j] for j in np.asarray(proba).argmax(axis=1)]


def _brief(metrics: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of a metrics dict, for the training log."""
    keys = ("accuracy", "macro_f1", "weighted_f1", "micro_f1", "ece", "log_loss", "n")
    return {k: round(metrics[k], 6) if isinstance(metrics[k], float) else metrics[k] for k in keys if k in metrics}
