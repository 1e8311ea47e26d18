"""Checks on the texts themselves: very short, longer than the model reads, another script or language.

Script is read from Unicode character names (LATIN, CYRILLIC, CJK, ...): a row written mostly in a
script that is not the file's own is listed. Within one script, another language shows in the
function words: every language spends a large share of its running words on a few hundred short,
frequent ones, so a row that uses almost none of the file's most frequent words while being long
enough to need them is listed as possibly another language. Both are rules about languages, not
numbers fitted to one dataset.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from typing import Any

from .config import AuditConfig

#: Scripts written without spaces: length counts characters there.
_UNSPACED = {"CJK", "HIRAGANA", "KATAKANA", "THAI", "LAO", "KHMER", "MYANMAR"}
#: The file's most frequent words taken as its function words.
FREQUENT = 100
#: A row with at least this many words, of which fewer than ``FOREIGN_SHARE`` are frequent words, is flagged.
FOREIGN_WORDS = 6
FOREIGN_SHARE = 0.1


def script(text: str) -> str | None:
    """The script most of ``text``'s letters are written in (``None`` without letters)."""
    counts: Counter[str] = Counter()
    for ch in text:
        if ch.isalpha():
            name = unicodedata.name(ch, "")
            counts[name.split(" ", 1)[0] if name else "OTHER"] += 1
    return counts.most_common(1)[0][0] if counts else None


def length(text: str) -> int:
    """Words, or characters for scripts written without spaces."""
    return sum(1 for ch in text if ch.isalpha()) if script(text) in _UNSPACED else len(text.split())


def check_texts(texts: list[str], config: AuditConfig, *, tokens: list[int] | None = None) -> list[dict[str, Any]]:
    """Findings ``{"row", "issue", "detail"}`` (0-based positions) for one file's texts; empty texts are skipped."""
    found: list[dict[str, Any]] = []
    scripts = [script(t) for t in texts]
    known = [s for s in scripts if s]
    main, main_count = Counter(known).most_common(1)[0] if known else (None, 0)
    frequent = _frequent_words(texts)
    for i, text in enumerate(texts):
        if not text.strip():
            continue
        size = length(text)
        if size < config.short_words:
            found.append({"row": i, "issue": "very_short", "detail": f"{size} word(s)"})
        if tokens is not None and tokens[i] > config.max_length:
            found.append({"row": i, "issue": "too_long",
                          "detail": f"{tokens[i]} tokens; a model reads {config.max_length}, the rest is cut"})
        own = scripts[i]
        if main and main_count * 2 > len(known) and own and own != main:
            found.append({"row": i, "issue": "other_script",
                          "detail": f"written in {own.title()}; the file is mostly {main.title()}"})
        elif frequent and scripts[i] not in _UNSPACED:
            words = _words(text)
            if len(words) >= FOREIGN_WORDS:
                share = sum(w in frequent for w in words) / len(words)
                if share < FOREIGN_SHARE:
                    found.append({"row": i, "issue": "other_language",
                                  "detail": f"{share:.0%} of its words are among the file's {FREQUENT} most "
                                  "frequent: another language?"})
    return found


def _words(text: str) -> list[str]:
    return ["".join(ch for ch in w if ch.isalnum()) for w in text.casefold().split() if any(c.isalpha() for c in w)]


def _frequent_words(texts: list[str]) -> set[str]:
    """The file's most frequent words by document frequency (too few texts: none, and no language check)."""
    if len(texts) < 50:
        return set()
    df: Counter[str] = Counter()
    for text in texts:
        df.update(set(_words(text)))
    return {w for w, _ in df.most_common(FREQUENT)}


def token_counts(texts: list[str], encoder: str) -> list[int] | None:
    """Tokens per text under ``encoder``'s tokenizer (``None`` when the encoder cannot be found)."""
    from ..errors import LmworksError
    from ..models import resolve_encoder
    from ..runtime import quiet_transformers

    try:
        path = resolve_encoder(encoder)
    except LmworksError:
        return None
    from transformers import AutoTokenizer

    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    counts: list[int] = []
    for start in range(0, len(texts), 1024):
        batch = tokenizer(texts[start:start + 1024], add_special_tokens=True, truncation=False)["input_ids"]
        counts.extend(len(ids) for ids in batch)
    return counts
