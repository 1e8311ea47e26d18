"""Which columns a multimodal model reads, and reading them from a data file into rows.

A row is a dict from column name to a checked value: text columns hold strings, image
columns an :class:`~lmworks.images.ImageRef` (a path resolved against the data file's
folder, or bytes from a service) or ``None`` when the cell is empty, numeric columns a
float (``nan`` when missing), categorical columns a string (``None`` when missing).
Anything else is an error naming the file, row and column.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..data import Labelled, as_label_names, read_labelled
from ..errors import ConfigError, DataError, Rule, check_known_fields, check_rules
from ..images import IMAGE_MODELS, ImageRef
from ..readers import require_columns, row_ref

_RULES: tuple[Rule, ...] = (
    (lambda c: bool(c.text_columns or c.image_columns or c.numeric_columns or c.categorical_columns),
     "a multimodal model needs at least one column to read"),
    (lambda c: len(set(c.all_columns)) == len(c.all_columns), "a column is named twice: {text_columns} "
     "{image_columns} {numeric_columns} {categorical_columns}"),
    (lambda c: c.image_model in IMAGE_MODELS, "unknown image model {image_model!r}"),
    (lambda c: 32 <= c.image_size <= 512, "image_size must be in 32..512, got {image_size}"),
    (lambda c: 0 <= c.modality_dropout < 1, "modality_dropout must be in [0, 1), got {modality_dropout}"),
)


@dataclass
class MultimodalConfig:
    """The columns a multimodal model reads, and how it reads images.

    Attributes
    ----------
    text_columns:
        Text columns, joined into one text per row (``column: value`` parts separated by
        ``[SEP]``) for the text encoder; empty for an image/tabular-only model.
    image_columns:
        Columns of image paths (absolute, or relative to the data file's folder).
    numeric_columns:
        Numbers: standardised with the training split's statistics; a missing value is
        imputed (0 after standardising) and flagged.
    categorical_columns:
        Categories: a learned embedding each, with one slot for values unseen in training.
    image_model, image_size:
        The frozen image backbone and its input resolution (its authors trained at 224).
    skip_bad_images:
        Treat an undecodable image as missing (with a warning) instead of an error.
    modality_dropout:
        While training, drop each modality's vector per row with this probability, so the
        model learns to use every modality rather than lean on the easiest one.
    """

    text_columns: tuple[str, ...] = ("text",)
    image_columns: tuple[str, ...] = ()
    numeric_columns: tuple[str, ...] = ()
    categorical_columns: tuple[str, ...] = ()
    image_model: str = "efficientnet_lite0"
    image_size: int = 224
    skip_bad_images: bool = False
    modality_dropout: float = 0.1

    def __post_init__(self) -> None:
        for name in ("text_columns", "image_columns", "numeric_columns", "categorical_columns"):
            value = getattr(self, name)
            setattr(self, name, (value,) if isinstance(value, str) else tuple(value))
        check_rules(self, _RULES)

    @property
    def all_columns(self) -> list[str]:
        """Every input column, text first."""
        return [*self.text_columns, *self.image_columns, *self.numeric_columns, *self.categorical_columns]

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (recorded in ``lmworks.json``)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MultimodalConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        check_known_fields(cls, data, "multimodal")
        return cls(**data)

    def columns_record(self) -> dict[str, list[str]]:
        """The columns by kind, as ``lmworks.json`` records them for evaluate/predict/serve."""
        return {"text": list(self.text_columns), "image": list(self.image_columns),
                "numeric": list(self.numeric_columns), "categorical": list(self.categorical_columns)}


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or (isinstance(value, str)
                                                                                and not value.strip())


def check_row(raw: dict[str, Any], config: MultimodalConfig, where: str, base: Path | None) -> dict[str, Any]:
    """One row's values, checked and typed (see the module docstring)."""
    row: dict[str, Any] = {}
    for column in config.text_columns:
        value = raw.get(column)
        if not _missing(value) and not isinstance(value, str):
            raise DataError(f"{where}: column {column!r} must be text, got {type(value).__name__}")
        row[column] = "" if _missing(value) else value
    for column in config.image_columns:
        value = raw.get(column)
        if isinstance(value, ImageRef) or _missing(value):
            row[column] = None if _missing(value) else value
        elif isinstance(value, str):
            path = Path(value).expanduser()
            row[column] = ImageRef(f"{where}: column {column!r}", path=path if path.is_absolute() or base is None
                                   else base / path)
        else:
            raise DataError(f"{where}: column {column!r} must be an image path, got {type(value).__name__}")
    for column in config.numeric_columns:
        value = raw.get(column)
        try:
            row[column] = math.nan if _missing(value) else float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError) as err:
            raise DataError(f"{where}: column {column!r} must be a number, got {value!r:.40}") from err
    for column in config.categorical_columns:
        value = raw.get(column)
        row[column] = None if _missing(value) else str(value).strip()
    if config.text_columns and not config.image_columns and not config.numeric_columns and \
            not config.categorical_columns and not any(row[c] for c in config.text_columns):
        raise DataError(f"{where}: every text column is empty")
    return row


