"""Read and validate labelled text from CSV, JSONL and Parquet files.

Every reader works in chunks so that prediction over millions of rows runs in
bounded memory; :func:`read_dataset` simply collects the chunks of a training or
evaluation file. A CSV file's delimiter is detected from its header line (comma,
semicolon, tab or pipe: spreadsheets exported in many European locales use ``;``)
unless one is given. Errors name the file, the row (1-based, header excluded; "line"
for JSONL) and the column, because a user fixing a 50,000-row export needs to know
exactly where to look.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from .errors import DataError

#: File suffixes understood by the readers and writers, by format.
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
STDIN = "-"
DEFAULT_CHUNK_SIZE = 10_000
#: CSV delimiters recognised from the header line, in order of preference on a tie.
DELIMITERS = (",", ";", "\t", "|")
LOGGER = logging.getLogger("lmworks")
T = TypeVar("T")


@dataclass
class TextDataset:
    """Texts with optional labels, as read from one source.

    ``labels`` holds one string per text for single-label data, a list of strings
    per text for multi-label data, and is ``None`` for unlabelled data.
    """

    texts: list[str]
    labels: list[Any] | None
    source: str = "<memory>"

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def inputs(self) -> list[str]:
        """What a model reads: the texts (a multimodal ``RowDataset``'s are its rows)."""
        return self.texts

    def require_labels(self) -> list[Any]:
        """The labels; a :class:`DataError` if the data was read without a label column."""
        if self.labels is None:
            raise DataError(f"{self.source}: no labels were read")
        return self.labels


def detect_format(path: str | Path) -> str:
    """Return ``"csv"``, ``"jsonl"`` or ``"parquet"`` from the file name (``-`` is JSONL)."""
    if str(path) == STDIN:
        return "jsonl"
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise DataError(
            f"{path}: unsupported file type {suffix or '(none)'!r}; use .csv, .jsonl or .parquet"
        )
    return FORMATS[suffix]


def iter_chunks(
    path: str | Path,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    encoding: str = "utf-8",
    delimiter: str | None = None,
) -> Iterator[pd.DataFrame]:
    """Yield the rows of a data file as DataFrames of at most ``chunk_size`` rows.

    CSV cells are read as strings (an empty cell is ``""``) so that labels such as
    ``"01"`` survive; JSONL and Parquet keep their native types. Each chunk's index
    continues the row numbering of the file (0-based). ``delimiter`` (CSV only)
    defaults to the one :func:`sniff_delimiter` finds in the header line.
    """
    fmt = detect_format(path)
    if str(path) != STDIN and not Path(path).is_file():
        raise DataError(f"{path}: file not found")
    try:
        if fmt == "csv":
            yield from _iter_csv(path, chunk_size, encoding, delimiter or sniff_delimiter(path, encoding))
        elif fmt == "jsonl":
            yield from _iter_jsonl(path, chunk_size, encoding)
        else:
            yield from _iter_parquet(path, chunk_size)
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path}: not valid {encoding} text (byte {err.start}: {err.reason}); "
            "re-save the file as UTF-8 or pass --encoding"
        ) from err


def sniff_delimiter(path: str | Path, encoding: str = "utf-8") -> str:
    """The delimiter that splits a CSV file's header line into the most fields (comma on a tie).

    A header is the one line whose shape is known (names, no free text), so counting
    fields there is reliable where sniffing data rows is not. A non-comma choice is
    logged, with the option that overrides it.
    """
    with open(path, encoding=encoding, errors="replace", newline="") as fh:
        header = fh.readline()
    fields = {d: len(next(csv.reader([header], delimiter=d), [])) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: (fields[d], -DELIMITERS.index(d)))
    if best != "," and fields[best] > fields[","]:
        LOGGER.info("%s: detected %r as the CSV delimiter (pass --delimiter to choose another)", path, best)
        return best
    return ","


def _iter_csv(path, chunk_size: int, encoding: str, delimiter: str) -> Iterator[pd.DataFrame]:
    try:
        reader = pd.read_csv(
            path,
            sep=delimiter,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            chunksize=chunk_size,
            encoding=encoding,
            encoding_errors="strict",
        )
        with reader:
            yield from reader
    except pd.errors.EmptyDataError as err:
        raise DataError(f"{path}: file is empty (no header row)") from err
    except pd.errors.ParserError as err:
        raise DataError(f"{path}: malformed CSV ({str(err).strip()})") from err


