"""``--write-clean``: a copy of the data without the rows a reviewer marked in ``suspects.csv``.

The audit itself never edits data: the reviewer decides, row by row, in the ``drop`` column; this
writes a new file (atomically) and leaves the original as it was.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import DataError
from ..readers import iter_chunks, read_frame
from .config import AuditConfig

#: What counts as "drop this row" in the ``drop`` column.
YES = {"1", "x", "y", "yes", "true", "drop"}


def marked_rows(suspects: str | Path, data: str | Path) -> set[int]:
    """Row numbers of ``data`` marked to drop in ``suspects`` (1-based, as the audit numbers them)."""
    if not Path(suspects).is_file():
        raise DataError(f"{suspects}: file not found (run the audit with --output or --suspects first)")
    frame = read_frame(suspects, allow_empty=True)  # a spreadsheet may save it with ";": sniffed
    for column in ("file", "row", "drop"):
        if column not in frame.columns:
            raise DataError(f"{suspects}: column {column!r} not found: is this an audit's suspects.csv?")
    target = Path(data).resolve()
    picked = frame[frame["drop"].str.strip().str.lower().isin(YES)]
    mine = picked[[Path(f).resolve() == target for f in picked["file"]]]
    rows: set[int] = set()
    for line, value in zip(mine.index, mine["row"]):
        if not value.strip().isdigit():
            raise DataError(f"{suspects} row {line + 1}: column 'row' must be a row number, got {value!r}")
        rows.add(int(value))
    return rows


def write_clean(data: str | Path, suspects: str | Path, output: str | Path, config: AuditConfig | None = None) -> int:
    """Write ``data`` less the marked rows to ``output`` (same format by suffix); return the rows dropped."""
    from ..inference.files import write_frame

    config = config or AuditConfig()
    if Path(output).resolve() == Path(data).resolve():
        raise DataError(f"{output}: --write-clean must name a new file; the original is kept as it is")
    drop = marked_rows(suspects, data)
    frames, read = [], 0
    for chunk in iter_chunks(data, encoding=config.encoding, delimiter=config.delimiter):
        numbers = chunk["__line__"] if "__line__" in chunk.columns else pd.Series(chunk.index + 1, index=chunk.index)
        read += len(chunk)
        frames.append(chunk[~numbers.isin(drop)].drop(columns="__line__", errors="ignore"))
    frame = pd.concat(frames)
    missing = len(drop) - (read - len(frame))
    if missing:
        raise DataError(f"{suspects}: {missing} row(s) marked to drop are not in {data}: was it audited as it is now?")
    write_frame(output, frame)
    return read - len(frame)
