"""Read interactions and item texts for the recommender.

Interactions are ``user_id, item_id, timestamp`` rows with an optional ``rating``
or ``click`` column; items are ``item_id`` plus any text fields. Both come from
CSV, JSONL or Parquet (the core readers), or from RecBole's atomic files
(``.inter`` / ``.item``: tab-separated, headers such as ``user_id:token``), which
is how MovieLens-100K ships.

Implicit feedback is what the model learns from: a rating at or above
``positive_threshold`` (default 4 of 5) or a truthy click counts as a positive;
other rows are still "seen" and are never recommended back to their user.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from ..readers import read_frame, require_columns, row_ref

TRUE_WORDS = {"1", "true", "yes", "y", "t", "click", "clicked"}
FALSE_WORDS = {"0", "false", "no", "n", "f", ""}


@dataclass
class Columns:
    """Column names in the user's files (defaults match MovieLens as RecBole ships it)."""

    user: str = "user_id"
    item: str = "item_id"
    timestamp: str = "timestamp"
    rating: str = "rating"
    click: str = "click"


@dataclass
class Interactions:
    """Deduplicated interactions, one row per (user, item), sorted by user then time.

    ``user``/``item`` are raw IDs as strings; ``positive`` says whether the row is a
    positive signal. Duplicates keep the latest row (a re-rating replaces the old one).
    """

    frame: pd.DataFrame
    source: str = "<memory>"
    n_duplicates: int = 0

    @property
    def positives(self) -> pd.DataFrame:
        """Rows that count as positives."""
        return self.frame[self.frame["positive"]]

    def __len__(self) -> int:
        return len(self.frame)


@dataclass
class Items:
    """Item IDs (strings) with one text per item ("" when an item has no text)."""

    ids: list[str]
    texts: list[str]
    source: str = "<memory>"
    fields: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)


def _as_id(path, frame: pd.DataFrame, column: str) -> pd.Series:
    values = frame[column]
    bad = values.isna() | (values.astype(str).str.strip() == "")
    if bad.any():
        raise DataError(f"{row_ref(path, frame, values.index[bad.to_numpy()][0])}: column {column!r} is empty")
    # 12 and 12.0 (JSON numbers) name the same item.
    out = values.astype(str).str.strip()
    return out.str.replace(r"^(-?\d+)\.0$", r"\1", regex=True)


def read_interactions(
    path: str | Path,
    *,
    columns: Columns | None = None,
    positive_threshold: float = 4.0,
    encoding: str = "utf-8",
) -> Interactions:
    """Read and validate an interactions file.

    The positive signal is the rating column when present (``>= positive_threshold``),
    else the click column (1/0, true/false), else every row is a positive (a plain
    click log). Timestamps may be numbers (Unix seconds) or ISO 8601 strings.
    """
    columns = columns or Columns()
    frame = read_frame(path, encoding=encoding, atomic=True)
    if frame.empty:
        raise DataError(f"{path}: no interactions")
    require_columns(path, frame, [columns.user, columns.item, columns.timestamp])
    out = pd.DataFrame(index=frame.index)
    out["user"] = _as_id(path, frame, columns.user)
    out["item"] = _as_id(path, frame, columns.item)
    out["timestamp"] = _timestamps(path, frame, columns.timestamp)
    if columns.rating in frame.columns:
        ratings = pd.to_numeric(frame[columns.rating], errors="coerce")
        if ratings.isna().any():
            index = ratings.index[ratings.isna().to_numpy()][0]
            raise DataError(f"{row_ref(path, frame, index)}: column {columns.rating!r} is not a number "
                            f"({frame.at[index, columns.rating]!r:.40})")
        out["positive"] = ratings >= positive_threshold
    elif columns.click in frame.columns:
        out["positive"] = _clicks(path, frame, columns.click)
    else:
        out["positive"] = True
    before = len(out)
    out = out.sort_values(["user", "timestamp", "item"], kind="stable")
    out = out.drop_duplicates(["user", "item"], keep="last").reset_index(drop=True)
    return Interactions(out, source=str(path), n_duplicates=before - len(out))


def _timestamps(path, frame: pd.DataFrame, column: str) -> pd.Series:
    raw = frame[column]
    numeric = pd.to_numeric(raw, errors="coerce")
    if numeric.notna().all():
        return numeric.astype("float64")
    parsed = pd.to_datetime(raw, errors="coerce", utc=True, format="ISO8601")
    bad = parsed.isna() & numeric.isna()
    if bad.any():
        index = raw.index[bad.to_numpy()][0]
        raise DataError(f"{row_ref(path, frame, index)}: column {column!r} is not a Unix time or ISO 8601 date "
                        f"({raw.at[index]!r:.40})")
    seconds = parsed.astype("int64").astype("float64") / 1e9
    return numeric.where(numeric.notna(), seconds).astype("float64")


def _clicks(path, frame: pd.DataFrame, column: str) -> pd.Series:
    words = frame[column].astype(str).str.strip().str.lower().str.replace(r"\.0$", "", regex=True)
    unknown = ~words.isin(TRUE_WORDS | FALSE_WORDS)
    if unknown.any():
        index = words.index[unknown.to_numpy()][0]
        raise DataError(f"{row_ref(path, frame, index)}: column {column!r} must be 1/0 or true/false "
                        f"({frame.at[index, column]!r:.40})")
    return words.isin(TRUE_WORDS)


def read_items(
    path: str | Path,
    *,
    id_column: str = "item_id",
    text_fields: list[str] | None = None,
    encoding: str = "utf-8",
) -> Items:
    """Read item texts: ``text_fields`` (default: every other column) joined as "field: value".

    Items may lack text (an empty cell, or no row at all): they are kept with an
    empty text and the model ranks them from interactions alone.
    """
    frame = read_frame(path, encoding=encoding, atomic=True)
    require_columns(path, frame, [id_column])
    fields = text_fields or [c for c in frame.columns if c not in (id_column, "__line__")]
    require_columns(path, frame, fields)
    ids = _as_id(path, frame, id_column)
    duplicated = ids.duplicated()
    if duplicated.any():
        index = ids.index[duplicated.to_numpy()][0]
        raise DataError(f"{row_ref(path, frame, index)}: item {ids.at[index]!r} appears twice")
    texts = []
    for _, row in frame[fields].iterrows():
        parts = []
        for name in fields:
            value = row[name]
            if value is None or (isinstance(value, float) and np.isnan(value)):
                continue
            value = " ".join(str(value).split())
            if value:
                parts.append(f"{name.replace('_', ' ')}: {value}")
        texts.append("; ".join(parts))
    return Items(ids.tolist(), texts, source=str(path), fields=list(fields))


def align_items(interactions: Interactions, items: Items | None) -> Items:
    """Every item that occurs in the interactions or the item file, in one catalogue.

    Items that were interacted with but have no row in the item file get an empty
    text (and a warning from the caller); items with text but no interaction stay in
    the catalogue, because ranking new items is what text is for.
    """
    known = dict(zip(items.ids, items.texts)) if items is not None else {}
    ids = list(items.ids) if items is not None else []
    seen = set(ids)
    for item in pd.unique(interactions.frame["item"]):
        if item not in seen:
            ids.append(item)
            seen.add(item)
    return Items(ids, [known.get(i, "") for i in ids], source=items.source if items else "<interactions>",
                 fields=items.fields if items else [])
