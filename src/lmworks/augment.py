"""Text fragments for distillation: more inputs for the teacher to label, cut from the training texts.

A student copies its teacher best where it sees the teacher at work, and a few thousand
labelled texts show it little. TinyBERT (Jiao et al. 2020) and its successors therefore
distil on augmented data. The cheapest augmentation that needs no other model is the one
the Stanford Sentiment Treebank made famous: phrases. Each fragment here is a contiguous
window of a training text's words; the teacher's probabilities, not the source text's
label, are its target, because a fragment can lose or even flip the sentiment ("not
good at all" → "good at all"). Fragments come only from training rows, never from dev
or test data.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

#: A fragment keeps this share of its text's words (drawn uniformly).
KEEP = (0.5, 0.85)
#: Texts shorter than this many words give no fragments.
MIN_WORDS = 6


def fragments(texts: Sequence[str], per_text: int = 1, *, seed: int = 0) -> list[str]:
    """Up to ``per_text`` distinct word windows from each text of at least :data:`MIN_WORDS` words.

    Deterministic for a seed; a fragment equal to a training text (or to another fragment)
    is dropped, so no text is counted twice.
    """
    rng = random.Random(seed)
    seen = set(texts)
    out: list[str] = []
    for text in texts:
        words = text.split()
        if len(words) < MIN_WORDS:
            continue
        for _ in range(per_text):
            size = max(3, round(len(words) * rng.uniform(*KEEP)))
            start = rng.randrange(len(words) - size + 1)
            piece = " ".join(words[start:start + size])
            if piece not in seen:
                seen.add(piece)
                out.append(piece)
    return out
