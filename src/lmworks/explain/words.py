"""Words of a text, with their character spans, and how pieces of text map onto them.

Every explanation is reported per *word*, whatever the model reads: a transformer reads
subword pieces, TF-IDF reads word and character n-grams, occlusion removes words. One
segmentation, shared by all methods, makes their scores comparable and lets a user read
them: runs of letters and digits (with inner apostrophes) are words, each CJK character is
a word (Chinese has no spaces, and the shipped MiniLM vocabulary reads one token per
character), and each punctuation mark is a word of its own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
WORD = re.compile(rf"[{_CJK}]|(?:(?![{_CJK}])[^\W_])+(?:['’](?:(?![{_CJK}])[^\W_])+)*|[^\w\s]|_+")


@dataclass(frozen=True)
class Words:
    """A text cut into words: ``words[i]`` is ``text[starts[i]:ends[i]]``."""

    text: str
    words: list[str]
    starts: np.ndarray
    ends: np.ndarray

    def __len__(self) -> int:
        return len(self.words)

    def without(self, drop: Sequence[int]) -> str:
        """The text with words ``drop`` cut out, everything else (spacing included) kept."""
        cut = sorted(set(drop))
        parts, at = [], 0
        for i in cut:
            parts.append(self.text[at:self.starts[i]])
            at = int(self.ends[i])
        parts.append(self.text[at:])
        return re.sub(r"\s{2,}", " ", "".join(parts)).strip()

    def only(self, keep: Sequence[int]) -> str:
        """Only words ``keep``, in text order, joined by spaces (ERASER's sufficiency input)."""
        return " ".join(self.words[i] for i in sorted(set(keep)))

    def spread(self, spans: Sequence[tuple[int, int]], values: Sequence[float]) -> np.ndarray:
        """Per-word sums of ``values``, each span's value shared by the words it overlaps.

        A span covering two words (a bigram, a subword piece across a hyphen) gives each
        word its share of the characters; a span over no word (white space) is dropped.
        """
        out = np.zeros(len(self.words))
        for (start, end), value in zip(spans, values):
            if end <= start or not value:
                continue
            first = int(np.searchsorted(self.ends, start, side="right"))
            last = int(np.searchsorted(self.starts, end, side="left"))
            overlap = np.minimum(self.ends[first:last], end) - np.maximum(self.starts[first:last], start)
            overlap = np.clip(overlap, 0, None).astype(float)
            if overlap.sum() > 0:
                out[first:last] += value * overlap / overlap.sum()
        return out


def split_words(text: str) -> Words:
    """Cut ``text`` into words (see the module doc)."""
    matches = list(WORD.finditer(text))
    return Words(text, [m.group() for m in matches], np.asarray([m.start() for m in matches], dtype=np.int64),
                 np.asarray([m.end() for m in matches], dtype=np.int64))
