"""Read and check a wide price table: a ``date`` column and one adjusted-close column per asset.

A backtest is only as honest as its prices: unsorted or repeated dates, gaps and zero
or negative prices silently corrupt returns. Each is refused with the asset and date
that break it; filling gaps forward is an explicit choice (``fill="forward"``), never
a default. Missing prices *before* an asset's first price and *after* its last are not
gaps: the asset lists or delists there, and a universe whose members change is what a
survivorship-free backtest needs. Optionally one column holds the cash rate (annual, as a
fraction: 0.04 is 4 %), e.g. a treasury-bill yield.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError
from ..readers import read_frame

DATE_COLUMN = "date"
FILL_MODES = ("none", "forward")


@dataclass
class Prices:
    """Validated prices: ``frame`` indexed by date (sorted, unique), one float column per asset."""

    frame: pd.DataFrame
    source: str = "<memory>"
    rates: pd.Series | None = None

    @property
    def assets(self) -> list[str]:
        """Asset names, in column order."""
        return [str(c) for c in self.frame.columns]

    @property
    def dates(self) -> pd.DatetimeIndex:
        """Trading dates."""
        return pd.DatetimeIndex(self.frame.index)

    def returns(self) -> np.ndarray:
        """Simple daily returns, ``(n_dates - 1, n_assets)``: row ``i`` is the return from date ``i`` to ``i+1``.

        NaN where the asset has no price on either date (not listed yet, or delisted).
        """
        values = self.frame.to_numpy(dtype=np.float64)
        return values[1:] / values[:-1] - 1.0

    def listed(self) -> np.ndarray:
        """``(n_dates, n_assets)``: True where the asset has a price that day."""
        return self.frame.notna().to_numpy()

    def until(self, date: str | pd.Timestamp) -> Prices:
        """The prices up to and including the close of ``date`` (``advisor train --until``)."""
        row = self.position(date)
        rates = self.rates.iloc[: row + 1] if self.rates is not None else None
        return Prices(self.frame.iloc[: row + 1], self.source, rates)

    def position(self, date: str | pd.Timestamp) -> int:
        """Index of the last trading date on or before ``date``; an error outside the data."""
        moment = pd.Timestamp(date)
        if moment < self.dates[0] or moment > self.dates[-1]:
            raise ConfigError(f"--as-of {moment.date()} is outside the data ({self.dates[0].date()} to "
                              f"{self.dates[-1].date()})")
        return int(self.dates.searchsorted(moment, side="right")) - 1


def check_prices(frame: pd.DataFrame, *, source: str = "<memory>", fill: str = "none",
                 rates: pd.Series | None = None) -> Prices:
    """Validate a frame whose index is dates and whose columns are assets (and ``rates``, the cash rate)."""
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
    if rates is not None:
        rates = check_rates(pd.Series(np.asarray(rates), index=index, name=rates.name), source)
    if fill == "forward":
        values = values.ffill(limit_area="inside")  # over gaps only: never past a delisting
    for column in values.columns:
        _check_asset(values[column], source, fill)
    return Prices(values, source, rates)


def _check_asset(series: pd.Series, source: str, fill: str) -> None:
    """Refuse an asset without prices, a gap between its first and last price, or a price <= 0."""
    present = series.notna().to_numpy()
    if not present.any():
        raise DataError(f"{source}: asset {series.name!r} has no price at all")
    first, last = int(np.argmax(present)), len(present) - 1 - int(np.argmax(present[::-1]))
    gaps = np.flatnonzero(~present[first:last + 1])
    if len(gaps):
        when = series.index[first + int(gaps[0])].date()
        hint = "" if fill == "forward" else " (pass --fill forward to carry the last price over gaps)"
        raise DataError(f"{source}: asset {series.name!r} has no price on {when} between its first and last "
                        f"price{hint}")
    bad = series <= 0
    if bad.any():
        when = series.index[int(np.flatnonzero(bad.to_numpy())[0])].date()
        raise DataError(f"{source}: asset {series.name!r} has a non-positive price on {when}")


def check_rates(rates: pd.Series, source: str) -> pd.Series:
    """A cash-rate column: numeric on every date, annual fractions (a percentage is refused, not guessed)."""
    values = pd.to_numeric(rates, errors="coerce").astype(np.float64)
    if values.isna().any():
        when = values.index[int(np.flatnonzero(values.isna().to_numpy())[0])]
        raise DataError(f"{source}: cash rate column {rates.name!r} has no number on {pd.Timestamp(when).date()}")
    if (values.abs() > 1).any():
        raise DataError(f"{source}: cash rate column {rates.name!r} holds {values.abs().max():g}: rates are annual "
                        "fractions (0.04 for 4 %); divide a percentage by 100")
    return values


def read_prices(path: str | Path, *, date_column: str = DATE_COLUMN, fill: str = "none",
                encoding: str = "utf-8", rate_column: str | None = None) -> Prices:
    """Read a wide CSV/JSONL/Parquet price file (``date`` plus one column per asset) and check it.

    ``rate_column`` names a column holding the cash rate rather than an asset's price.
    """
    frame = read_frame(path, encoding=encoding).drop(columns=["__line__"], errors="ignore")
    if date_column not in frame.columns:
        raise DataError(f"{path}: column {date_column!r} not found (columns: {', '.join(map(str, frame.columns))})")
    dates = pd.to_datetime(frame[date_column], errors="coerce")
    if dates.isna().any():
        row = int(np.flatnonzero(dates.isna().to_numpy())[0])
        raise DataError(f"{path} row {row + 1}: {date_column!r} {frame[date_column].iloc[row]!r} is not a date")
    frame = frame.drop(columns=[date_column])
    frame.index = pd.DatetimeIndex(dates.dt.tz_localize(None) if dates.dt.tz is not None else dates)
    rates = None
    if rate_column is not None:
        if rate_column not in frame.columns:
            raise DataError(f"{path}: cash rate column {rate_column!r} not found (columns: "
                            f"{', '.join(map(str, frame.columns))})")
        rates = frame.pop(rate_column)
    return check_prices(frame, source=str(path), fill=fill, rates=rates)
