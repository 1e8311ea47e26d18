"""``TextClassifier``: the scikit-learn-shaped public API for text classification.

It owns what every backend shares: label encoding and order, the dev split used
for early stopping, multi-label thresholds tuned on dev, metrics, and the model
directory. Backends (:mod:`lmworks.backends`) only map texts to probabilities.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._io import atomic_dir
from .backends import Backend, backend_for_model
from .data import label_set, split_dataset
from .errors import DataError
from .evaluation import classification_metrics, multilabel_metrics
from .model_dir import check_output_dir, read_meta, write_meta
from .training.config import TrainConfig

LOGGER = logging.getLogger("lmworks")
THRESHOLD_GRID = np.round(np.arange(0.05, 0.96, 0.05), 2)


def tune_thresholds(proba: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per-label probability threshold maximising that label's F1 on dev data.

    A label with no positive example in the dev data keeps 0.5: there is nothing
    to tune it on, and an extreme threshold fitted to noise would hurt.
    """
    from sklearn.metrics import f1_score

    thresholds = np.full(proba.shape[1], 0.5)
    for j in range(proba.shape[1]):
        if targets[:, j].sum() == 0:
            continue
        scores = [f1_score(targets[:, j], proba[:, j] >= t, zero_division=0) for t in THRESHOLD_GRID]
        thresholds[j] = THRESHOLD_GRID[int(np.argmax(scores))]
    return thresholds


