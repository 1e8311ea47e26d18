"""The few-shot recipe: the SupCon loss and its batches, the head written in exactly, auto choice, the model dir."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_sentiment
from lmworks import TextClassifier
from lmworks.backends.fewshot import ContrastiveObjective, label_keys, stage_steps, supcon_loss
from lmworks.errors import ConfigError
from lmworks.training.config import TrainConfig


def test_supcon_loss_matches_its_definition():
    torch.manual_seed(0)
    vectors = torch.nn.functional.normalize(torch.randn(5, 4), dim=-1)
    keys = [(0,), (0,), (1,), (1,), (2,)]
    expected, anchors = 0.0, 0
    for i in range(5):
        others = [j for j in range(5) if j != i]
        positives = [j for j in others if keys[j] == keys[i]]
        if not positives:
            continue
        logits = torch.stack([vectors[i] @ vectors[j] / 0.1 for j in others])
        log_p = logits - torch.logsumexp(logits, 0)
        expected += -sum(log_p[others.index(j)] for j in positives) / len(positives)
        anchors += 1
    assert torch.isclose(supcon_loss(vectors, keys, 0.1), expected / anchors, atol=1e-5)



def test_rows_without_labels_are_classmates_and_never_their_own_negative():
    # multi-label rows with no label on: two of them are classmates, apart from every labelled row
    torch.manual_seed(3)
    vectors = torch.nn.functional.normalize(torch.randn(4, 4), dim=-1)
    keys = [(), (), (0,), (1,)]
    expected = 0.0
    for i in (0, 1):
        others = [j for j in range(4) if j != i]
        logits = torch.stack([vectors[i] @ vectors[j] / 0.1 for j in others])
        expected += -(logits - torch.logsumexp(logits, 0))[others.index(1 - i)]
    assert torch.isclose(supcon_loss(vectors, keys, 0.1), expected / 2, atol=1e-5)

def test_supcon_pulls_classmates_together():
    torch.manual_seed(1)
    keys = [(0,), (1,), (0,), (1,)]
    apart = torch.nn.functional.normalize(torch.tensor([[1.0, 0], [0, 1], [1, 0.1], [0.1, 1]]), dim=-1)
    mixed = apart[[0, 1, 3, 2]]  # the same points, classmates now far apart
    assert supcon_loss(apart, keys) < supcon_loss(mixed, keys)


def test_multi_label_partial_overlaps_are_neither_positive_nor_negative():
    keys = label_keys(np.array([[1, 0, 0], [1, 0, 0], [1, 1, 0], [0, 0, 1]]))
    assert keys == [(0,), (0,), (0, 1), (2,)]
    torch.manual_seed(2)
    vectors = torch.nn.functional.normalize(torch.randn(4, 3), dim=-1).requires_grad_()
    loss = supcon_loss(vectors, keys)
    loss.backward()
    # row 2 overlaps rows 0 and 1 in part (neither) and has no classmate (no anchor); row 3 has none either
    kept = [0, 1, 3]
    assert torch.isclose(loss, supcon_loss(vectors[kept], [keys[i] for i in kept]))
    assert vectors.grad is not None and (vectors.grad[2] == 0).all() and (vectors.grad[3] != 0).any()


def test_no_positive_in_batch_gives_zero_loss_with_a_gradient():
    vectors = torch.nn.functional.normalize(torch.randn(3, 4), dim=-1).requires_grad_()
    loss = supcon_loss(vectors, [(0,), (1,), (2,)])
    loss.backward()
    assert float(loss.detach()) == 0.0 and vectors.grad is not None


def test_batches_are_seeded_and_the_budget_is_setfits():
    objective = ContrastiveObjective([[1]] * 50, [(i % 3,) for i in range(50)], pad_id=0, steps=7, seed=3)
    assert objective.batches(0) == objective.batches(0) != objective.batches(1)
    assert len(objective.batches(0)) == 7 and all(len(set(b)) == 32 for b in objective.batches(0))
    assert stage_steps(16) == 40 and stage_steps(10_000) == 125
    small = ContrastiveObjective([[1]] * 5, [(0,)] * 5, pad_id=0, steps=2, seed=0)
    assert all(sorted(b) == list(range(5)) for b in small.batches(0))


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
    assert info["chosen"] == "few_shot=on" and info["pair_steps"] == 40 and info["pair_batch"] == 16
    assert info["pairs"] == 40 * 16 * 15 // 2 and info["objective"].startswith("supervised contrastive")
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
    assert meta["backend"] == "transformer" and meta["train_info"]["few_shot"]["pair_steps"] == 40
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
    cls = TextClassifier(str(tiny_encoder), head="cls", few_shot_below=100, **options).fit(texts, labels,
                                                                                          progress=False)
    assert "few_shot" not in cls.train_info_  # the recipe needs the mean head: auto fine-tunes instead
    blended = TextClassifier(str(tiny_encoder), blend="tfidf", few_shot_below=100, **options).fit(texts, labels,
                                                                                                 progress=False)
    assert "few_shot" not in blended.train_info_ and blended.train_info_["n_eval"] > 0  # the recipe never blends
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


def test_default_threshold_is_the_one_the_bench_recorded():
    results = Path(__file__).resolve().parents[2] / "docs" / "results" / "fewshot.json"
    assert TrainConfig().few_shot_below == json.loads(results.read_text())["values"]["few_shot_below"]
