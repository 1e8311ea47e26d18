"""Settings of a data audit, one typed dataclass (the CLI maps its options onto it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import ConfigError


@dataclass
class AuditConfig:
    """What the audit reads and how hard it looks.

    Attributes
    ----------
    text_column, label_column:
        Columns of every file audited; ``label_column=None`` audits unlabelled data (duplicates and
        text checks only).
    multi_label, label_separator:
        Multi-label rows (``a|b`` in CSV, lists in JSONL), as ``train`` reads them.
    encoding, delimiter:
        As every reader takes them (the delimiter is detected from the header when ``None``).
    model:
        What predicts the out-of-fold probabilities behind the label-error ranking: ``tfidf`` (default;
        seconds for 10,000 rows) or an encoder name/directory, whose frozen sentence embeddings feed a
        logistic regression averaged with TF-IDF's (slower, fewer false alarms on hard data).
    folds:
        Cross-validation folds: every row is scored by a model that never saw it. Lowered (and said) when a
        class has fewer rows than folds.
    near_duplicate:
        Cosine similarity of TF-IDF word and character n-gram vectors from which two different texts are
        called near-duplicates: above 0.8 they share most of their words and spellings (a changed case,
        punctuation or word, reordered clauses); unrelated texts of one topic stay well below.
    short_words:
        Texts with fewer words (CJK: characters) than this are listed as very short.
    max_length:
        Tokens a model reads (the ``train`` default); longer texts are listed as truncated.
    encoder:
        Whose tokenizer counts tokens for ``max_length``.
    seed:
        Folds and the similarity projection.
    """

    text_column: str = "text"
    label_column: str | None = "label"
    multi_label: bool = False
    label_separator: str = "|"
    encoding: str = "utf-8"
    delimiter: str | None = None
    model: str = "tfidf"
    folds: int = 5
    near_duplicate: float = 0.8
    short_words: int = 3
    max_length: int = 128
    encoder: str = "minilm"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.folds < 2:
            raise ConfigError(f"folds must be at least 2, got {self.folds}")
        if not 0.0 < self.near_duplicate <= 1.0:
            raise ConfigError(f"near_duplicate must be in (0, 1], got {self.near_duplicate}")
        if self.short_words < 0 or self.max_length < 1:
            raise ConfigError("short_words must be >= 0 and max_length >= 1")

    def to_dict(self) -> dict[str, Any]:
        """Plain values (recorded in ``audit.json``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AuditConfig:
        """Build from a mapping; an unknown key is an error, not ignored."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown audit setting(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        return cls(**values)
