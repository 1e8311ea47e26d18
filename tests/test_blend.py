import json

import numpy as np
import pytest

from conftest import make_sentiment
from lmworks import TextClassifier
from lmworks.backends.blend import best_blend_weight
from lmworks.training.config import TrainConfig


def accuracy_score_fn(y):
    return lambda proba: (float((proba.argmax(1) == y).mean()), {})


def test_weight_zero_when_secondary_only_hurts():
    y = np.array([0, 1, 0, 1])
    good = np.eye(2)[y] * 0.8 + 0.1
    bad = np.eye(2)[1 - y]
    assert best_blend_weight(good, bad, accuracy_score_fn(y)) == (0.0, 1.0)


def test_weight_positive_when_secondary_fixes_mistakes():
    y = np.array([0, 1, 0, 1, 1])
    primary = np.array([[.9, .1], [.2, .8], [.6, .4], [.45, .55], [.55, .45]])  # last one wrong
    secondary = np.array([[.6, .4], [.4, .6], [.6, .4], [.4, .6], [.1, .9]])
    w, score = best_blend_weight(primary, secondary, accuracy_score_fn(y))
    assert 0 < w < 1 and score == 1.0


def test_auto_blend_resolution():
    assert TrainConfig(head="mean").blend_with_tfidf()
    assert not TrainConfig(head="cls").blend_with_tfidf()
    assert TrainConfig(head="cls", blend="tfidf").blend_with_tfidf()
    assert not TrainConfig(blend="none").blend_with_tfidf()
    assert not TrainConfig(model="tfidf").blend_with_tfidf()


def test_blended_model_roundtrip(tiny_encoder, tmp_path):
    # One epoch of a tiny encoder is weak; TF-IDF is perfect on these cue words, so the
    # dev-chosen weight must come out positive and the blend must be saved and reloaded.
    texts, labels = make_sentiment(200, seed=21)
    clf = TextClassifier(str(tiny_encoder), blend="tfidf", epochs=1, lr=1e-5, max_length=32, num_threads=1)
    clf.fit(texts, labels, progress=False)
    blend = clf.train_info_["blend"]
    assert blend["weight"] > 0 and blend["dev_score_blended"] >= blend["dev_score_encoder_alone"]
    clf.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "lmworks.json").read_text())
    assert meta["blend"]["weight"] == blend["weight"] and "blend/model.joblib" in meta["files"]
    again = TextClassifier.load(tmp_path / "m")
    test, _ = make_sentiment(30, seed=22)
    np.testing.assert_array_equal(again.predict_proba(test), clf.predict_proba(test))


@pytest.mark.parametrize("blend", ["none", "auto"])
def test_no_blend_without_dev_data(tiny_encoder, blend):
    texts, labels = make_sentiment(60, seed=23)
    clf = TextClassifier(str(tiny_encoder), blend=blend, epochs=1, eval_fraction=0, max_length=32, num_threads=1)
    clf.fit(texts, labels, progress=False)
    assert "blend" not in clf.train_info_
