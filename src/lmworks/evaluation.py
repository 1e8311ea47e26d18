"""Classification metrics, report text and calibration.

Metrics come from scikit-learn so they mean what users expect. Everything here is
a pure function of true labels, predicted labels and probabilities: the same code
scores a transformer, the TF-IDF baseline or an exported ONNX model.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> float:
    """ECE: mean |accuracy - confidence| over equal-width confidence bins, weighted by size."""
    confidence = np.asarray(confidence, dtype=float)
    correct = np.asarray(correct, dtype=float)
    if confidence.size == 0:
        return 0.0
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        sel = bins == b
        if sel.any():
            ece += sel.mean() * abs(correct[sel].mean() - confidence[sel].mean())
    return float(ece)


def mean_log_loss(proba: np.ndarray, targets: np.ndarray, *, multi_label: bool = False) -> float:
    """Mean negative log-likelihood of the true labels (binary cross-entropy per label when multi-label).

    ``targets`` are class indices (single-label; ``-1`` rows, e.g. labels the model never
    saw, are skipped) or a 0/1 matrix (multi-label).
    """
    proba = np.clip(np.asarray(proba, dtype=np.float64), 1e-7, 1 - 1e-7)
    if multi_label:
        t = np.asarray(targets, dtype=np.float64)
        return float(-(t * np.log(proba) + (1 - t) * np.log(1 - proba)).mean())
    t = np.asarray(targets)
    known = t >= 0
    if not known.any():
        return float("nan")
    return float(-np.log(proba[known][np.arange(int(known.sum())), t[known]]).mean())


def _ordered_labels(model_labels: Sequence[str], seen: set[str]) -> list[str]:
    ordered = [name for name in model_labels if name in seen]
    return ordered + sorted(seen - set(model_labels))


def _per_class(precision, recall, f1, support, labels) -> dict[str, dict[str, float]]:
    return {
        name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for name, p, r, f, s in zip(labels, precision, recall, f1, support)
    }


def classification_metrics(
    y_true: Sequence[str],
    y_pred: Sequence[str],
    proba: np.ndarray | None = None,
    *,
    model_labels: Sequence[str],
) -> dict[str, Any]:
    """Single-label metrics.

    Labels in ``y_true`` that the model never saw are scored like any other (their
    recall is 0 by construction) and listed under ``unseen_labels`` with counts, so a
    stale model is reported instead of crashing the evaluation.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    if len(y_true) != len(y_pred):
        raise ValueError("y_true and y_pred differ in length")
    labels = _ordered_labels(model_labels, set(y_true) | set(y_pred))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    pm, rm, fm, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average="macro", zero_division=0
    )
    _, _, fw, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average="weighted", zero_division=0
    )
    unseen = Counter(t for t in y_true if t not in set(model_labels))
    out: dict[str, Any] = {
        "task": "single_label",
        "n": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_precision": float(pm),
        "macro_recall": float(rm),
        "macro_f1": float(fm),
        "weighted_f1": float(fw),
        "per_class": _per_class(p, r, f, s, labels),
        "labels": labels,
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "unseen_labels": dict(sorted(unseen.items())),
    }
    if proba is not None and len(y_true):
        proba = np.asarray(proba)
        correct = np.asarray([t == q for t, q in zip(y_true, y_pred)])
        out["ece"] = expected_calibration_error(proba.max(axis=1), correct)
        column = {name: i for i, name in enumerate(model_labels)}
        loss = mean_log_loss(proba, np.asarray([column.get(t, -1) for t in y_true]))
        if np.isfinite(loss):
            out["log_loss"] = loss
    return out


