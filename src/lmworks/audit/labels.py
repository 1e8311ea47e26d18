"""Likely label errors: out-of-fold probabilities, ranked by cleanlab.

Every row is scored by a model trained on the other folds, so a row's own (possibly wrong) label
never vouches for itself. cleanlab's confident learning then estimates, per class pair, how many
labels are flipped and flags that many of the least self-consistent rows; the ranking is cleanlab's
label-quality score (self-confidence: the probability the out-of-fold model gives the row's label).
The model is TF-IDF + logistic regression by default (the same pipeline ``train --model tfidf`` fits:
seconds for 10,000 rows); an encoder adds its frozen sentence embeddings under a second logistic
regression, and the two probability tables are averaged (two views that err differently).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError
from .config import AuditConfig

LOGGER = logging.getLogger("lmworks")


@dataclass
class LabelCheck:
    """Out-of-fold probabilities and what cleanlab made of them.

    ``scores`` holds one issue score per checked row (1 - label quality: higher is more suspect);
    ``checked`` the positions (in the file's row order) that had a usable label; ``flagged`` the
    positions cleanlab calls label issues, worst first.
    """

    classes: list[str]
    checked: np.ndarray
    probabilities: np.ndarray
    scores: np.ndarray
    flagged: list[int]
    suggested: list[Any]
    folds: int
    notes: list[str] = field(default_factory=list)

    def ranking(self) -> list[int]:
        """Every checked position, most suspect first (what a reviewer works down)."""
        order = np.argsort(-self.scores, kind="stable")
        return [int(self.checked[i]) for i in order]


def check_labels(texts: list[str], labels: list[Any], config: AuditConfig, *,
                 progress: bool = False) -> LabelCheck | None:
    """Rank the likely label errors among ``labels``; ``None`` (with a logged reason) when nothing can be checked."""
    usable = [i for i, (t, y) in enumerate(zip(texts, labels)) if y is not None and t.strip()]
    notes: list[str] = []
    counts = Counter(name for i in usable for name in (labels[i] if config.multi_label else [labels[i]]))
    if not config.multi_label:
        lonely = sorted(name for name, n in counts.items() if n < 2)
        if lonely:
            notes.append(f"class(es) {', '.join(map(repr, lonely))} have a single row: those rows cannot be "
                         "cross-checked and are left out of the label check")
            usable = [i for i in usable if labels[i] not in lonely]
            counts = Counter(labels[i] for i in usable)
    if len(counts) < 2:
        notes.append("fewer than two classes with at least two rows: no label check")
        return _empty(notes)
    folds = config.folds
    smallest = min(counts.values()) if not config.multi_label else len(usable)
    if smallest < folds:
        folds = max(2, smallest)
        name = min(counts, key=counts.__getitem__)
        notes.append(f"folds lowered from {config.folds} to {folds}: class {name!r} has {smallest} rows")
    if len(usable) < 2 * folds:
        notes.append(f"{len(usable)} labelled rows: too few for {folds}-fold cross-validation, no label check")
        return _empty(notes)
    classes = sorted(counts)
    rows_texts = [texts[i] for i in usable]
    rows_labels = [labels[i] for i in usable]
    probs = _out_of_fold(rows_texts, rows_labels, classes, folds, config, progress)
    scores, flagged_local, suggested = _rank(rows_labels, classes, probs, config.multi_label)
    return LabelCheck(classes=classes, checked=np.asarray(usable), probabilities=probs, scores=scores,
                      flagged=[usable[i] for i in flagged_local], suggested=suggested, folds=folds, notes=notes)


def _empty(notes: list[str]) -> LabelCheck:
    return LabelCheck(classes=[], checked=np.zeros(0, dtype=int), probabilities=np.zeros((0, 0)),
                      scores=np.zeros(0), flagged=[], suggested=[], folds=0, notes=notes)


def _targets(labels: list[Any], classes: list[str], multi_label: bool) -> np.ndarray:
    index = {c: k for k, c in enumerate(classes)}
    if multi_label:
        out = np.zeros((len(labels), len(classes)), dtype=int)
        for r, names in enumerate(labels):
            out[r, [index[n] for n in names]] = 1
        return out
    return np.asarray([index[y] for y in labels])


def _out_of_fold(texts: list[str], labels: list[Any], classes: list[str], folds: int, config: AuditConfig,
                 progress: bool) -> np.ndarray:
    """Probabilities for every row from the model trained without its fold (averaged over two views for an encoder)."""
    from sklearn.base import clone
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold, StratifiedKFold
    from sklearn.multiclass import OneVsRestClassifier

    from ..backends.tfidf import tfidf_pipeline
    from ..training.config import TrainConfig

    y = _targets(labels, classes, config.multi_label)
    splitter = (KFold(folds, shuffle=True, random_state=config.seed) if config.multi_label
                else StratifiedKFold(folds, shuffle=True, random_state=config.seed))
    splits = list(splitter.split(np.zeros(len(y)), y))
    # The n-gram vocabulary and IDF are fitted once on every text: they never see a label, so a row's
    # score still comes from a classifier that did not train on it, at a fifth of the cost.
    pipeline = tfidf_pipeline(TrainConfig(seed=config.seed, multi_label=config.multi_label))
    views: list[tuple[Any, Any]] = [(lambda: clone(pipeline[-1]), pipeline[:-1].fit_transform(texts))]
    if config.model != "tfidf":
        from ..embed import SentenceEncoder

        LOGGER.info("embedding %d texts with %s", len(texts), config.model)
        vectors = SentenceEncoder(config.model, max_length=config.max_length).encode(texts)

        def linear() -> Any:
            clf = LogisticRegression(C=1.0, max_iter=2000, random_state=config.seed)
            return OneVsRestClassifier(clf) if config.multi_label else clf

        views.append((linear, vectors))
    total = np.zeros((len(y), len(classes)))
    bar = _bar(len(splits) * len(views), progress)
    try:
        for make, features in views:
            out = np.zeros((len(y), len(classes)))
            for train_idx, test_idx in splits:
                model = make().fit(features[train_idx], y[train_idx])
                out[test_idx] = _aligned(model, features[test_idx], len(classes))
                if bar is not None:
                    bar.update(1)
            total += out
    finally:
        if bar is not None:
            bar.close()
    return total / len(views)


def _aligned(model: Any, features: Any, n_classes: int) -> np.ndarray:
    """``predict_proba`` with one column per class even when a training fold lacked a class."""
    probs = np.asarray(model.predict_proba(features))
    seen = getattr(model, "classes_", None)
    if probs.shape[1] == n_classes or seen is None:
        return probs
    out = np.zeros((len(probs), n_classes))
    out[:, np.asarray(seen, dtype=int)] = probs
    return out


def _rank(labels: list[Any], classes: list[str], probs: np.ndarray,
          multi_label: bool) -> tuple[np.ndarray, list[int], list[Any]]:
    """Cleanlab's issue scores (1 - label quality), its flagged rows worst first, and a suggested label per row."""
    cleanlab = _require_cleanlab()
    y = _targets(labels, classes, multi_label)
    if multi_label:
        from cleanlab.multilabel_classification import filter as ml_filter
        from cleanlab.multilabel_classification import rank as ml_rank

        as_lists = [list(np.flatnonzero(row)) for row in y]
        quality = ml_rank.get_label_quality_scores(as_lists, probs)
        issues = ml_filter.find_label_issues(as_lists, probs, return_indices_ranked_by="self_confidence")
        suggested: list[Any] = [[classes[k] for k in np.flatnonzero(p >= 0.5)] or [classes[int(np.argmax(p))]]
                                for p in probs]
    else:
        quality = cleanlab.rank.get_label_quality_scores(y, probs, method="self_confidence")
        issues = cleanlab.filter.find_label_issues(y, probs, return_indices_ranked_by="self_confidence")
        suggested = [classes[int(k)] for k in probs.argmax(axis=1)]
    return 1.0 - np.asarray(quality, dtype=float), [int(i) for i in issues], suggested


def _require_cleanlab() -> Any:
    try:
        import cleanlab.filter
        import cleanlab.rank
    except ImportError as err:
        raise ConfigError("the label check needs cleanlab: pip install 'lmworks[audit]'") from err
    return cleanlab


def _bar(total: int, progress: bool) -> Any:
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="fold", dynamic_ncols=True, desc="label check")
