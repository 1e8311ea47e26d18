"""Model-agnostic explanations: what the model's score loses when a word (or a modality) is removed.

Occlusion needs only predictions, so it explains any model directory — an ONNX or int8
export, a blend mixed in probability space, a multimodal model's text columns — at the
cost of one extra prediction per word (all of a text's variants go through the model as
one batch). A word's score is ``f(text) - f(text without the word)`` in the same space as
the gradient and exact methods: the class's centred log-probability (a multi-label
model's logit).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .words import Words

_EPS = 1e-7
#: Variants scored per call to the model (bounds memory on long texts).
CHUNK = 512


def target_scores(proba: np.ndarray, columns: Sequence[int], *, multi_label: bool) -> np.ndarray:
    """The explained score of each row: centred log-probability of its class (logit for multi-label)."""
    p = np.clip(np.asarray(proba, dtype=np.float64), _EPS, 1 - _EPS)
    rows = np.arange(len(p))
    cols = np.asarray(columns, dtype=np.int64)
    if multi_label:
        q = p[rows, cols]
        return np.log(q) - np.log1p(-q)
    logs = np.log(p)
    return logs[rows, cols] - logs.mean(axis=1)


def occlusion(proba_fn: Callable[[list[Any]], np.ndarray], words: Sequence[Words], columns: Sequence[int], *,
              multi_label: bool, rebuild: Callable[[int, str], Any] | None = None) -> list[np.ndarray]:
    """Per-word scores: the drop of the explained score when each word is cut out.

    ``rebuild(i, text)`` turns an edited text back into model input ``i`` (a multimodal
    row with that text column replaced); by default the text itself.
    """
    def score(inputs: list[Any], owners: list[int]) -> np.ndarray:
        return target_scores(proba_fn(inputs), [columns[i] for i in owners], multi_label=multi_label)

    return occlusion_drops(score, words, rebuild=rebuild)


def occlusion_drops(score_fn: Callable[[list[Any], list[int]], np.ndarray], words: Sequence[Words], *,
                    rebuild: Callable[[int, str], Any] | None = None) -> list[np.ndarray]:
    """Per word, ``score(text) - score(text without the word)`` for any scalar ``score_fn(inputs, owners)``.

    ``owners[k]`` is the index of the text input ``k`` was made from, so one call can score
    variants of several texts (a retrieval score against each text's own best match, say).
    """
    make = rebuild or (lambda i, text: text)
    owners: list[tuple[int, int]] = []  # (text, word or -1 for the full text)
    inputs: list[Any] = []
    for i, w in enumerate(words):
        owners.append((i, -1))
        inputs.append(make(i, w.text))
        for j in range(len(w)):
            owners.append((i, j))
            inputs.append(make(i, w.without([j])))
    scores = np.concatenate([
        np.asarray(score_fn(inputs[at:at + CHUNK], [i for i, _ in owners[at:at + CHUNK]]), dtype=np.float64)
        for at in range(0, len(inputs), CHUNK)
    ]) if inputs else np.zeros(0)
    full = {i: scores[k] for k, (i, j) in enumerate(owners) if j < 0}
    out = [np.zeros(len(w)) for w in words]
    for k, (i, j) in enumerate(owners):
        if j >= 0:
            out[i][j] = full[i] - scores[k]
    return out


def modality_shares(proba_fn: Callable[[list[Any]], np.ndarray], rows: Sequence[dict[str, Any]],
                    modalities: dict[str, Sequence[str]], columns: Sequence[int], *,
                    multi_label: bool) -> list[dict[str, float]]:
    """Each modality's share of the decision: the score lost when its columns are set missing.

    Missing is what the model was trained to read as absent (empty text, no image, ``nan``,
    no category): the network's own gate. Shares are the signed drops divided by the sum
    of their absolute values, so they say both which input mattered and in which direction.
    """
    kinds = [k for k, cols in modalities.items() if cols]
    variants: list[Any] = []
    for row in rows:
        variants.append(row)
        for kind in kinds:
            variants.append({**row, **{c: _missing_value(kind) for c in modalities[kind]}})
    width = len(kinds) + 1
    scores = target_scores(proba_fn(variants), [columns[i] for i in range(len(rows)) for _ in range(width)],
                           multi_label=multi_label).reshape(len(rows), width)
    out = []
    for row_scores in scores:
        drops = row_scores[0] - row_scores[1:]
        total = float(np.abs(drops).sum()) or 1.0
        out.append({kind: round(float(d) / total, 4) for kind, d in zip(kinds, drops)})
    return out


def _missing_value(kind: str) -> Any:
    return {"text": "", "numeric": float("nan")}.get(kind)
