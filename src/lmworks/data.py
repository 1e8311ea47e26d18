"""Labelled data: texts (or rows) with their labels, checked, and the held-out split.

The files themselves are read by :mod:`lmworks.readers` (CSV, JSONL, Parquet, stdin, in
chunks); this module turns their columns into clean texts and label names, with errors
that name the file, the row and the column. :func:`read_labelled` is the one loop that
collects a labelled file, whatever a row becomes (a text here, a checked multimodal row
in :mod:`lmworks.multimodal.columns`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from .errors import DataError
from .readers import (  # noqa: F401 - lmworks.data's reading names, kept where users import them
    DEFAULT_CHUNK_SIZE,
    DELIMITERS,
    FORMATS,
    STDIN,
    detect_format,
    iter_chunks,
    read_atomic,
    require_columns,
    row_ref,
    sniff_delimiter,
)

LOGGER = logging.getLogger("lmworks")
T = TypeVar("T")


class Labelled:
    """What every labelled dataset shares: labels that may be absent (unlabelled data), and their source.

    ``labels`` holds one string per input for single-label data, a list of strings per
    input for multi-label data, and is ``None`` for unlabelled data.
    """

    labels: list[Any] | None
    source: str

    def require_labels(self) -> list[Any]:
        """The labels; a :class:`DataError` if the data was read without a label column."""
        if self.labels is None:
            raise DataError(f"{self.source}: no labels were read")
        return self.labels


@dataclass
class TextDataset(Labelled):
    """Texts with optional labels, as read from one source."""

    texts: list[str]
    labels: list[Any] | None
    source: str = "<memory>"

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def inputs(self) -> list[str]:
        """What a model reads: the texts (a multimodal ``RowDataset``'s are its rows)."""
        return self.texts


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return False


def clean_texts(path: str | Path, frame: pd.DataFrame, column: str) -> list[str]:
    """Return the text column as a list of strings; reject empty and non-string values."""
    texts = frame[column].tolist()
    for index, text in zip(frame.index, texts):
        if _is_missing(text):
            raise DataError(f"{row_ref(path, frame, index)}: column {column!r} is missing")
        if not isinstance(text, str):
            raise DataError(
                f"{row_ref(path, frame, index)}: column {column!r} must be a string, "
                f"got {type(text).__name__} {text!r:.40}"
            )
        if not text.strip():
            raise DataError(f"{row_ref(path, frame, index)}: column {column!r} is empty")
    return texts


def normalise_label(value: Any) -> str | None:
    """Map a raw label cell to its string name (``1``, ``1.0`` and ``"1"`` are all ``"1"``)."""
    if _is_missing(value):
        return None
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def clean_labels(
    path: str | Path,
    frame: pd.DataFrame,
    column: str,
    *,
    multi_label: bool = False,
    separator: str = "|",
) -> list[Any]:
    """Return the label column as strings (single-label) or lists of strings (multi-label)."""
    out: list[Any] = []
    for index, value in zip(frame.index, frame[column].tolist()):
        if multi_label:
            if isinstance(value, (list, tuple, np.ndarray)):
                items = [normalise_label(v) for v in value]
            elif _is_missing(value):
                raise DataError(f"{row_ref(path, frame, index)}: column {column!r} is missing")
            else:
                items = [normalise_label(v) for v in str(value).split(separator)]
            out.append(sorted({i for i in items if i is not None}))
        else:
            if isinstance(value, (list, tuple, np.ndarray)):
                raise DataError(
                    f"{row_ref(path, frame, index)}: column {column!r} holds a list; "
                    "pass --multi-label for multi-label data"
                )
            label = normalise_label(value)
            if label is None:
                raise DataError(f"{row_ref(path, frame, index)}: column {column!r} is empty")
            out.append(label)
    return out


def read_labelled(path: str | Path, inputs_of: Callable[[pd.DataFrame], list[T]], *, columns: Sequence[str] = (),
                  label_column: str | None = "label", multi_label: bool = False, label_separator: str = "|",
                  encoding: str = "utf-8", delimiter: str | None = None) -> tuple[list[T], list[Any] | None]:
    """A whole data file as inputs and, unless ``label_column`` is ``None``, their cleaned labels.

    ``inputs_of(chunk)`` turns each chunk into inputs (texts, rows); ``columns`` are required
    in every chunk before it is called.
    """
    inputs: list[T] = []
    labels: list[Any] | None = [] if label_column else None
    for chunk in iter_chunks(path, encoding=encoding, delimiter=delimiter):
        require_columns(path, chunk, [*columns, *([label_column] if label_column else [])])
        inputs.extend(inputs_of(chunk))
        if label_column and labels is not None:
            labels.extend(clean_labels(path, chunk, label_column, multi_label=multi_label, separator=label_separator))
    if not inputs:
        raise DataError(f"{path}: no rows")
    return inputs, labels


def read_dataset(
    path: str | Path,
    *,
    text_column: str = "text",
    label_column: str | None = "label",
    multi_label: bool = False,
    label_separator: str = "|",
    encoding: str = "utf-8",
    delimiter: str | None = None,
) -> TextDataset:
    """Read a whole labelled (or, with ``label_column=None``, unlabelled) data file."""
    texts, labels = read_labelled(path, lambda chunk: clean_texts(path, chunk, text_column), columns=[text_column],
                                  label_column=label_column, multi_label=multi_label,
                                  label_separator=label_separator, encoding=encoding, delimiter=delimiter)
    return TextDataset(texts=texts, labels=labels, source=str(path))


def read_texts(path: str | Path, *, text_column: str = "text", encoding: str = "utf-8",
               delimiter: str | None = None) -> list[str]:
    """Unlabelled texts: the non-blank lines of a ``.txt`` file, or a data file's text column."""
    if Path(path).suffix.lower() == ".txt":
        try:
            return [line.strip() for line in Path(path).read_text(encoding=encoding).splitlines() if line.strip()]
        except FileNotFoundError as err:
            raise DataError(f"{path}: file not found") from err
        except UnicodeDecodeError as err:
            raise DataError(f"{path}: not valid {encoding} text (byte {err.start})") from err
    return read_dataset(path, text_column=text_column, label_column=None, encoding=encoding,
                        delimiter=delimiter).texts


def as_label_names(labels: Sequence[Any], multi_label: bool) -> list[Any]:
    """Labels as strings (single-label) or sorted lists of distinct strings (multi-label)."""
    if multi_label:
        return [sorted({str(x) for x in row}) for row in labels]
    return [str(x) for x in labels]


def label_set(labels: Sequence[Any], *, multi_label: bool = False) -> list[str]:
    """Sorted list of the distinct label names in ``labels``."""
    if multi_label:
        return sorted({name for row in labels for name in row})
    return sorted(set(labels))


def split_dataset(
    texts: Sequence[T],
    labels: Sequence[Any],
    *,
    fraction: float,
    seed: int,
    multi_label: bool = False,
) -> tuple[list[T], list[Any], list[T], list[Any]]:
    """Split off ``fraction`` of the rows for evaluation, stratified by label when possible."""
    from sklearn.model_selection import train_test_split

    n = len(texts)
    n_eval = int(round(n * fraction))
    if n_eval < 1 or n - n_eval < 2:
        raise DataError(
            f"cannot hold out {fraction:.0%} of {n} rows for evaluation: too few rows; "
            "pass eval data (--eval) or eval_fraction=0"
        )
    stratify = None
    if not multi_label:
        counts = pd.Series(list(labels)).value_counts()
        if counts.min() >= 2 and n_eval >= len(counts):
            stratify = list(labels)
    idx_train, idx_eval = train_test_split(
        np.arange(n), test_size=n_eval, random_state=seed, stratify=stratify
    )
    pick = lambda seq, idx: [seq[i] for i in idx]  # noqa: E731
    return pick(texts, idx_train), pick(labels, idx_train), pick(texts, idx_eval), pick(labels, idx_eval)
