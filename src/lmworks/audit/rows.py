"""Read a file for an audit: every row kept, the bad ones reported instead of refused.

``train`` stops at the first empty text or label (see :mod:`lmworks.data`); an audit is where a user
goes to find all of them, so here an empty cell becomes a finding and the row is left out of the checks
that need it. Rows are numbered as every lmworks error message numbers them: 1-based, header excluded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..data import normalise_label
from ..errors import DataError
from ..readers import iter_chunks, require_columns
from .config import AuditConfig


@dataclass
class AuditRows:
    """One file's rows: texts (``""`` where missing), labels (``None`` where missing), row numbers."""

    file: str
    texts: list[str]
    labels: list[Any] | None
    rows: list[int]
    problems: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)


def read_rows(path: str, config: AuditConfig, *, labels: bool = True) -> AuditRows:
    """All rows of ``path``; empty or non-string texts and empty labels are recorded, not raised."""
    label_column = config.label_column if labels else None
    texts: list[str] = []
    out_labels: list[Any] = []
    rows: list[int] = []
    problems: list[dict[str, Any]] = []
    for chunk in iter_chunks(path, encoding=config.encoding, delimiter=config.delimiter):
        require_columns(path, chunk, [config.text_column] + ([label_column] if label_column else []))
        lines = chunk["__line__"].tolist() if "__line__" in chunk.columns else [i + 1 for i in chunk.index]
        values = chunk[config.text_column].tolist()
        raw_labels = chunk[label_column].tolist() if label_column else [None] * len(values)
        for row, value, raw in zip(lines, values, raw_labels):
            row = int(row)
            text = value if isinstance(value, str) else ""
            if not text.strip():
                problems.append({"row": row, "issue": "empty_text",
                                 "detail": f"column {config.text_column!r} is empty"})
            texts.append(text)
            rows.append(row)
            if label_column:
                label = _label(raw, config)
                if label is None:
                    problems.append({"row": row, "issue": "empty_label",
                                     "detail": f"column {label_column!r} is empty"})
                out_labels.append(label)
    if not texts:
        raise DataError(f"{path}: no rows")
    return AuditRows(file=str(path), texts=texts, labels=out_labels if label_column else None, rows=rows,
                     problems=problems)


def _label(raw: Any, config: AuditConfig) -> Any:
    """A label name, a sorted list of names (multi-label), or ``None`` when the cell is empty."""
    if not config.multi_label:
        if isinstance(raw, (list, tuple, np.ndarray)):
            raise DataError(f"column {config.label_column!r} holds a list; pass --multi-label for multi-label data")
        return normalise_label(raw)
    items = list(raw) if isinstance(raw, (list, tuple, np.ndarray)) else (
        [] if normalise_label(raw) is None else str(raw).split(config.label_separator))
    names = sorted({n for n in (normalise_label(i) for i in items) if n is not None})
    return names or None
