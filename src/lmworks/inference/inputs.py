"""Which columns of a data file a model reads: the ones it was trained on, unless the caller names others.

A text model reads one text column; a multimodal model reads text, image, numeric and
categorical columns (:class:`~lmworks.multimodal.MultimodalConfig`). ``lmworks.json``
records them, so ``evaluate``, ``predict`` and ``serve`` need no column options; options
still override (for a multimodal model, per kind and by position).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..data import TextDataset, clean_texts, read_dataset
from ..errors import ConfigError
from ..multimodal.columns import MultimodalConfig, RowDataset, column_map, read_rows, rows_from_frame

DEFAULT_TEXT = "text"
DEFAULT_LABEL = "label"


@dataclass
class ModelInputs:
    """How to read a model's inputs (and labels) from data files."""

    text_column: str = DEFAULT_TEXT
    label_column: str = DEFAULT_LABEL
    multimodal: MultimodalConfig | None = None
    data_columns: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_training(cls, *, text: list[str] | None = None, label: str | None = None, image: list[str] | None = None,
                     numeric: list[str] | None = None, categorical: list[str] | None = None, no_text: bool = False,
                     **multimodal_options: Any) -> ModelInputs:
        """A text model (one text column), or a multimodal one when the columns ask for it."""
        texts = [] if no_text else (text or [DEFAULT_TEXT])
        if no_text and text:
            raise ConfigError("--no-text and --text-column contradict each other")
        if image or numeric or categorical or len(texts) != 1:
            config = MultimodalConfig(text_columns=tuple(texts), image_columns=tuple(image or ()),
                                      numeric_columns=tuple(numeric or ()),
                                      categorical_columns=tuple(categorical or ()), **multimodal_options)
            return cls(texts[0] if texts else DEFAULT_TEXT, label or DEFAULT_LABEL, config)
        return cls(texts[0], label or DEFAULT_LABEL)

    @classmethod
    def for_model(cls, meta: dict[str, Any], *, text: list[str] | None = None, label: str | None = None,
                  image: list[str] | None = None, numeric: list[str] | None = None,
                  categorical: list[str] | None = None) -> ModelInputs:
        """What a saved model reads (``lmworks.json``), with the caller's column names where given."""
        recorded = meta.get("data_columns") or {}
        label = label or recorded.get("label") or DEFAULT_LABEL
        if meta.get("multimodal"):
            config = MultimodalConfig.from_dict(meta["multimodal"])
            mapping = column_map(config, text=text, image=image, numeric=numeric, categorical=categorical)
            return cls(DEFAULT_TEXT, label, config, mapping)
        if image or numeric or categorical:
            raise ConfigError("this model reads text only: image, numeric and categorical columns do not apply")
        if text and len(text) > 1:
            raise ConfigError("this model reads one text column")
        return cls((text or recorded.get("text") or [DEFAULT_TEXT])[0], label)

    def read(self, path: str | Path, *, labels: bool = True, multi_label: bool = False, label_separator: str = "|",
             encoding: str = "utf-8", delimiter: str | None = None) -> TextDataset | RowDataset:
        """A whole labelled (or unlabelled) data file: texts, or checked rows for a multimodal model."""
        label_column = self.label_column if labels else None
        if self.multimodal is not None:
            return read_rows(path, self.multimodal, label_column=label_column, multi_label=multi_label,
                             label_separator=label_separator, encoding=encoding, delimiter=delimiter,
                             data_columns=self.data_columns)
        return read_dataset(path, text_column=self.text_column, label_column=label_column, multi_label=multi_label,
                            label_separator=label_separator, encoding=encoding, delimiter=delimiter)

    def from_frame(self, path: str | Path, frame: pd.DataFrame) -> list[Any]:
        """One chunk's inputs (streamed prediction)."""
        if self.multimodal is not None:
            return rows_from_frame(path, frame, self.multimodal, self.data_columns)
        from ..readers import require_columns

        require_columns(path, frame, [self.text_column])
        return clean_texts(path, frame, self.text_column)

    def record(self) -> dict[str, Any]:
        """The columns as ``lmworks.json`` records them (``data_columns``)."""
        if self.multimodal is not None:
            return {**self.multimodal.columns_record(), "label": self.label_column}
        return {"text": [self.text_column], "label": self.label_column}