class TextClassifier:
    """Fine-tune and apply a text classifier (single- or multi-label).

    Parameters
    ----------
    model:
        ``"minilm"`` (default), ``"mpnet"``, ``"tfidf"`` or a transformers checkpoint dir.
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
    """

    meta_: dict[str, Any]

    def __init__(self, model: str = "minilm", *, config: TrainConfig | None = None, **options: Any) -> None:
        self.model = model
        self.config = (config or TrainConfig()).replace(model=model, **options)

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
    ) -> TextClassifier:
        """Train on ``texts``/``labels``; early-stop on ``eval_*`` (or a split of the data).

        Labels are strings (or anything with a string form); for multi-label data
        each label is a list of names. Returns ``self``.
        """
        cfg = self.config
        multi = cfg.multi_label
        texts, labels = list(texts), list(labels)
        if len(texts) != len(labels):
            raise DataError(f"{len(texts)} texts but {len(labels)} labels")
        labels = _as_label_names(labels, multi)
        names = label_set(labels, multi_label=multi)
        if len(names) < 2 and not (multi and len(names) == 1):
            found = f"a single class {names[0]!r}" if names else "no labels"
            raise DataError(f"training data has {found}; a classifier needs at least two classes")
        if eval_texts is None and cfg.eval_fraction > 0:
            texts, labels, eval_texts, eval_labels = split_dataset(
                texts, labels, fraction=cfg.eval_fraction, seed=cfg.seed, multi_label=multi
            )
            names = label_set(labels, multi_label=multi)
        self.labels_ = names
        targets = self._encode(labels)
        eval_targets = None
        if eval_texts is not None:
            eval_texts = list(eval_texts)
            if eval_labels is None or len(eval_labels) != len(eval_texts):
                raise DataError("eval_texts and eval_labels must have the same length")
            eval_labels = _as_label_names(eval_labels, multi)
            unknown = sorted(set(label_set(eval_labels, multi_label=multi)) - set(names))
            if unknown:
                raise DataError(f"eval data has label(s) {unknown} that never occur in the training data")
            eval_targets = self._encode(eval_labels)

        def score_fn(proba: np.ndarray) -> tuple[float, dict[str, Any]]:
            assert eval_labels is not None and eval_targets is not None
            thresholds = tune_thresholds(proba, eval_targets) if multi else None
            metrics = self._metrics(eval_labels, proba, thresholds)
            return metrics["macro_f1"], _brief(metrics)

        # Recorded with the run (and compared on --resume): the data a checkpoint belongs to.
        cfg = cfg.replace(extra={**cfg.extra, "data_sha256": _fingerprint(texts, labels, eval_texts, eval_labels)})
        backend = backend_for_model(self.model)
        if cfg.blend_with_tfidf() and eval_texts:
            from .backends.blend import BlendBackend

            backend = BlendBackend(backend)
        info = backend.fit(
            texts, targets, labels=names, config=cfg,
            eval_texts=eval_texts, score_fn=score_fn if eval_texts else None,
            checkpoint_dir=Path(checkpoint_dir) if checkpoint_dir else None,
            resume=resume, progress=progress,
        )
        self.backend_ = backend
        self.thresholds_ = None
        self.dev_metrics_ = None
        if eval_texts and eval_labels is not None and eval_targets is not None:
            proba = backend.predict_proba(eval_texts)
            if multi:
                self.thresholds_ = tune_thresholds(proba, eval_targets)
            self.dev_metrics_ = self._metrics(eval_labels, proba, self.thresholds_)
        self.train_info_ = {k: v for k, v in info.items() if k != "dev_metrics"}
        self.train_info_["n_train"] = len(texts)
        self.train_info_["n_eval"] = len(eval_texts) if eval_texts else 0
        return self

    def _encode(self, labels: Sequence[Any]) -> np.ndarray:
        index = {name: i for i, name in enumerate(self.labels_)}
        if self.config.multi_label:
            out = np.zeros((len(labels), len(self.labels_)), dtype=np.float32)
            for row, names in enumerate(labels):
                out[row, [index[n] for n in names]] = 1.0
            return out
        return np.asarray([index[name] for name in labels], dtype=np.int64)

    # -- prediction ----------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "backend_"):
            raise RuntimeError("this TextClassifier is not fitted yet; call fit() or TextClassifier.load()")

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities, shape ``(n_texts, n_labels)``, columns in ``labels_`` order."""
        self._check_fitted()
        return self.backend_.predict_proba(list(texts))

    def decide(self, proba: np.ndarray, thresholds: np.ndarray | None = None) -> list[Any]:
        """Turn probabilities into labels: argmax, or per-label thresholds for multi-label.

        ``thresholds`` defaults to the tuned ``thresholds_`` (0.5 where there are none).
        """
        if self.config.multi_label:
            if thresholds is None:
                thresholds = getattr(self, "thresholds_", None)
            if thresholds is None:
                thresholds = np.full(len(self.labels_), 0.5)
            return [[self.labels_[j] for j in np.flatnonzero(row >= thresholds)] for row in proba]
        return [self.labels_[j] for j in np.asarray(proba).argmax(axis=1)]

    def predict(self, texts: Sequence[str]) -> list[Any]:
        """One label per text (a list of labels per text for multi-label models)."""
        return self.decide(self.predict_proba(texts))

    def evaluate(self, texts: Sequence[str], labels: Sequence[Any]) -> dict[str, Any]:
        """Metrics on labelled data (see :mod:`lmworks.evaluation`)."""
        self._check_fitted()
        labels = _as_label_names(labels, self.config.multi_label)
        return self._metrics(labels, self.predict_proba(texts), self.thresholds_)

    def _metrics(self, labels: Sequence[Any], proba: np.ndarray, thresholds) -> dict[str, Any]:
        if self.config.multi_label:
            predicted = self.decide(proba, thresholds)
            return multilabel_metrics(labels, predicted, proba, model_labels=self.labels_)
        return classification_metrics(labels, self.decide(proba), proba, model_labels=self.labels_)

    # -- persistence ---------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write the model directory atomically; an existing one is replaced only on success."""
        self._check_fitted()
        directory = Path(directory)
        check_output_dir(directory)
        with atomic_dir(directory) as tmp:
            meta = self.backend_.save(tmp)
            meta.update(
                {
                    "backend": self.backend_.name,
                    "task": "multi_label" if self.config.multi_label else "single_label",
                    "labels": list(self.labels_),
                    "thresholds": (
                        dict(zip(self.labels_, map(float, self.thresholds_)))
                        if self.thresholds_ is not None else None
                    ),
                    "training": self.config.to_dict(),
                    "train_info": {k: v for k, v in self.train_info_.items() if k != "history"},
                    "metrics": {"dev": self.dev_metrics_},
                }
            )
            meta.setdefault("max_length", self.config.max_length)
            history = self.train_info_.get("history")
            if history:
                import json

                with open(tmp / "train_log.jsonl", "w", encoding="utf-8") as fh:
                    fh.writelines(json.dumps(r) + "\n" for r in history)
            write_meta(tmp, meta)
        return directory

    @classmethod
    def load(cls, directory: str | Path, *, num_threads: int | None = None) -> TextClassifier:
        """Load a model directory written by :meth:`save` (checksums and labels verified).

        ``num_threads`` bounds the intra-op threads of inference (default: the usable CPUs);
        servers with several worker processes give each a share.
        """
        directory = Path(directory)
        meta = read_meta(directory)
        config = TrainConfig.from_dict(meta["training"])
        config.num_threads = num_threads
        meta["num_threads"] = num_threads
        self = cls(config.model, config=config)
        from .backends.blend import BlendBackend

        # Loads the backend named in lmworks.json and wraps it only if a blend is recorded.
        backend: Backend = BlendBackend.load(directory, meta)
        self.backend_ = backend
        self.labels_ = list(meta["labels"])
        thresholds = meta.get("thresholds")
        self.thresholds_ = np.asarray([thresholds[n] for n in self.labels_]) if thresholds else None
        self.dev_metrics_ = meta.get("metrics", {}).get("dev")
        self.train_info_ = meta.get("train_info", {})
        self.meta_ = meta
        return self


def _fingerprint(*parts: Sequence[Any] | None) -> str:
    """SHA-256 over texts and labels, to tell whether a checkpoint belongs to this data."""
    import hashlib
    import json

    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(list(part) if part is not None else None, ensure_ascii=False).encode())
    return digest.hexdigest()


def _as_label_names(labels: Sequence[Any], multi_label: bool) -> list[Any]:
    """Labels as strings (single-label) or sorted lists of distinct strings (multi-label)."""
    if multi_label:
        return [sorted({str(x) for x in row}) for row in labels]
    return [str(x) for x in labels]


def _brief(metrics: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of a metrics dict, for the training log."""
    keys = ("accuracy", "macro_f1", "weighted_f1", "micro_f1", "ece", "log_loss", "n")
    return {k: round(metrics[k], 6) if isinstance(metrics[k], float) else metrics[k] for k in keys if k in metrics}
