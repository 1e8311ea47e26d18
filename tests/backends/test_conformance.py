"""One set of checks that every backend passes: TF-IDF, transformer, blend and ONNX.

Shapes and probabilities, label order, predict agreeing with predict_proba, save/load
giving identical predictions, and clear errors before a model is fitted or loaded.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError as SklearnNotFittedError

from conftest import make_sentiment
from lmworks import TextClassifier
from lmworks.errors import ConfigError, NotFittedError

BACKENDS = ["tfidf", "transformer", "blend", "onnx"]


@pytest.fixture(scope="module")
def fitted(tiny_encoder, tmp_path_factory):
    """Per backend: a fitted (or, for ONNX, exported and loaded) classifier and its saved directory."""
    texts, labels = make_sentiment(200, seed=31)
    dev_texts, dev_labels = make_sentiment(60, seed=32)
    root = tmp_path_factory.mktemp("conformance")
    encoder = {"model": str(tiny_encoder), "epochs": 1, "batch_size": 16, "max_length": 32, "num_threads": 1}
    made = {}
    made["tfidf"] = TextClassifier("tfidf").fit(texts, labels, dev_texts, dev_labels, progress=False)
    made["transformer"] = TextClassifier(**encoder, lr=3e-3, blend="none").fit(texts, labels, dev_texts,
                                                                                 dev_labels, progress=False)
    # a weak encoder next to TF-IDF, which is perfect on these cue words: the dev-chosen weight is > 0
    made["blend"] = TextClassifier(**encoder, lr=1e-5, blend="tfidf").fit(texts, labels, dev_texts, dev_labels,
                                                                          progress=False)
    dirs = {name: clf.save(root / name) for name, clf in made.items()}
    pytest.importorskip("onnxruntime")
    from lmworks.export import ExportOptions, export_onnx

    export_onnx(dirs["transformer"], root / "onnx", ExportOptions())
    dirs["onnx"] = root / "onnx"
    made["onnx"] = TextClassifier.load(root / "onnx")
    return made, dirs


@pytest.mark.parametrize("backend", BACKENDS)
def test_shapes_probabilities_and_label_order(fitted, backend):
    made, dirs = fitted
    clf = made[backend]
    texts, _ = make_sentiment(25, seed=33)
    proba = clf.predict_proba(texts)
    assert proba.shape == (25, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert clf.labels_ == ["neg", "pos"] and list(clf.classes_) == ["neg", "pos"]
    assert clf.predict(texts) == [clf.labels_[j] for j in proba.argmax(axis=1)]
    assert clf.predict_proba([]).shape[0] == 0
    meta = json.loads((dirs[backend] / "lmworks.json").read_text())
    assert meta["labels"] == clf.labels_
    if backend != "tfidf":
        config = json.loads((dirs[backend] / "config.json").read_text())
        assert [config["id2label"][str(i)] for i in range(2)] == clf.labels_
    if backend == "blend":
        assert meta["blend"]["weight"] > 0  # the checks run on a real blend, not the encoder alone


@pytest.mark.parametrize("backend", BACKENDS)
def test_save_load_gives_identical_predictions(fitted, backend):
    made, dirs = fitted
    texts, labels = make_sentiment(40, seed=34)
    again = TextClassifier.load(dirs[backend])
    np.testing.assert_array_equal(again.predict_proba(texts), made[backend].predict_proba(texts))
    assert again.predict(texts) == made[backend].predict(texts)
    assert again.score(texts, labels) == made[backend].score(texts, labels)
    assert again.meta_["task"] == "single_label" and again.meta_["backend"] == made[backend].meta_["backend"]


def test_onnx_export_predicts_what_the_pytorch_model_predicts(fitted):
    made, _ = fitted
    texts, _ = make_sentiment(40, seed=35)
    np.testing.assert_allclose(made["onnx"].predict_proba(texts), made["transformer"].predict_proba(texts), atol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fitted_state_errors(fitted, backend, tiny_encoder):
    from lmworks.backends import backend_class
    from lmworks.predictor import Predictor

    made, dirs = fitted
    name = {"blend": "transformer"}.get(backend, backend)
    fresh = backend_class(name)() if name != "transformer" else backend_class(name)(str(tiny_encoder))
    with pytest.raises(RuntimeError, match="not (fitted|loaded)"):
        fresh.predict_proba(["x"])
    if backend == "onnx":
        from lmworks.backends import FitRun
        from lmworks.training.config import TrainConfig

        with pytest.raises(ConfigError, match="cannot be trained"):
            made["onnx"].backend_.fit(["a b"], np.zeros(1), FitRun(["neg", "pos"], TrainConfig()))
        with pytest.raises(ConfigError, match="saved by `lmworks export`"):
            made["onnx"].save(dirs["onnx"].parent / "copy")
        assert not (dirs["onnx"].parent / "copy").exists()
        return
    unfitted = TextClassifier(**{k: v for k, v in made[backend].get_params().items()})
    for call in (lambda: unfitted.predict(["x"]), lambda: unfitted.predict_proba(["x"]),
                 lambda: unfitted.decide(np.ones((1, 2))), lambda: unfitted.save(dirs[backend].parent / "never"),
                 lambda: Predictor(unfitted)):
        with pytest.raises(NotFittedError, match="not fitted"):
            call()
        with pytest.raises(SklearnNotFittedError):  # scikit-learn's own exception catches it too
            call()
    assert not (dirs[backend].parent / "never").exists()
    # what a service needs exists right after fit, without a round trip through a directory
    predictor = Predictor(made[backend])
    assert predictor.name == "in-memory" and predictor.task == "single_label"
    assert predictor.classify(["a great film"])[0]["label"] in ("neg", "pos")
