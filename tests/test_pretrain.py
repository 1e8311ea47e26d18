"""Domain-adaptive masked-LM pretraining: masking rules, the CLI, and that `train --model DIR` takes the result."""

from __future__ import annotations

import json
import subprocess
import sys

import torch

from conftest import make_sentiment
from lmworks import TextClassifier
from lmworks.pretrain import mask_tokens


def test_masking_respects_specials_words_and_the_80_10_10_rule():
    gen = torch.Generator().manual_seed(0)
    ids = torch.arange(5, 5 + 4000).reshape(40, 100)
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, 0] = True
    inputs, labels = mask_tokens(ids, special, None, probability=0.15, mask_id=1, vocab_size=30000, generator=gen)
    chosen = labels != -100
    assert not chosen[:, 0].any()
    assert 0.12 < chosen.float().mean() < 0.18
    assert torch.equal(labels[chosen], ids[chosen])
    masked = (inputs == 1) & chosen
    assert 0.7 < masked.sum() / chosen.sum() < 0.9
    assert torch.equal(inputs[~chosen], ids[~chosen])
    # whole words: two pieces per word, chosen together
    words = (torch.arange(100) // 2).repeat(40, 1)
    _, labels = mask_tokens(ids, torch.zeros_like(special), words, probability=0.3, mask_id=1, vocab_size=30000,
                            generator=gen)
    chosen = labels != -100
    assert torch.equal(chosen[:, 0::2], chosen[:, 1::2])


def test_pretrain_cli_then_train_on_the_result(tmp_path, tiny_encoder, tiny_fast_options):
    texts, labels = make_sentiment(120, seed=5)
    corpus = tmp_path / "unlabelled.txt"
    corpus.write_text("\n".join(texts) + "\n", encoding="utf-8")
    out = tmp_path / "encoder"
    proc = subprocess.run([sys.executable, "-m", "lmworks", "pretrain", str(corpus), "--output", str(out),
                           "--model", str(tiny_encoder), "--epochs", "2", "--batch-size", "16", "--lr", "1e-3",
                           "--whole-word-masking", "--quiet", "--threads", "1"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["steps"] == 16 and info["last_loss"] < info["first_loss"]
    assert (out / "config.json").is_file() and (out / "pretraining.json").is_file()
    clf = TextClassifier(str(out), **tiny_fast_options).fit(texts, labels, progress=False)
    dev_texts, dev_labels = make_sentiment(40, seed=6)
    assert clf.evaluate(dev_texts, dev_labels)["accuracy"] > 0.8


def test_pretrain_refuses_too_little_text(tmp_path, tiny_encoder):
    corpus = tmp_path / "tiny.txt"
    corpus.write_text("one line\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "lmworks", "pretrain", str(corpus), "--output", str(tmp_path / "o"),
                           "--model", str(tiny_encoder)], capture_output=True, text=True)
    assert proc.returncode == 1 and "needs at least 32 non-empty texts" in proc.stderr


def test_head_warmup_keeps_the_encoder_frozen(tmp_path, tiny_encoder):
    from safetensors.torch import load_file

    from lmworks.pretrain import PretrainConfig, pretrain

    texts, _ = make_sentiment(64, seed=7)
    out = tmp_path / "enc"
    pretrain(texts, out, PretrainConfig(model=str(tiny_encoder), batch_size=16, lr=1e-2, head_warmup=0.99,
                                        num_threads=1), progress=False)
    before, after = load_file(str(tiny_encoder / "model.safetensors")), load_file(str(out / "model.safetensors"))
    layer = "encoder.layer.0.attention.self.query.weight"
    assert torch.equal(before[layer], after["bert." + layer])  # only the new head learned
