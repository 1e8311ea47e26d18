"""Several annotators: one label per item from theirs, agreement (Cohen's kappa), conflicts.

Pure functions over ``{item: {annotator: label}}`` so they are tested alone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from itertools import combinations
from typing import Any

ItemLabels = Mapping[int, Mapping[str, str]]


def resolve(labels: Mapping[str, str]) -> str | None:
    """The majority label among annotators; None when there is none or the top is a tie (a conflict)."""
    if not labels:
        return None
    counts = Counter(labels.values()).most_common()
    if len(counts) > 1 and counts[0][1] == counts[1][1]:
        return None
    return counts[0][0]


def conflicts(labels: ItemLabels) -> list[int]:
    """Items whose annotators disagree, in item order."""
    return sorted(item for item, by in labels.items() if len(set(by.values())) > 1)


def cohen_kappa(a: list[str], b: list[str]) -> float | None:
    """Cohen's kappa of two annotators' labels on the same items; None where it is undefined (one class only)."""
    n = len(a)
    if n == 0:
        return None
    observed = sum(x == y for x, y in zip(a, b)) / n
    ca, cb = Counter(a), Counter(b)
    expected = sum(ca[k] * cb.get(k, 0) for k in ca) / (n * n)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


def agreement(labels: ItemLabels) -> list[dict[str, Any]]:
    """Per pair of annotators who labelled common items: items shared, raw agreement and Cohen's kappa."""
    annotators = sorted({who for by in labels.values() for who in by})
    out = []
    for first, second in combinations(annotators, 2):
        shared = [(by[first], by[second]) for by in labels.values() if first in by and second in by]
        if not shared:
            continue
        a, b = [x for x, _ in shared], [y for _, y in shared]
        kappa = cohen_kappa(a, b)
        out.append({"annotators": [first, second], "items": len(shared),
                    "agreement": round(sum(x == y for x, y in shared) / len(shared), 4),
                    "kappa": None if kappa is None else round(kappa, 4)})
    return out
