"""Words that push each class over a whole file (``lmworks explain --global``).

One text's explanation can be an accident; a word that supports a class across hundreds of
texts is what the model has learnt — a shortcut (a product code, a signature, a source
name) shows up here before it ships.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from .explanation import Explanation


def global_words(explanations: Sequence[Explanation], *, top: int = 20, min_count: int = 2) -> dict[str, list[dict]]:
    """Per explained class: the words with the largest total support, with counts and mean scores.

    Words are compared case-insensitively; a word must occur in at least ``min_count`` texts
    of the class (1 when the file is that small) to be listed.
    """
    totals: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    texts_per_class: dict[str, int] = defaultdict(int)
    for e in explanations:
        texts_per_class[e.label] += 1
        seen: dict[str, float] = defaultdict(float)
        for word, score in zip(e.words, e.scores):
            seen[word.casefold()] += float(score)
        for word, score in seen.items():
            totals[e.label][word].append(score)
    out: dict[str, list[dict[str, Any]]] = {}
    for label, words in totals.items():
        floor = min(min_count, texts_per_class[label])
        kept = sorted(((w, s) for w, s in words.items() if len(s) >= floor and sum(s) > 0),
                      key=lambda ws: (-sum(ws[1]), ws[0]))
        out[label] = [{"word": w, "count": len(s), "mean_score": round(sum(s) / len(s), 6), "total": round(sum(s), 6)}
                      for w, s in kept[:top]]
    return {label: out[label] for label in sorted(out)}
