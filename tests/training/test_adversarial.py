"""Adversarial training (FGM/PGD on the embeddings) and the robustness evaluation."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest
import torch

from lmworks import TextClassifier
from lmworks.robustness import PERTURBATIONS, perturb
from lmworks.training.adversarial import EmbeddingAdversary, consistency_loss


def test_perturbations_are_seeded_and_change_text():
    texts = ["The acting was really wonderful, and the plot was quite charming."] * 3
    for name in PERTURBATIONS:
        once, again = perturb(texts, name, seed=1), perturb(texts, name, seed=1)
        assert once == again
        assert any(t != texts[0] for t in perturb(texts * 10, name, seed=2)), name
    typo = PERTURBATIONS["typos"]("hello world", random.Random(0), rate=1.0)
    assert typo != "hello world" and len(typo.split()) == 2


@pytest.mark.parametrize("norm", ["batch", "example"])
@pytest.mark.parametrize("method", ["fgm", "pgd"])
def test_attack_restores_embeddings_and_adds_gradient(method, norm):
    torch.manual_seed(0)
    emb = torch.nn.Embedding(50, 8)
    head = torch.nn.Linear(8, 2)
    net = torch.nn.ModuleDict({"emb": emb, "head": head})
    ids, y = torch.randint(0, 50, (4, 5)), torch.tensor([0, 1, 0, 1])

    def loss():
        return torch.nn.functional.cross_entropy(head(emb(ids).mean(1)), y)

    adversary = EmbeddingAdversary(net, emb, method=method, epsilon=0.5, steps=3, norm=norm)
    clean = loss()
    clean.backward()
    clean_grad = head.weight.grad.clone()
    before = emb.weight.detach().clone()
    adv_loss = adversary.attack(loss)
    assert torch.equal(emb.weight.detach(), before)  # restored exactly
    assert adv_loss > float(clean.detach())  # uphill
    assert not torch.allclose(head.weight.grad, clean_grad)  # adversarial gradient added
    adversary.close()
    assert torch.equal(emb(ids), before[ids])  # no hook left behind


def test_example_norm_gives_every_text_the_whole_radius():
    """With norm="example", each text's looked-up embeddings move by exactly epsilon (FGM)."""
    torch.manual_seed(0)
    emb = torch.nn.Embedding(50, 8)
    head = torch.nn.Linear(8, 2)
    net = torch.nn.ModuleDict({"emb": emb, "head": head})
    ids, y = torch.randint(0, 50, (4, 5)), torch.tensor([0, 1, 0, 1])
    seen = []

    def loss():
        looked_up = emb(ids)
        seen.append(looked_up.detach())
        return torch.nn.functional.cross_entropy(head(looked_up.mean(1)), y)

    adversary = EmbeddingAdversary(net, emb, method="fgm", epsilon=0.7, norm="example")
    loss().backward()
    adversary.attack(loss)
    shift = torch.linalg.vector_norm((seen[1] - seen[0]).flatten(1), dim=1)
    assert torch.allclose(shift, torch.full((4,), 0.7), atol=1e-5)
    batch = EmbeddingAdversary(net, emb, method="fgm", epsilon=0.7, norm="batch")
    seen.clear()
    net.zero_grad()
    loss().backward()
    batch.attack(loss)
    shift = torch.linalg.vector_norm((seen[1] - seen[0]).flatten(1), dim=1)
    assert not torch.allclose(shift, torch.full((4,), 0.7), atol=1e-3)  # one budget shared by the batch


@pytest.mark.parametrize("multi_label", [False, True])
def test_consistency_loss_is_a_kl_divergence(multi_label):
    torch.manual_seed(0)
    clean = torch.randn(6, 3)
    assert float(consistency_loss(clean.clone(), clean, multi_label=multi_label)) == pytest.approx(0, abs=1e-6)
    perturbed = (clean + torch.randn(6, 3)).requires_grad_(True)
    value = consistency_loss(perturbed, clean, multi_label=multi_label)
    if multi_label:
        p, q = torch.sigmoid(clean), torch.sigmoid(perturbed.detach())
        expected = (p * (p / q).log() + (1 - p) * ((1 - p) / (1 - q)).log()).sum(-1).mean()
    else:
        p, q = clean.softmax(-1), perturbed.detach().softmax(-1)
        expected = (p * (p / q).log()).sum(-1).mean()
    assert float(value.detach()) == pytest.approx(float(expected), rel=1e-5) and float(value.detach()) > 0
    value.backward()
    assert perturbed.grad is not None and perturbed.grad.abs().sum() > 0


@pytest.mark.parametrize(("method", "norm", "loss"), [("fgm", "batch", "label"), ("pgd", "batch", "label"),
                                                    ("fgm", "example", "label"), ("pgd", "example", "consistency")])
def test_adversarial_fit_trains_and_records_the_setting(tiny_encoder, sentiment_data, tiny_fast_options, method,
                                                        norm, loss):
    (texts, labels), (dev_texts, dev_labels) = sentiment_data
    clf = TextClassifier(str(tiny_encoder), **tiny_fast_options, adversarial=method, adv_epsilon=0.1,
                         adv_steps=2, adv_norm=norm, adv_loss=loss, blend="none")
    clf.fit(texts, labels, dev_texts, dev_labels, progress=False)
    assert clf.evaluate(dev_texts, dev_labels)["accuracy"] > 0.9
    assert (clf.config.adversarial, clf.config.adv_norm, clf.config.adv_loss) == (method, norm, loss)


def test_robustness_cli(tmp_path, tiny_model_dir):
    from conftest import make_sentiment

    texts, labels = make_sentiment(60, seed=9)
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in zip(texts, labels)))
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, "-m", "lmworks", "robustness", str(tiny_model_dir), str(data),
                           "--json", str(out), "--attack-epsilon", "5"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert set(result["perturbed"]) == set(PERTURBATIONS)
    assert 0 <= result["embedding_attack_accuracy"] <= result["clean_accuracy"]
    assert "embedding attack" in proc.stdout


def test_unknown_adversarial_method_is_refused(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "lmworks", "train", "x.csv", "--adversarial", "magic", "--output",
                           str(tmp_path / "o")], capture_output=True, text=True)
    assert proc.returncode == 2 and "invalid choice" in proc.stderr
