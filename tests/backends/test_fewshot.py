"""The few-shot recipe: pair sampling, the head written into the network exactly, auto choice, a normal model dir."""

import json

import numpy as np
import pytest

from conftest import make_sentiment
from lmworks import TextClassifier
from lmworks.backends.fewshot import sample_pairs
from lmworks.errors import ConfigError


def test_pairs_are_balanced_and_true_to_the_labels():
    targets = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    pairs = sample_pairs(targets, seed=0, rounds=5)
    assert pairs == sample_pairs(targets, seed=0, rounds=5)  # seeded
    same = [(a, b) for a, b, t in pairs if t == 1.0]
    different = [(a, b) for a, b, t in pairs if t == 0.0]
    assert len(same) == len(different) == 5 * len(targets)
    assert all(targets[a] == targets[b] and a != b for a, b in same)
    assert all(targets[a] != targets[b] for a, b in different)
    assert len(sample_pairs(targets, seed=0, rounds=50, max_pairs=30)) <= 30


def test_multi_label_pairs_skip_partial_overlaps():
    targets = np.array([[1, 0, 0], [1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 1, 1]])
    pairs = sample_pairs(targets, seed=1, rounds=10)
    for a, b, t in pairs:
        shared = set(np.flatnonzero(targets[a])) & set(np.flatnonzero(targets[b]))
        if t == 1.0:
            assert (targets[a] == targets[b]).all()
        else:
            assert not shared
    assert any(t == 1.0 for *_, t in pairs) and any(t == 0.0 for *_, t in pairs)


@pytest.fixture(scope="module")
def few(minilm_dir):
    """The real MiniLM (a random tiny encoder has no sentence geometry to tune) on 8 labels per class."""
    texts, labels = make_sentiment(16, seed=4)
    clf = TextClassifier(str(minilm_dir), few_shot="on", max_length=16, seed=0)
    return clf.fit(texts, labels, progress=False)


def test_recipe_learns_and_records_itself(few):
    test_texts, test_labels = make_sentiment(80, seed=9)
    assert few.evaluate(test_texts, test_labels)["accuracy"] >= 0.9
    info = few.train_info_["few_shot"]
    assert info["chosen"] == "few_shot=on" and info["pairs"] == 2 * 20 * 16 and info["pair_steps"] == 40
    assert few.train_info_["n_train"] == 16 and few.train_info_["n_eval"] == 0  # no row held out
    assert few.meta_["backend"] == "transformer"


def test_head_is_the_logistic_regression_exactly(few):
    from sklearn.linear_model import LogisticRegression

    from lmworks.tokens import tokenize

    backend = few.backend_
    texts, labels = make_sentiment(16, seed=4)
    ids = tokenize(backend.tokenizer, texts, 16)
    features = backend._embed(ids)
    lr = LogisticRegression(C=1.0, max_iter=2000, random_state=0).fit(
        features, [few.labels_.index(y) for y in labels])
    probe = tokenize(backend.tokenizer, make_sentiment(10, seed=5)[0], 16)
    expected = lr.predict_proba(backend._embed(probe))
    assert np.allclose(backend._proba(probe), expected, atol=1e-5)


def test_saved_dir_is_a_normal_transformer_model(few, tmp_path):
    path = few.save(tmp_path / "few")
    meta = json.loads((path / "lmworks.json").read_text())
    assert meta["backend"] == "transformer" and meta["train_info"]["few_shot"]["pairs"] == 640
    loaded = TextClassifier.load(path)
    probe = make_sentiment(12, seed=6)[0]
    assert np.allclose(loaded.predict_proba(probe), few.predict_proba(probe), atol=1e-6)


def test_auto_uses_the_recipe_below_the_threshold_only(tiny_encoder):
    texts, labels = make_sentiment(24, seed=2)
    options = {"max_length": 32, "num_threads": 1, "epochs": 1, "batch_size": 16}
    chosen = TextClassifier(str(tiny_encoder), few_shot_below=13, **options).fit(texts, labels, progress=False)
    assert chosen.train_info_["few_shot"]["chosen"].startswith("12.0 labels per class < few_shot_below=13")
    plain = TextClassifier(str(tiny_encoder), few_shot_below=12, **options).fit(texts, labels, progress=False)
    assert "few_shot" not in plain.train_info_ and plain.train_info_["n_eval"] > 0
    off = TextClassifier(str(tiny_encoder), few_shot="off", few_shot_below=100, **options).fit(texts, labels,
                                                                                               progress=False)
    assert "few_shot" not in off.train_info_
    tfidf = TextClassifier("tfidf", few_shot="on").fit(texts, labels, progress=False)
    assert "few_shot" not in tfidf.train_info_


def test_multi_label_recipe(tiny_encoder):
    texts, labels = make_sentiment(40, seed=8)
    multi = [[y] + (["story"] if "story" in t.split() else []) for t, y in zip(texts, labels)]
    clf = TextClassifier(str(tiny_encoder), few_shot="on", multi_label=True, max_length=32, num_threads=1)
    clf.fit(texts, multi, progress=False)
    proba = clf.predict_proba(texts)
    assert proba.shape == (40, 3) and ((proba >= 0) & (proba <= 1)).all()
    assert clf.train_info_["few_shot"]["pairs"] > 0


def test_recipe_refuses_what_it_cannot_do(tiny_encoder):
    texts, labels = make_sentiment(16, seed=1)
    with pytest.raises(ConfigError, match="mean-pooling head"):
        TextClassifier(str(tiny_encoder), few_shot="on", head="cls", max_length=32).fit(texts, labels, progress=False)
    with pytest.raises(ConfigError, match="unknown few-shot mode 'maybe'"):
        TextClassifier(str(tiny_encoder), few_shot="maybe")
