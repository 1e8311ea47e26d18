"""Read data files: CSV (delimiter sniffed), JSONL (or stdin), Parquet, RecBole atomic files.

The one module that opens a user's data file. Every reader works in chunks so that
prediction over millions of rows runs in bounded memory; :func:`read_frame` collects
them where a whole file is needed (interactions, prices). A CSV file's delimiter is
detected from its header line (comma, semicolon, tab or pipe: spreadsheets exported in
many European locales use ``;``) unless one is given, and its cells are read as strings
so that labels such as ``"01"`` survive. Errors name the file, the row (1-based, header
excluded; "line" for JSONL) and the column, because a user fixing a 50,000-row export
needs to know exactly where to look. :func:`data_files` resolves a folder of part files
or a glob for the engines that read many files at once (Ray Data).
"""

from __future__ import annotations

import csv
import glob
import io
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd

from .errors import DataError

#: File suffixes understood by the readers and writers, by format.
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
#: RecBole's atomic files (tab-separated, ``name:type`` headers), read whole by :func:`read_frame`.
ATOMIC_SUFFIXES = (".inter", ".item", ".user")
STDIN = "-"
DEFAULT_CHUNK_SIZE = 10_000
#: CSV delimiters recognised from the header line, in order of preference on a tie.
DELIMITERS = (",", ";", "\t", "|")
LOGGER = logging.getLogger("lmworks")


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


def read_frame(path: str | Path, *, encoding: str = "utf-8", delimiter: str | None = None,
               atomic: bool = False, allow_empty: bool = False) -> pd.DataFrame:
    """A whole data file as one DataFrame (row numbering kept, JSONL's ``__line__`` too).

    ``atomic`` also accepts RecBole atomic files (:data:`ATOMIC_SUFFIXES`). A file without
    rows is an error unless ``allow_empty`` (then its header's columns, where it has one).
    """
    if atomic and Path(str(path)).suffix.lower() in ATOMIC_SUFFIXES:
        return read_atomic(path, encoding=encoding)
    chunks = list(iter_chunks(path, encoding=encoding, delimiter=delimiter))
    if not sum(len(c) for c in chunks) and not allow_empty:
        raise DataError(f"{path}: no rows")
    return pd.concat(chunks) if chunks else pd.DataFrame()


def data_files(data: str | Path) -> tuple[list[str], str]:
    """The files of ``data`` (a file, a folder of part files, or a glob) and their one format.

    A folder's hidden and ``_``-prefixed files (``_SUCCESS``, ``.crc``) are skipped, as
    Spark and Ray write them beside their parts.
    """
    text = str(data)
    path = Path(text)
    if path.is_dir():
        files = sorted(f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in FORMATS
                       and not f.name.startswith((".", "_")))
    elif any(ch in text for ch in "*?["):
        files = sorted(Path(f) for f in glob.glob(text, recursive=True) if Path(f).is_file())
    elif path.is_file():
        files = [path]
    else:
        raise DataError(f"{data}: file not found")
    if not files:
        raise DataError(f"{data}: no .csv, .jsonl or .parquet files")
    formats = {FORMATS.get(f.suffix.lower()) for f in files}
    if None in formats or len(formats) != 1:
        raise DataError(f"{data}: expected files of one type (.csv, .jsonl or .parquet), got "
                        f"{sorted({f.suffix or '(none)' for f in files})}")
    return [str(f.resolve()) for f in files], formats.pop()  # type: ignore[return-value]


def header(path: str | Path, *, encoding: str = "utf-8", delimiter: str | None = None) -> list[str]:
    """A data file's column names, read without reading its rows (Parquet: from the schema)."""
    fmt = detect_format(path)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    if fmt == "jsonl":
        first = next(iter_chunks(path, chunk_size=1, encoding=encoding), pd.DataFrame())
        return [c for c in first.columns if c != "__line__"]
    sep = delimiter or sniff_delimiter(path, encoding)
    return [str(c) for c in pd.read_csv(path, nrows=0, encoding=encoding, sep=sep).columns]
