import numpy as np
import pytest
from sklearn.metrics import classification_report, f1_score

from lmworks.evaluation import (
    classification_metrics,
    expected_calibration_error,
    format_report,
    multilabel_metrics,
)


def test_matches_sklearn():
    rng = np.random.default_rng(0)
    y = rng.choice(["a", "b", "c"], 200).tolist()
    p = [t if rng.random() < 0.7 else rng.choice(["a", "b", "c"]) for t in y]
    m = classification_metrics(y, p, model_labels=["a", "b", "c"])
    ref = classification_report(y, p, output_dict=True)
    assert m["accuracy"] == pytest.approx(ref["accuracy"])
    assert m["macro_f1"] == pytest.approx(ref["macro avg"]["f1-score"])
    assert m["weighted_f1"] == pytest.approx(ref["weighted avg"]["f1-score"])
    for label in "abc":
        assert m["per_class"][label]["f1"] == pytest.approx(ref[label]["f1-score"])
        assert m["per_class"][label]["support"] == ref[label]["support"]
    assert np.array(m["confusion_matrix"]).sum() == 200
    assert m["n"] == 200


def test_unseen_labels_reported_not_crashed():
    m = classification_metrics(["a", "b", "zzz", "zzz"], ["a", "b", "a", "b"], model_labels=["a", "b"])
    assert m["unseen_labels"] == {"zzz": 2}
    assert m["per_class"]["zzz"]["recall"] == 0.0 and m["per_class"]["zzz"]["support"] == 2
    assert m["labels"] == ["a", "b", "zzz"]
    assert "never saw" in format_report(m)


def test_ece_known_values():
    # Perfectly calibrated: 80% confident, 80% right.
    conf = np.full(10, 0.8)
    correct = np.array([1] * 8 + [0] * 2)
    assert expected_calibration_error(conf, correct) == pytest.approx(0.0)
    # Always 100% confident, always wrong.
    assert expected_calibration_error(np.ones(5), np.zeros(5)) == pytest.approx(1.0)


def test_multilabel_metrics():
    y = [["a"], ["a", "b"], [], ["b"]]
    p = [["a"], ["a"], [], ["b"]]
    m = multilabel_metrics(y, p, model_labels=["a", "b"])
    assert m["accuracy"] == pytest.approx(0.75)
    ref = f1_score(np.array([[1, 0], [1, 1], [0, 0], [0, 1]]), np.array([[1, 0], [1, 0], [0, 0], [0, 1]]),
                   average="macro")
    assert m["macro_f1"] == pytest.approx(ref)
    assert len(m["confusion_matrix"]) == 2
    assert "subset accuracy" in format_report(m)


def test_report_contains_every_number():
    m = classification_metrics(["x", "y", "y"], ["x", "y", "x"], np.array([[.9, .1], [.2, .8], [.6, .4]]),
                               model_labels=["x", "y"])
    text = format_report(m)
    rows = {}
    for line in "\n".join(text.split("\n\n")[1:3]).splitlines():  # the per-class rows, then the averages
        words = line.split()
        name = 2 if words[0] in ("macro", "weighted") else 1
        rows[" ".join(words[:name])] = words[name:]
    # By hand: x is predicted twice and right once (precision 1/2), found once of once (recall 1);
    # y is predicted once and right (precision 1), found once of twice (recall 1/2); 2 of 3 right.
    assert rows["x"] == ["0.5000", "1.0000", "0.6667", "1"]
    assert rows["y"] == ["1.0000", "0.5000", "0.6667", "2"]
    assert rows["accuracy"] == ["0.6667", "3"]
    assert rows["macro avg"] == ["0.7500", "0.7500", "0.6667", "3"]
    assert rows["weighted avg"] == ["0.6667", "3"]  # (1 x 0.6667 + 2 x 0.6667) / 3
    matrix = text.split("columns: predicted)\n")[1].splitlines()[1:3]
    assert [line.split() for line in matrix] == [["x", "1", "0"], ["y", "1", "1"]]
    # Calibration: confidences 0.9 (right), 0.8 (right), 0.6 (wrong), one per bin: (0.1 + 0.2 + 0.6) / 3.
    assert "expected calibration error (15 bins): 0.3000" in text
    assert f"log loss (mean negative log-likelihood): {-(np.log(.9) + np.log(.8) + np.log(.4)) / 3:.4f}" in text


def test_report_states_the_interval_and_warns_on_few_rows():
    from lmworks.evaluation import accuracy_interval, classification_metrics, format_report

    lo, hi = accuracy_interval(0.75, 4)
    assert 0.25 < lo < 0.35 and 0.9 < hi < 0.97  # Wilson: [0.30, 0.95]
    few = format_report(classification_metrics(["a", "b", "a", "b"], ["a", "b", "b", "b"], model_labels=["a", "b"]))
    assert "95% interval (Wilson, 4 rows): [0.3006, 0.9544]" in few and "WARNING: only 4 rows" in few
    many_true = ["a", "b"] * 500
    many = format_report(classification_metrics(many_true, many_true, model_labels=["a", "b"]))
    assert "WARNING: only" not in many


def test_report_over_many_classes_lists_the_largest_confusions():
    from lmworks.evaluation import MATRIX_MAX_CLASSES, classification_metrics, format_report

    labels = [f"c{i:02d}" for i in range(MATRIX_MAX_CLASSES + 5)]
    truth = [name for name in labels for _ in range(10)]
    predicted = list(truth)
    predicted[:7] = ["c01"] * 7  # seven c00 rows predicted as c01
    predicted[10:12] = ["c05"] * 2
    report = format_report(classification_metrics(truth, predicted, model_labels=labels))
    assert "confusion matrix" not in report
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("largest confusions"))
    assert lines[start + 1].strip() == "c00 -> c01: 7" and lines[start + 2].strip() == "c01 -> c05: 2"
