import json

import numpy as np
import pytest

from conftest import make_sentiment
from lmworks import TextClassifier
from lmworks.backends.blend import BlendBackend, best_blend_weight, mix
from lmworks.errors import ConfigError
from lmworks.evaluation import mean_log_loss
from lmworks.modes import BlendMix
from lmworks.training.config import TrainConfig


def log_loss_score_fn(y, *, multi_label=False):
    def score(proba):
        return 0.0, {"log_loss": mean_log_loss(proba, y, multi_label=multi_label)}
    return score


def test_weight_zero_when_secondary_only_hurts():
    y = np.array([0, 1, 0, 1])
    good = np.eye(2)[y] * 0.8 + 0.1
    bad = np.eye(2)[1 - y] * 0.98 + 0.01
    for kind in ("log", "proba"):
        assert best_blend_weight(good, bad, log_loss_score_fn(y), kind=kind)[0] == 0.0


def test_weight_positive_when_secondary_fixes_mistakes():
    y = np.array([0, 1, 0, 1, 1])
    primary = np.array([[.9, .1], [.2, .8], [.6, .4], [.45, .55], [.55, .45]])  # last one wrong
    secondary = np.array([[.6, .4], [.4, .6], [.6, .4], [.4, .6], [.1, .9]])
    w, metrics = best_blend_weight(primary, secondary, log_loss_score_fn(y))
    assert 0 < w < 1
    assert metrics["log_loss"] < mean_log_loss(primary, y) and metrics["log_loss"] < mean_log_loss(secondary, y)
    assert (mix(primary, secondary, w).argmax(1) == y).all()


def test_log_mix_is_a_weighted_logit_average():
    p = np.array([[0.9, 0.1], [0.3, 0.7]])
    q = np.array([[0.6, 0.4], [0.8, 0.2]])
    logit = lambda a: np.log(a[:, 1] / a[:, 0])  # noqa: E731
    blended = mix(p, q, 0.25)
    np.testing.assert_allclose(blended.sum(1), 1, rtol=1e-6)
    np.testing.assert_allclose(logit(blended), 0.75 * logit(p) + 0.25 * logit(q), rtol=1e-5)
    # multi-label: each label's logit is averaged on its own
    pm, qm = np.array([[0.9, 0.2]]), np.array([[0.5, 0.6]])
    out = mix(pm, qm, 0.5, multi_label=True)
    np.testing.assert_allclose(np.log(out / (1 - out)), 0.5 * np.log(pm / (1 - pm)) + 0.5 * np.log(qm / (1 - qm)),
                               rtol=1e-5)
    np.testing.assert_allclose(mix(p, q, 0.25, kind="proba"), 0.75 * p + 0.25 * q)
    np.testing.assert_allclose(mix(p, q, 0.25, kind=BlendMix.PROBA), 0.75 * p + 0.25 * q)
    with pytest.raises(ConfigError, match="unknown blend mix 'probab'"):  # a typo is not silently the log mix
        mix(p, q, 0.25, kind="probab")


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
    assert blend["weight"] > 0 and blend["mix"] == "log"
    assert blend["dev_blended"]["log_loss"] < blend["dev_encoder_alone"]["log_loss"]
    clf.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "lmworks.json").read_text())
    assert meta["blend"]["weight"] == blend["weight"] and "blend/model.joblib" in meta["files"]
    assert meta["blend"]["mix"] == "log" and "log(tfidf_proba)" in meta["blend"]["formula"]
    again = TextClassifier.load(tmp_path / "m")
    test, _ = make_sentiment(30, seed=22)
    np.testing.assert_array_equal(again.predict_proba(test), clf.predict_proba(test))


@pytest.mark.parametrize("blend", ["none", "auto"])
def test_no_blend_without_dev_data(tiny_encoder, blend):
    texts, labels = make_sentiment(60, seed=23)
    clf = TextClassifier(str(tiny_encoder), blend=blend, epochs=1, eval_fraction=0, max_length=32, num_threads=1)
    clf.fit(texts, labels, progress=False)
    assert "blend" not in clf.train_info_


def test_directories_from_before_the_mix_field_still_average_probabilities(tiny_encoder, tmp_path):
    texts, labels = make_sentiment(200, seed=21)
    clf = TextClassifier(str(tiny_encoder), blend="tfidf", epochs=1, lr=1e-5, max_length=32, num_threads=1)
    clf.fit(texts, labels, progress=False).save(tmp_path / "m")
    meta_file = tmp_path / "m" / "lmworks.json"
    meta = json.loads(meta_file.read_text())
    del meta["blend"]["mix"]
    meta_file.write_text(json.dumps(meta))
    old = TextClassifier.load(tmp_path / "m")
    assert isinstance(old.backend_, BlendBackend) and old.backend_.kind == "proba"
    test, _ = make_sentiment(30, seed=22)
    w = meta["blend"]["weight"]
    expected = (1 - w) * old.backend_.primary.predict_proba(test) + w * old.backend_.secondary.predict_proba(test)
    np.testing.assert_allclose(old.predict_proba(test), expected, rtol=1e-6)
