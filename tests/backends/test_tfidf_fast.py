"""The few-texts TF-IDF scorer gives scikit-learn's probabilities, and the backend uses it only where it applies."""

import random

import numpy as np
import pytest
import sklearn

from conftest import make_sentiment
from lmworks.backends.base import FitRun
from lmworks.backends.tfidf import TfidfBackend, tfidf_pipeline
from lmworks.backends.tfidf_fast import MAX_TEXTS, FastTfidfScorer
from lmworks.training.config import TrainConfig


def _probe_texts(seed: int) -> list[str]:
    """Held-out texts, plus the edge cases: nothing known, empty, repeated words, other casing and punctuation."""
    texts, _ = make_sentiment(40, seed=seed)
    return texts + ["", "zzqx vvbn", "great great great GREAT great!", "The FILM was awful... and boring?",
                    "un film génial, 非常好看"]


def _sklearn_proba(pipeline, texts):
    with sklearn.config_context(skip_parameter_validation=True, assume_finite=True):
        return pipeline.predict_proba(texts)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_fast_scorer_matches_sklearn(n_classes):
    texts, labels = make_sentiment(300, seed=1)
    if n_classes == 3:  # a third class, keyed on a filler word, so the model is multinomial
        rng = random.Random(0)
        labels = [("mixed" if "plot" in t and rng.random() < 0.8 else y) for t, y in zip(texts, labels)]
    pipeline = tfidf_pipeline(TrainConfig(model="tfidf")).fit(texts, labels)
    scorer = FastTfidfScorer.from_pipeline(pipeline)
    assert scorer is not None
    probe = _probe_texts(seed=7)
    fast = scorer.predict_proba(probe)
    assert fast.shape == (len(probe), n_classes)
    np.testing.assert_allclose(fast, _sklearn_proba(pipeline, probe), rtol=0, atol=1e-12)


def test_backend_uses_the_scorer_for_few_texts_and_sklearn_for_many():
    texts, labels = make_sentiment(200, seed=2)
    backend = TfidfBackend()
    targets = np.array([0 if y == "neg" else 1 for y in labels])
    backend.fit(texts, targets, FitRun(config=TrainConfig(model="tfidf"), labels=["neg", "pos"]))
    probe = (_probe_texts(seed=3) * 2)[:MAX_TEXTS + 5]
    few = np.concatenate([backend.predict_proba(probe[i:i + 1]) for i in range(len(probe))])
    many = backend.predict_proba(probe)
    assert len(probe) > MAX_TEXTS and isinstance(backend._fast, FastTfidfScorer)
    np.testing.assert_allclose(few, many, rtol=0, atol=1e-12)


def test_other_pipeline_shapes_are_left_to_sklearn():
    texts, labels = make_sentiment(100, seed=4)
    multi_label = tfidf_pipeline(TrainConfig(model="tfidf", multi_label=True))
    multi_label.fit(texts, np.array([[y == "pos", y == "neg"] for y in labels], dtype=int))
    assert FastTfidfScorer.from_pipeline(multi_label) is None
