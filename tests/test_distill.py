"""Knowledge distillation: the loss, the teacher cache, the student, the CLI."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from conftest import make_sentiment
from lmworks import TextClassifier
from lmworks.distill import DistillConfig, distill, teacher_fingerprint, teacher_probabilities
from lmworks.errors import ConfigError, DataError
from lmworks.predictor import Predictor
from lmworks.training.losses import distillation_loss, pack_targets


def test_distillation_loss_mixes_labels_and_softened_teacher():
    ce = torch.nn.CrossEntropyLoss()
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.3], [-0.2, 1.0]])
    teacher = np.array([[0.9, 0.1], [0.3, 0.7], [0.2, 0.8]])
    packed = pack_targets(np.array([0, 1, -1]), teacher)  # the third row has no label
    labels_only = distillation_loss(ce, alpha=1.0, temperature=3.0)(logits, packed)
    torch.testing.assert_close(labels_only, ce(logits[:2], torch.tensor([0, 1])))
    t = 3.0
    teacher_only = distillation_loss(ce, alpha=0.0, temperature=t)(logits, packed)
    p_t = torch.softmax(torch.log(torch.tensor(teacher, dtype=torch.float32)) / t, 1)
    kl = (p_t * (torch.log(p_t) - torch.log_softmax(logits / t, 1))).sum(1).mean()
    torch.testing.assert_close(teacher_only, t ** 2 * kl)
    mixed = distillation_loss(ce, alpha=0.3, temperature=t)(logits, packed)
    torch.testing.assert_close(mixed, 0.3 * labels_only + 0.7 * teacher_only)
    unlabelled_only = distillation_loss(ce, alpha=0.5, temperature=1.0)(logits[2:], packed[2:])
    assert torch.isfinite(unlabelled_only) and unlabelled_only > 0  # no label in the batch: teacher term alone


@pytest.fixture(scope="module")
def teacher_dir(tiny_model_dir):
    return tiny_model_dir


def kl_to_teacher(teacher: np.ndarray, student: np.ndarray) -> float:
    return float(np.mean(np.sum(teacher * (np.log(teacher + 1e-9) - np.log(student + 1e-9)), axis=1)))


def test_student_learns_the_teacher_and_reloads_identically(teacher_dir, tiny_encoder, tmp_path):
    texts, labels = make_sentiment(200, seed=61)
    dev_texts, dev_labels = make_sentiment(60, seed=62)
    probe, _ = make_sentiment(80, seed=63)  # neither trained on nor used for selection
    teacher = Predictor.load(teacher_dir).predict_proba(probe)
    options = {"epochs": 3, "batch_size": 16, "lr": 3e-3, "head_lr_multiplier": 1.0, "max_length": 32,
               "num_threads": 1, "patience": 0, "blend": "none", "seed": 5}
    before = TextClassifier(str(tiny_encoder), **{**options, "epochs": 0.01}).fit(texts, labels, progress=False)
    unlabeled, _ = make_sentiment(150, seed=64)
    student = distill(teacher_dir, texts, labels, dev_texts, dev_labels, unlabeled=unlabeled,
                      student=TextClassifier(str(tiny_encoder), **options),
                      config=DistillConfig(alpha=0.2, temperature=2.0, cache_dir=str(tmp_path / "cache")),
                      progress=False)
    after = student.predict_proba(probe)
    assert kl_to_teacher(teacher, after) < 0.5 * kl_to_teacher(teacher, before.predict_proba(probe))
    assert np.mean(after.argmax(1) == teacher.argmax(1)) >= 0.9
    record = student.train_info_["distillation"]
    assert record["teacher_fingerprint"] == teacher_fingerprint(teacher_dir) and record["unlabeled_texts"] == 150
    assert record["alpha"] == 0.2 and record["teacher_dev"]["accuracy"] > 0.5
    saved = student.save(tmp_path / "student")
    meta = json.loads((saved / "lmworks.json").read_text())
    assert meta["train_info"]["distillation"]["teacher"] == str(teacher_dir.resolve())
    again = TextClassifier.load(saved)
    np.testing.assert_array_equal(again.predict_proba(probe), after)


def test_a_teacher_with_other_labels_is_refused(teacher_dir, tiny_encoder, tmp_path):
    texts, labels = make_sentiment(40, seed=65)
    relabelled = ["good" if y == "pos" else "bad" for y in labels]
    with pytest.raises(DataError, match=r"teacher was trained on labels \['neg', 'pos'\] but the data has "
                                        r"\['bad', 'good'\]"):
        distill(teacher_dir, texts, relabelled, student=TextClassifier(str(tiny_encoder), epochs=1),
                config=DistillConfig(cache_dir=str(tmp_path)), progress=False)
    with pytest.raises(ConfigError, match="must be an encoder"):
        distill(teacher_dir, texts, labels, student=TextClassifier("tfidf"), progress=False)
    with pytest.raises(ConfigError, match="alpha must be in"):
        DistillConfig(alpha=1.5)


def test_teacher_cache_is_reused_and_invalidated_by_teacher_data_or_damage(teacher_dir, tiny_encoder, tmp_path,
                                                                           caplog):
    texts, labels = make_sentiment(30, seed=66)
    teacher = Predictor.load(teacher_dir)
    cache = tmp_path / "cache"
    key = teacher_fingerprint(teacher_dir)
    first = teacher_probabilities(teacher, texts, cache=cache, teacher_id=key)
    (path,) = cache.glob("*.npz")
    with caplog.at_level(logging.INFO, logger="lmworks"):
        again = teacher_probabilities(teacher, texts, cache=cache, teacher_id=key)
    assert "read from the cache" in caplog.text
    np.testing.assert_array_equal(first, again)
    teacher_probabilities(teacher, texts[:-1], cache=cache, teacher_id=key)  # other data: a new entry
    assert len(list(cache.glob("*.npz"))) == 2
    # another teacher (same labels, other weights): another fingerprint, recomputed
    other = TextClassifier(str(tiny_encoder), epochs=1, max_length=32, num_threads=1, blend="none", seed=9)
    other_dir = other.fit(texts, labels, progress=False).save(tmp_path / "other")
    assert teacher_fingerprint(other_dir) != key
    teacher_probabilities(Predictor.load(other_dir), texts, cache=cache, teacher_id=teacher_fingerprint(other_dir))
    assert len(list(cache.glob("*.npz"))) == 3
    # a damaged entry is recomputed, not trusted
    path.write_bytes(b"not an npz")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="lmworks"):
        repaired = teacher_probabilities(teacher, texts, cache=cache, teacher_id=key)
    assert "damaged" in caplog.text
    np.testing.assert_allclose(repaired, first)


def test_distill_cli_writes_an_ordinary_model_dir(teacher_dir, tiny_encoder, tmp_path):
    import csv

    from lmworks.cli import main

    def write(path, texts, labels):
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["text", "label"])
            w.writerows(zip(texts, labels))
        return path

    train = write(tmp_path / "train.csv", *make_sentiment(120, seed=67))
    dev = write(tmp_path / "dev.csv", *make_sentiment(40, seed=68))
    unlabeled = tmp_path / "more.txt"
    unlabeled.write_text("\n".join(make_sentiment(50, seed=69)[0]) + "\n", encoding="utf-8")
    code = main(["distill", str(teacher_dir), str(train), "--eval", str(dev), "--unlabeled", str(unlabeled),
                 "--unlabeled-limit", "30", "--model", str(tiny_encoder), "--output", str(tmp_path / "s"),
                 "--epochs", "2", "--batch-size", "16", "--lr", "3e-3", "--max-length", "32", "--threads", "1",
                 "--quiet", "--teacher-cache", str(tmp_path / "cache"), "--json", str(tmp_path / "m.json")])
    assert code == 0
    meta = json.loads((tmp_path / "s" / "lmworks.json").read_text())
    assert meta["train_info"]["distillation"]["unlabeled_texts"] == 30
    assert meta["train_info"]["distillation"]["unlabeled_limit"] == 30
    assert meta["backend"] == "transformer" and not (tmp_path / "s.ckpt").exists()
    assert json.loads((tmp_path / "m.json").read_text())["dev"]["n"] == 40
    assert main(["predict", str(tmp_path / "s"), str(dev), "--output", str(tmp_path / "p.csv"), "--quiet"]) == 0


def test_unlabeled_sample_is_the_same_for_every_student_seed():
    from lmworks.distill import sample_texts

    texts = [f"text {i}" for i in range(100)]
    sample = sample_texts(texts, 30)
    assert len(set(sample)) == 30 and set(sample) <= set(texts)
    assert sample == sorted(sample, key=texts.index)  # original order kept
    assert sample_texts(list(texts), 30) == sample  # fixed seed: the teacher cache key repeats
    assert sample_texts(texts, None) is texts and sample_texts(texts, 500) is texts
    with pytest.raises(ConfigError, match="unlabeled_limit must be >= 0"):
        DistillConfig(unlabeled_limit=-1)


def test_fragments_come_only_from_training_rows(teacher_dir, tiny_encoder, tmp_path, monkeypatch):
    from lmworks import augment
    from lmworks import distill as distill_module

    texts = ["the film is a warm and funny ride from start to end", "dull", "a b c d e f g"]
    pieces = augment.fragments(texts, 2, seed=3)
    assert pieces == augment.fragments(texts, 2, seed=3) and pieces  # deterministic
    assert all(p in texts[0] or p in texts[2] for p in pieces) and not set(pieces) & set(texts)
    # With no eval data, distill splits dev off first: no fragment may come from a dev text.
    seen: list[str] = []
    monkeypatch.setattr(distill_module, "fragments", lambda t, n, seed: seen.extend(t) or augment.fragments(
        t, n, seed=seed))
    all_texts, labels = make_sentiment(60, seed=70)
    student = distill(teacher_dir, all_texts, labels, student=TextClassifier(
        str(tiny_encoder), epochs=1, max_length=32, num_threads=1, blend="none", eval_fraction=0.2),
        config=DistillConfig(augment=1, cache_dir=str(tmp_path)), progress=False)
    assert len(seen) == 48 and student.train_info_["n_eval"] == 12
    assert student.train_info_["distillation"]["augment"] == 1