def _iter_jsonl(path, chunk_size: int, encoding: str) -> Iterator[pd.DataFrame]:
    if str(path) == STDIN:
        stream = io.TextIOWrapper(sys.stdin.buffer, encoding=encoding, errors="strict")
        name = "<stdin>"
    else:
        stream = open(path, encoding=encoding, errors="strict")  # noqa: SIM115
        name = str(path)
    records: list[dict] = []
    start = 0
    with stream:
        for lineno, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{name} line {lineno}: invalid JSON ({err.msg})") from err
            if not isinstance(record, dict):
                raise DataError(f"{name} line {lineno}: expected a JSON object, got {type(record).__name__}")
            record["__line__"] = lineno
            records.append(record)
            if len(records) >= chunk_size:
                yield _jsonl_frame(records, start)
                start += len(records)
                records = []
    if records:
        yield _jsonl_frame(records, start)


def _jsonl_frame(records: list[dict], start: int) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(records)
    frame.index = pd.RangeIndex(start, start + len(frame))
    return frame


def _iter_parquet(path, chunk_size: int) -> Iterator[pd.DataFrame]:
    try:
        import pyarrow.parquet as pq
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise DataError(f"{path}: reading Parquet needs pyarrow: pip install 'lmworks[parquet]'") from err
    try:
        parquet = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several unrelated types for a bad file
        raise DataError(f"{path}: not a readable Parquet file ({err})") from err
    start = 0
    for batch in parquet.iter_batches(batch_size=chunk_size):
        frame = batch.to_pandas()
        frame.index = pd.RangeIndex(start, start + len(frame))
        start += len(frame)
        yield frame


def read_atomic(path: str | Path, *, encoding: str = "utf-8") -> pd.DataFrame:
    """A RecBole atomic file (tab-separated, ``name:type`` headers) as strings, types dropped."""
    if not Path(path).is_file():
        raise DataError(f"{path}: file not found")
    try:
        frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, encoding=encoding,
                            quoting=3, encoding_errors="strict")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not valid {encoding} text (byte {err.start}: {err.reason})") from err
    except pd.errors.EmptyDataError as err:
        raise DataError(f"{path}: file is empty (no header row)") from err
    frame.columns = [str(c).split(":", 1)[0] for c in frame.columns]
    return frame


def row_ref(path: str | Path, frame: pd.DataFrame, index: int) -> str:
    """Describe a row for an error message: ``file line N`` for JSONL, ``file row N`` otherwise."""
    name = "<stdin>" if str(path) == STDIN else str(path)
    if "__line__" in frame.columns:
        return f"{name} line {int(frame.at[index, '__line__'])}"
    return f"{name} row {index + 1}"


def require_columns(path: str | Path, frame: pd.DataFrame, columns: Sequence[str]) -> None:
    """Raise :class:`DataError` naming the first column of ``columns`` absent from ``frame``."""
    present = [c for c in frame.columns if c != "__line__"]
    for column in columns:
        if column not in frame.columns:
            hint = ""
            if len(present) == 1 and any(d in str(present[0]) for d in DELIMITERS[1:]):
                found = next(d for d in DELIMITERS[1:] if d in str(present[0]))
                hint = f"; the header holds {found!r}: pass --delimiter {found!r}"
            raise DataError(
                f"{path}: column {column!r} not found (columns: {', '.join(map(str, present)) or 'none'}){hint}"
            )


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
    texts: list[str] = []
    labels: list[Any] | None = [] if label_column else None
    columns = [text_column] + ([label_column] if label_column else [])
    for chunk in iter_chunks(path, encoding=encoding, delimiter=delimiter):
        require_columns(path, chunk, columns)
        texts.extend(clean_texts(path, chunk, text_column))
        if label_column and labels is not None:
            labels.extend(
                clean_labels(path, chunk, label_column, multi_label=multi_label, separator=label_separator)
            )
    if not texts:
        raise DataError(f"{path}: no rows")
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