def multilabel_metrics(
    y_true: Sequence[Sequence[str]],
    y_pred: Sequence[Sequence[str]],
    proba: np.ndarray | None = None,
    *,
    model_labels: Sequence[str],
) -> dict[str, Any]:
    """Multi-label metrics; ``accuracy`` is subset accuracy (all labels of a text right)."""
    from sklearn.metrics import (
        accuracy_score,
        multilabel_confusion_matrix,
        precision_recall_fscore_support,
    )
    from sklearn.preprocessing import MultiLabelBinarizer

    seen = {name for row in y_true for name in row} | {name for row in y_pred for name in row}
    labels = _ordered_labels(model_labels, seen | set(model_labels))
    mlb = MultiLabelBinarizer(classes=labels)
    t = mlb.fit_transform(y_true)
    q = mlb.transform(y_pred)
    p, r, f, s = precision_recall_fscore_support(t, q, zero_division=0)
    avg = {
        kind: precision_recall_fscore_support(t, q, average=kind, zero_division=0)
        for kind in ("macro", "micro", "weighted", "samples")
    }
    unseen = Counter(name for row in y_true for name in row if name not in set(model_labels))
    out: dict[str, Any] = {
        "task": "multi_label",
        "n": len(y_true),
        "accuracy": float(accuracy_score(t, q)),
        "macro_precision": float(avg["macro"][0]),
        "macro_recall": float(avg["macro"][1]),
        "macro_f1": float(avg["macro"][2]),
        "micro_f1": float(avg["micro"][2]),
        "weighted_f1": float(avg["weighted"][2]),
        "samples_f1": float(avg["samples"][2]),
        "per_class": _per_class(p, r, f, s, labels),
        "labels": labels,
        "confusion_matrix": multilabel_confusion_matrix(t, q).tolist(),
        "unseen_labels": dict(sorted(unseen.items())),
    }
    if proba is not None and len(y_true):
        known = [i for i, name in enumerate(labels) if name in set(model_labels)]
        col = {name: i for i, name in enumerate(model_labels)}
        probs = np.asarray(proba)[:, [col[labels[i]] for i in known]]
        out["ece"] = expected_calibration_error(
            np.abs(probs - 0.5) + 0.5, (probs >= 0.5) == t[:, known].astype(bool)
        )
        out["log_loss"] = mean_log_loss(probs, t[:, known], multi_label=True)
    return out


#: Above this many classes the report lists the largest confusions instead of the full matrix,
#: which would be wider than any terminal (a 99-class matrix is 99 columns of counts).
MATRIX_MAX_CLASSES = 20
#: How many off-diagonal cells that list shows.
TOP_CONFUSIONS = 15
#: A report warns when the 95 % interval of its accuracy is wider than this either side: with
#: fewer rows than about 100 the scores say little about the model (6 rows: +-0.4).
NOISY_HALF_WIDTH = 0.1


