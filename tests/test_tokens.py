import logging

import pytest

from lmworks.tokens import pad_batch, sorted_batches, tokenize
from lmworks.training.batching import length_grouped_batches
from lmworks.training.schedule import linear_warmup_decay


def test_length_grouped_batches_cover_all_and_reduce_padding():
    import random

    rng = random.Random(0)
    lengths = [rng.randint(5, 120) for _ in range(1000)]
    batches = length_grouped_batches(lengths, 16, seed=1)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(1000))
    assert batches == length_grouped_batches(lengths, 16, seed=1)
    assert batches != length_grouped_batches(lengths, 16, seed=2)
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    random_batches = [list(range(i, min(i + 16, 1000))) for i in range(0, 1000, 16)]
    padded_random = sum(len(b) * max(lengths[i] for i in b) for b in random_batches)
    assert padded < 0.7 * padded_random


def test_sorted_batches_respect_token_budget():
    lengths = [10] * 50 + [600]
    batches = list(sorted_batches(lengths, max_tokens=1000))
    assert sorted(i for b in batches for i in b) == list(range(51))
    for b in batches:
        assert len(b) * max(lengths[i] for i in b) <= 1000 or len(b) == 1
    assert [50] in batches  # the long text travels alone


def test_pad_batch():
    ids, mask = pad_batch([[1, 2, 3], [4]], pad_id=0)
    assert ids.tolist() == [[1, 2, 3], [4, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]


def test_schedule_warmup_then_linear_decay():
    values = [linear_warmup_decay(s, warmup_steps=10, total_steps=100) for s in range(100)]
    assert values[0] > 0 and values[9] < 1
    assert max(values) == pytest.approx(1.0)
    assert values[10] == pytest.approx(1.0)
    assert values[55] == pytest.approx(0.5)
    assert all(a >= b for a, b in zip(values[10:], values[11:]))


def test_truncation_is_counted_in_a_warning(minilm_dir, caplog):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(minilm_dir, local_files_only=True)
    texts = ["short text", "word " * 100, "another " * 50, "fine"]
    with caplog.at_level(logging.WARNING, logger="lmworks"):
        ids = tokenize(tok, texts, 16)
    assert [len(x) for x in ids][1:3] == [16, 16]
    assert ids[1][-1] == tok.sep_token_id
    assert "2 of 4 texts were longer than max_length=16 tokens and were truncated" in caplog.text