def rows_from_frame(path: str | Path, frame: pd.DataFrame, config: MultimodalConfig,
                    data_columns: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The checked rows of one chunk of a data file (image paths resolved against its folder).

    ``data_columns`` maps a model column to the file's column when their names differ.
    """
    names = {c: (data_columns or {}).get(c, c) for c in config.all_columns}
    require_columns(path, frame, list(names.values()))
    base = None if str(path) == "-" else Path(path).resolve().parent
    records = frame[list(names.values())].rename(columns={v: k for k, v in names.items()}).to_dict(orient="records")
    return [check_row(raw, config, row_ref(path, frame, index), base) for index, raw in zip(frame.index, records)]


def column_map(config: MultimodalConfig, **given: list[str] | None) -> dict[str, str]:
    """Model column -> data column, from file column names given per kind (by position, same count).

    ``given`` holds ``text``/``image``/``numeric``/``categorical`` lists (``None``: the model's own).
    """
    mapping: dict[str, str] = {}
    for kind, model_columns in (("text", config.text_columns), ("image", config.image_columns),
                                ("numeric", config.numeric_columns), ("categorical", config.categorical_columns)):
        names = given.get(kind)
        if not names:
            continue
        if len(names) != len(model_columns):
            raise ConfigError(f"the model reads {len(model_columns)} {kind} column(s) {list(model_columns)}; "
                              f"got {len(names)}: {names}")
        mapping.update(zip(model_columns, names))
    return mapping


def rows_from_records(records: Any, config: MultimodalConfig, *, base: Path | None = None) -> list[dict[str, Any]]:
    """Checked rows from dicts (or a DataFrame's rows), e.g. what a Python caller or a service passes."""
    if isinstance(records, pd.DataFrame):
        records = records.to_dict(orient="records")
    rows = []
    for i, raw in enumerate(records):
        if not isinstance(raw, dict):
            raise DataError(f"row {i + 1}: expected a mapping of column to value, got {type(raw).__name__}")
        missing = [c for c in config.all_columns if c not in raw]
        if missing:
            raise DataError(f"row {i + 1}: column {missing[0]!r} is missing (the model reads "
                            f"{', '.join(config.all_columns)})")
        rows.append(check_row(raw, config, f"row {i + 1}", base))
    return rows


@dataclass
class RowDataset(Labelled):
    """Rows with optional labels, as read from one data file."""

    rows: list[dict[str, Any]]
    labels: list[Any] | None
    source: str = "<memory>"

    @property
    def inputs(self) -> list[dict[str, Any]]:
        """What a model reads: the rows (a :class:`~lmworks.data.TextDataset`'s are its texts)."""
        return self.rows

    def __len__(self) -> int:
        return len(self.rows)


def read_rows(path: str | Path, config: MultimodalConfig, *, label_column: str | None = "label",
              multi_label: bool = False, label_separator: str = "|", encoding: str = "utf-8",
              delimiter: str | None = None, data_columns: dict[str, str] | None = None) -> RowDataset:
    """Read a whole data file as checked rows (and labels, unless ``label_column`` is ``None``)."""
    rows, labels = read_labelled(path, lambda chunk: rows_from_frame(path, chunk, config, data_columns),
                                 label_column=label_column, multi_label=multi_label, label_separator=label_separator,
                                 encoding=encoding, delimiter=delimiter)
    return RowDataset(rows, as_label_names(labels, multi_label) if labels is not None else None, str(path))


def joined_text(row: dict[str, Any], columns: tuple[str, ...]) -> str:
    """The text the encoder reads: ``column: value`` parts joined by ``[SEP]`` (the value alone for one column)."""
    if len(columns) == 1:
        return str(row[columns[0]])
    return " [SEP] ".join(f"{c}: {row[c]}" for c in columns if row[c])
