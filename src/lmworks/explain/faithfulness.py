"""How faithful an explanation is: ERASER's comprehensiveness and sufficiency (DeYoung et al., ACL 2020).

*Comprehensiveness*: how much the probability of the explained class drops when the top
``k`` % of words (by score) are removed — high is good, the words mattered. *Sufficiency*:
how much it drops when only those words are kept — low is good, they were enough. Both are
averaged over ``k`` in {1, 5, 10, 20, 50} % (AOPC), with at least one word per step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .words import Words

LEVELS = (0.01, 0.05, 0.10, 0.20, 0.50)


def eraser_aopc(proba_fn: Callable[[list[str]], np.ndarray], words: Sequence[Words],
                scores: Sequence[Sequence[float]], columns: Sequence[int],
                levels: Sequence[float] = LEVELS) -> dict[str, Any]:
    """Mean comprehensiveness and sufficiency AOPC over the texts, and per text."""
    variants: list[str] = []
    for w, s in zip(words, scores):
        order = np.argsort(-np.asarray(s, dtype=float), kind="stable")
        variants.append(w.text)
        for level in levels:
            top = order[:max(1, math.ceil(level * len(w)))].tolist()
            variants.extend([w.without(top) or " ", w.only(top)])
    proba = proba_fn(variants)
    width = 1 + 2 * len(levels)
    comprehensiveness, sufficiency = [], []
    for i, column in enumerate(columns):
        p = proba[i * width:(i + 1) * width, column]
        comprehensiveness.append(float(np.mean(p[0] - p[1::2])))
        sufficiency.append(float(np.mean(p[0] - p[2::2])))
    return {"comprehensiveness": float(np.mean(comprehensiveness)), "sufficiency": float(np.mean(sufficiency)),
            "per_text": {"comprehensiveness": comprehensiveness, "sufficiency": sufficiency}}
