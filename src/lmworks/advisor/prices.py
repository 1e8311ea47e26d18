"""Read and check a wide price table: a ``date`` column and one adjusted-close column per asset.

A backtest is only as honest as its prices: unsorted or repeated dates, gaps and zero
or negative prices silently corrupt returns. Each is refused with the asset and date
that break it; filling gaps forward is an explicit choice (``fill="forward"``), never
a default.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import detect_format, iter_chunks
from ..errors import ConfigError, DataError

DATE_COLUMN = "date"
FILL_MODES = ("none", "forward")


@dataclass
class Prices:
    """Validated prices: ``frame`` indexed by date (sorted, unique), one float column per asset."""

    frame: pd.DataFrame
    source: str = "<memory>"

    @property
    def assets(self) -> list[str]:
        """Asset names, in column order."""
        return [str(c) for c in self.frame.columns]

    @property
    def dates(self) -> pd.DatetimeIndex:
        """Trading dates."""
        return pd.DatetimeIndex(self.frame.index)

    def returns(self) -> np.ndarray:
        """Simple daily returns, ``(n_dates - 1, n_assets)``: row ``i`` is the return from date ``i`` to ``i+1``."""
        values = self.frame.to_numpy(dtype=np.float64)
        return values[1:] / values[:-1] - 1.0

    def position(self, date: str | pd.Timestamp) -> int:
        """Index of the last trading date on or before ``date``; an error outside the data."""
        moment = pd.Timestamp(date)
        if moment < self.dates[0] or moment > self.dates[-1]:
            raise ConfigError(f"--as-of {moment.date()} is outside the data ({self.dates[0].date()} to "
                              f"{self.dates[-1].date()})")
        return int(self.dates.searchsorted(moment, side="right")) - 1


def check_prices(frame: pd.DataFrame, *, source: str = "<memory>", fill: str = "none") -> Prices:
    """Validate a frame whose index is dates and whose columns are assets."""
    if fill not in FILL_MODES:
        raise ConfigError(f"unknown fill {fill!r}: choose {' or '.join(FILL_MODES)}")
    if frame.shape[1] < 2:
        raise DataError(f"{source}: needs at least two asset columns besides {DATE_COLUMN!r}")
    index = pd.DatetimeIndex(frame.index)
    duplicated = index[index.duplicated()]
    if len(duplicated):
        raise DataError(f"{source}: date {duplicated[0].date()} appears more than once")
    if not index.is_monotonic_increasing:
        position = int(np.flatnonzero(np.diff(index.asi8) < 0)[0]) + 1
        raise DataError(f"{source}: dates are not sorted ({index[position].date()} comes after "
                        f"{index[position - 1].date()})")
    values = frame.apply(pd.to_numeric, errors="coerce").astype(np.float64)
    values.index = index
    if fill == "forward":
        values = values.ffill()
    for column in values.columns:
        series = values[column]
        missing = series.isna()
        if missing.any():
            when = series.index[int(np.flatnonzero(missing.to_numpy())[0])].date()
            hint = "" if fill == "forward" else " (pass --fill forward to carry the last price over gaps)"
            raise DataError(f"{source}: asset {column!r} has no price on {when}{hint}")
        bad = series <= 0
        if bad.any():
            when = series.index[int(np.flatnonzero(bad.to_numpy())[0])].date()
            raise DataError(f"{source}: asset {column!r} has a non-positive price on {when}")
    return Prices(values, source)


def read_prices(path: str | Path, *, date_column: str = DATE_COLUMN, fill: str = "none",
                encoding: str = "utf-8") -> Prices:
    """Read a wide CSV/JSONL/Parquet price file (``date`` plus one column per asset) and check it."""
    detect_format(path)
    chunks = list(iter_chunks(path, encoding=encoding))
    frame = pd.concat(chunks) if chunks else pd.DataFrame()
    frame = frame.drop(columns=["__line__"], errors="ignore")
    if frame.empty:
        raise DataError(f"{path}: no rows")
    if date_column not in frame.columns:
        raise DataError(f"{path}: column {date_column!r} not found (columns: {', '.join(map(str, frame.columns))})")
    dates = pd.to_datetime(frame[date_column], errors="coerce")
    if dates.isna().any():
        row = int(np.flatnonzero(dates.isna().to_numpy())[0])
        raise DataError(f"{path} row {row + 1}: {date_column!r} {frame[date_column].iloc[row]!r} is not a date")
    frame = frame.drop(columns=[date_column])
    frame.index = pd.DatetimeIndex(dates.dt.tz_localize(None) if dates.dt.tz is not None else dates)
    return check_prices(frame, source=str(path), fill=fill)