def accuracy_interval(accuracy: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion (95 % by default); ``(0, 1)`` for ``n == 0``.

    Wilson's interval stays inside [0, 1] and behaves at 0 % and 100 %, where the normal
    approximation collapses to a zero-width interval (Agresti & Coull, 1998).
    """
    if n <= 0:
        return 0.0, 1.0
    centre = (accuracy + z * z / (2 * n)) / (1 + z * z / n)
    half = z * float(np.sqrt(accuracy * (1 - accuracy) / n + z * z / (4 * n * n))) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _sample_size_lines(accuracy: float, n: int, labels: list[Any], per_class: dict[Any, Any]) -> list[str]:
    lo, hi = accuracy_interval(accuracy, n)
    lines = [f"accuracy 95% interval (Wilson, {n} rows): [{lo:.4f}, {hi:.4f}]"]
    if (hi - lo) / 2 > NOISY_HALF_WIDTH:
        lines.append(f"WARNING: only {n} rows: accuracy is only known to lie in [{lo:.2f}, {hi:.2f}] (95%); "
                     "evaluate on more held-out rows before trusting these scores")
    missing = [str(x) for x in labels if per_class[x]["support"] == 0]
    if missing:
        lines.append(f"WARNING: no rows of {len(missing)} class(es) in this data ({', '.join(missing[:10])}"
                     f"{', ...' if len(missing) > 10 else ''}): their recall and F1 are 0 by convention")
    lines.append("")
    return lines


def _largest_confusions(labels: list[Any], matrix: list[list[int]]) -> list[str]:
    cells = [(matrix[i][j], labels[i], labels[j]) for i in range(len(labels)) for j in range(len(labels))
             if i != j and matrix[i][j] > 0]
    cells.sort(key=lambda c: -c[0])
    lines = [f"largest confusions ({len(labels)} classes: the full matrix is in --json), true -> predicted: count"]
    lines += [f"  {true} -> {pred}: {count}" for count, true, pred in cells[:TOP_CONFUSIONS]]
    if not cells:
        lines.append("  none")
    return lines


def format_report(metrics: dict[str, Any], digits: int = 4) -> str:
    """Human-readable report: per-class table, averages, confusion matrix, calibration."""
    labels = metrics["labels"]
    width = max([len(str(x)) for x in labels] + [len("weighted avg"), 12])
    head = f"{'':>{width}}  {'precision':>9}  {'recall':>9}  {'f1-score':>9}  {'support':>9}"
    lines = [head, ""]
    fmt = f"{{:>{width}}}  {{:>9.{digits}f}}  {{:>9.{digits}f}}  {{:>9.{digits}f}}  {{:>9}}"
    for name in labels:
        row = metrics["per_class"][name]
        lines.append(fmt.format(name, row["precision"], row["recall"], row["f1"], row["support"]))
    lines.append("")
    n = metrics["n"]
    support = sum(metrics["per_class"][x]["support"] for x in labels)
    acc_name = "accuracy" if metrics["task"] == "single_label" else "subset accuracy"
    lines.append(f"{acc_name:>{width}}  {'':>9}  {'':>9}  {metrics['accuracy']:>9.{digits}f}  {n:>9}")
    lines.append(
        fmt.format("macro avg", metrics["macro_precision"], metrics["macro_recall"], metrics["macro_f1"], support)
    )
    if "micro_f1" in metrics:
        lines.append(f"{'micro avg':>{width}}  {'':>9}  {'':>9}  {metrics['micro_f1']:>9.{digits}f}  {support:>9}")
    lines.append(f"{'weighted avg':>{width}}  {'':>9}  {'':>9}  {metrics['weighted_f1']:>9.{digits}f}  {support:>9}")
    lines.append("")
    lines += _sample_size_lines(metrics["accuracy"], n, labels, metrics["per_class"])
    if metrics["task"] == "single_label" and len(labels) > MATRIX_MAX_CLASSES:
        lines += _largest_confusions(labels, metrics["confusion_matrix"])
    elif metrics["task"] == "single_label":
        lines.append("confusion matrix (rows: true, columns: predicted)")
        cw = max(width, *(len(str(v)) for row in metrics["confusion_matrix"] for v in row))
        short = max(len(str(x)) for x in labels)
        lines.append(" " * (short + 2) + " ".join(f"{str(x):>{cw}}" for x in labels))
        for name, row in zip(labels, metrics["confusion_matrix"]):
            lines.append(f"{str(name):>{short}}  " + " ".join(f"{v:>{cw}}" for v in row))
    else:
        lines.append("per-label confusion [[tn, fp], [fn, tp]]")
        for name, m in zip(labels, metrics["confusion_matrix"]):
            lines.append(f"{str(name):>{width}}  {m}")
    if "ece" in metrics:
        lines.append("")
        lines.append(f"expected calibration error (15 bins): {metrics['ece']:.4f}")
    if "log_loss" in metrics:
        lines.append(f"log loss (mean negative log-likelihood): {metrics['log_loss']:.4f}")
    if metrics.get("unseen_labels"):
        counts = ", ".join(f"{k!r}: {v}" for k, v in metrics["unseen_labels"].items())
        lines.append("")
        lines.append(f"WARNING: labels the model never saw in training (rows): {counts}")
    return "\n".join(lines)


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
