"""Prediction over data files of any size, streamed chunk by chunk.

Rows are read, classified and written one chunk at a time, so memory stays flat
whether the file has a thousand rows or ten million; the output goes to a
temporary file that replaces the destination only when every row is written.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..atomic import STDOUT, atomic_file
from ..errors import DataError
from ..readers import DEFAULT_CHUNK_SIZE, detect_format, iter_chunks
from ..tokens import warn_truncated
from .inputs import ModelInputs

LOGGER = logging.getLogger("lmworks")


#: The column every engine writes the prediction to (``predict``'s output contract), whatever the
#: label column was called in training; an input column of that name is kept as ``label_input``.
PREDICTION_COLUMN = "label"


def output_frame(chunk: pd.DataFrame, labels: list[str], predicted: list[Any], proba: np.ndarray,
                 label_column: str, multi_label: bool, separator: str, fmt: str) -> pd.DataFrame:
    """``chunk``'s columns plus the predicted label and one ``prob_<class>`` column per class.

    An input column already called like the label column is kept as ``<name>_input``;
    multi-label predictions are joined with ``separator`` in CSV and kept as lists elsewhere.
    """
    out = chunk.drop(columns=["__line__"], errors="ignore").copy()
    if label_column in out.columns:
        out = out.rename(columns={label_column: f"{label_column}_input"})
    if multi_label and fmt == "csv":
        predicted = [separator.join(row) for row in predicted]
    out[label_column] = predicted
    for j, name in enumerate(labels):
        out[f"prob_{name}"] = np.round(proba[:, j], 6)
    return out


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def predict_file(
    classifier,
    data: str | Path,
    output: str | Path,
    *,
    text_column: str = "text",
    label_column: str = PREDICTION_COLUMN,
    inputs: ModelInputs | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    encoding: str = "utf-8",
    delimiter: str | None = None,
    label_separator: str = "|",
    progress: bool = True,
) -> int:
    """Write every input row plus ``label`` and one ``prob_<class>`` column per class.

    An input column that is already called ``label`` is kept as ``label_input``.
    ``inputs`` says which columns the model reads (default: ``text_column``; for a
    multimodal model, :meth:`ModelInputs.for_model`). ``output="-"`` streams JSON lines to
    standard output as each chunk is done. Returns the number of rows written.
    """
    inputs = inputs or ModelInputs(text_column=text_column)
    to_stdout = str(output) == STDOUT
    fmt = "jsonl" if to_stdout else detect_format(output)
    truncated = 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(unit="row", dynamic_ncols=True, desc="predict")
    rows = 0
    try:
        target = contextlib.nullcontext(sys.stdout) if to_stdout else atomic_file(output, "wb" if fmt == "parquet"
                                                                                     else "w")
        with target as fh:
            writer = _Writer(fh, fmt)
            for chunk in iter_chunks(data, chunk_size=chunk_size, encoding=encoding, delimiter=delimiter):
                proba, cut = classifier.predict_proba_counted(inputs.from_frame(data, chunk))
                truncated += cut
                frame = output_frame(
                    chunk, classifier.labels_, classifier.decide(proba), proba,
                    label_column, classifier.config.multi_label, label_separator, fmt,
                )
                writer.write(frame)
                rows += len(frame)
                if bar is not None:
                    bar.update(len(frame))
            if rows == 0:
                raise DataError(f"{data}: no rows")
            writer.close()
    finally:
        if bar is not None:
            bar.close()
    warn_truncated(truncated, rows, getattr(classifier.backend_, "token_limit", lambda: None)())
    return rows


def write_frame(path: str | Path, frame: pd.DataFrame) -> None:
    """Write ``frame`` whole to a CSV, JSONL or Parquet file (by suffix), atomically."""
    fmt = detect_format(path)
    with atomic_file(path, "wb" if fmt == "parquet" else "w") as fh:
        writer = _Writer(fh, fmt)
        writer.write(frame)
        writer.close()


class _Writer:
    """Append DataFrames to an open CSV, JSONL or Parquet file."""

    def __init__(self, fh, fmt: str) -> None:
        self.fh = fh
        self.fmt = fmt
        self._csv: Any = None
        self._parquet: Any = None
        self._columns: list[str] | None = None

    def write(self, frame: pd.DataFrame) -> None:
        if self._columns is None:
            self._columns = list(map(str, frame.columns))
        if self.fmt == "csv":
            if self._csv is None:
                self._csv = csv.writer(self.fh)
                self._csv.writerow(self._columns)
            self._csv.writerows(frame.itertuples(index=False, name=None))
        elif self.fmt == "jsonl":
            for record in _records(frame):
                self.fh.write(json.dumps(record, ensure_ascii=False, default=_json_default) + "\n")
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self.fh, table.schema)
            self._parquet.write_table(table.cast(self._parquet.schema))

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()


def _records(frame: pd.DataFrame) -> Iterator[dict[str, Any]]:
    columns = list(map(str, frame.columns))
    for row in frame.itertuples(index=False, name=None):
        yield {c: (None if isinstance(v, float) and np.isnan(v) else v) for c, v in zip(columns, row)}
