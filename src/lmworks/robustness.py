"""Accuracy under realistic input noise and under an embedding-space attack.

Text perturbations (own code, seeded; no library here works offline with the
wordnets and models it wants):

``typos``      one keyboard typo (neighbour key, dropped, doubled or swapped letter) in ~15 % of the words
``case_punct`` random case flips on ~20 % of the words, punctuation dropped or added
``word_drop``  ~10 % of the words removed
``word_swap``  ~10 % of the neighbouring word pairs swapped

The embedding attack moves every input's word embeddings by ``epsilon`` (L2, per text)
along the gradient of the loss of its true label (one FGM step): how far the decision
is from the nearest bad neighbour. Only a PyTorch model directory has gradients.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .errors import ConfigError

KEYBOARD = ["qwertyuiop", "asdfghjkl", "zxcvbnm"]
_NEIGHBOURS: dict[str, str] = {}
for _r, _row in enumerate(KEYBOARD):
    for _c, _ch in enumerate(_row):
        near = [_row[j] for j in (_c - 1, _c + 1) if 0 <= j < len(_row)]
        for _rr in (_r - 1, _r + 1):
            if 0 <= _rr < len(KEYBOARD):
                near += [KEYBOARD[_rr][j] for j in (_c - 1, _c, _c + 1) if 0 <= j < len(KEYBOARD[_rr])]
        _NEIGHBOURS[_ch] = "".join(near)


def _typo(word: str, rng: random.Random) -> str:
    letters = [i for i, ch in enumerate(word) if ch.isalpha()]
    if not letters:
        return word
    i = rng.choice(letters)
    kind = rng.randrange(4)
    if kind == 0 and word[i].lower() in _NEIGHBOURS:
        repl = rng.choice(_NEIGHBOURS[word[i].lower()])
        return word[:i] + (repl.upper() if word[i].isupper() else repl) + word[i + 1:]
    if kind == 1 and len(word) > 1:
        return word[:i] + word[i + 1:]
    if kind == 2:
        return word[:i] + word[i] + word[i:]
    if i + 1 < len(word):
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    return word


def typos(text: str, rng: random.Random, rate: float = 0.15) -> str:
    """Keyboard typos in about ``rate`` of the words."""
    return " ".join(_typo(w, rng) if rng.random() < rate else w for w in text.split())


def case_punct(text: str, rng: random.Random, rate: float = 0.2) -> str:
    """Case flips and punctuation noise."""
    words = []
    for w in text.split():
        if rng.random() < rate:
            w = w.upper() if rng.random() < 0.5 else w.lower().capitalize()
        if w and w[-1] in string.punctuation and rng.random() < 0.5:
            w = w[:-1]
        elif rng.random() < 0.05:
            w += rng.choice("!?,.")
        words.append(w)
    return " ".join(words)


def word_drop(text: str, rng: random.Random, rate: float = 0.1) -> str:
    """Remove about ``rate`` of the words (never all of them)."""
    words = text.split()
    kept = [w for w in words if rng.random() >= rate]
    return " ".join(kept or words[:1])


def word_swap(text: str, rng: random.Random, rate: float = 0.1) -> str:
    """Swap about ``rate`` of the neighbouring word pairs."""
    words = text.split()
    i = 0
    while i < len(words) - 1:
        if rng.random() < rate:
            words[i], words[i + 1] = words[i + 1], words[i]
            i += 2
        else:
            i += 1
    return " ".join(words)


PERTURBATIONS: dict[str, Callable[[str, random.Random], str]] = {
    "typos": typos, "case_punct": case_punct, "word_drop": word_drop, "word_swap": word_swap,
}


def perturb(texts: Sequence[str], name: str, seed: int = 0) -> list[str]:
    """Apply one perturbation to every text (one RNG per text: the same text always changes the same way)."""
    function = PERTURBATIONS[name]
    return [function(t, random.Random(f"{seed}:{name}:{i}")) for i, t in enumerate(texts)]


def _accuracy(predicted: Sequence[Any], labels: Sequence[Any]) -> float:
    return float(np.mean([p == y for p, y in zip(predicted, labels)])) if len(labels) else 0.0


def evaluate_robustness(predictor, texts: Sequence[str], labels: Sequence[Any], *, seed: int = 0,
                        attack_epsilon: float | None = 1.0) -> dict[str, Any]:
    """Clean accuracy, accuracy under each perturbation, their mean, and under the embedding attack."""
    if predictor.task != "single_label":
        raise ConfigError("robustness evaluation supports single-label models")
    clean = _accuracy(predictor.predict(texts), labels)
    out: dict[str, Any] = {"n": len(texts), "seed": seed, "clean_accuracy": clean, "perturbed": {}}
    for name in PERTURBATIONS:
        out["perturbed"][name] = _accuracy(predictor.predict(perturb(texts, name, seed)), labels)
    out["perturbed_mean_accuracy"] = float(np.mean(list(out["perturbed"].values())))
    if attack_epsilon:
        out["attack_epsilon"] = attack_epsilon
        out["embedding_attack_accuracy"] = embedding_attack_accuracy(predictor, texts, labels, attack_epsilon)
    return out


def embedding_attack_accuracy(predictor, texts: Sequence[str], labels: Sequence[Any], epsilon: float,
                              batch_size: int = 32) -> float | None:
    """Accuracy after one FGM step of size ``epsilon`` on each text's input embeddings."""
    import torch

    backend = predictor.classifier.backend_
    backend = getattr(backend, "primary", backend)
    network = getattr(backend, "network", None)
    if network is None or not hasattr(network, "input_embeddings"):
        return None  # ONNX or TF-IDF: no gradients to follow
    from .tokens import pad_batch, tokenize

    index = {label: i for i, label in enumerate(predictor.labels)}
    ids = tokenize(backend.tokenizer, texts, backend.max_length, what="texts")
    embed = network.input_embeddings()
    correct = 0
    network.eval()
    for start in range(0, len(ids), batch_size):
        chunk = ids[start:start + batch_size]
        padded, mask = pad_batch(chunk, backend.tokenizer.pad_token_id)
        targets = torch.tensor([index.get(y, -100) for y in labels[start:start + batch_size]])
        inputs = embed(padded).detach().requires_grad_(True)
        logits = network(None, mask, inputs_embeds=inputs)
        loss = torch.nn.functional.cross_entropy(logits, targets, ignore_index=-100, reduction="sum")
        (grad,) = torch.autograd.grad(loss, inputs)
        grad = grad * mask.unsqueeze(-1)
        norms = torch.linalg.vector_norm(grad.flatten(1), dim=1).clamp_min(1e-12)
        with torch.no_grad():
            attacked = inputs + epsilon * grad / norms[:, None, None]
            predicted = network(None, mask, inputs_embeds=attacked).argmax(-1)
        correct += int((predicted == targets).sum())
    return correct / len(ids) if ids else 0.0

