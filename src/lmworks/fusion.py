"""``MultimodalClassifier``: one classifier over text, image, numeric and categorical columns.

It is :class:`~lmworks.TextClassifier`'s sibling with the same contract (``fit`` returns
``self``, ``predict``/``predict_proba``/``score``/``evaluate``, ``get_params``/``set_params``,
``save``/``load``, the same model directory with checksums), whose inputs are rows: dicts
from column name to value, or a pandas DataFrame. Which columns it reads, and as what,
is a :class:`~lmworks.multimodal.MultimodalConfig`; every field of it is a parameter too.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from .backends import Backend
from .classifier import TextClassifier
from .errors import ConfigError
from .model_dir import read_meta
from .multimodal.backend import MultimodalBackend
from .multimodal.columns import MultimodalConfig, rows_from_records
from .training.config import TrainConfig

_COLUMN_FIELDS = tuple(f.name for f in dataclasses.fields(MultimodalConfig))


class MultimodalClassifier(TextClassifier):
    """Fine-tune the text encoder and a fusion network over the columns ``columns`` names.

    Parameters
    ----------
    model:
        The text encoder (``minilm``, ``mpnet`` or a directory), as for TextClassifier.
    config:
        Training settings (:class:`~lmworks.TrainConfig`); TF-IDF blending does not apply.
    columns:
        A :class:`~lmworks.multimodal.MultimodalConfig`.
    **options:
        Any field of either config, e.g. ``image_columns=["photo"], epochs=3``.
    """

    def __init__(self, model: str | None = None, *, config: TrainConfig | None = None,
                 columns: MultimodalConfig | None = None, **options: Any) -> None:
        column_options = {k: options.pop(k) for k in list(options) if k in _COLUMN_FIELDS}
        super().__init__(model, config=config, **options)
        self.config = self.config.replace(blend="none")
        self.columns = dataclasses.replace(columns or MultimodalConfig(), **column_options)

    @classmethod
    def _get_param_names(cls) -> list[str]:
        return sorted([*super()._get_param_names(), *_COLUMN_FIELDS])

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Every :class:`TrainConfig` and :class:`MultimodalConfig` field by name."""
        return {**super().get_params(deep), **{k: getattr(self.columns, k) for k in _COLUMN_FIELDS}}

    def set_params(self, **params: Any) -> MultimodalClassifier:
        """Change settings of either config; a misspelt name is an error."""
        column_params = {k: params.pop(k) for k in list(params) if k in _COLUMN_FIELDS}
        super().set_params(**params)
        self.columns = dataclasses.replace(self.columns, **column_params)
        return self

    def _inputs(self, texts: Any) -> list[Any]:
        return rows_from_records(texts, self.columns)

    def _few_shot_choice(self, labels: Any, distilling: bool) -> str | None:
        """The few-shot recipe tunes a text encoder alone: never for a model over several modalities."""
        return None

    def _new_backend(self, has_dev_data: bool, *, few_shot: bool = False) -> Backend:
        return MultimodalBackend(self.config.model, self.columns)

    @classmethod
    def load(cls, directory: str | Path, *, num_threads: int | None = None) -> MultimodalClassifier:
        """Load a multimodal model directory (checksums verified)."""
        meta = read_meta(directory)
        if meta.get("backend") != MultimodalBackend.name:
            raise ConfigError(f"{directory}: not a multimodal model (backend {meta.get('backend')!r}); "
                              "use TextClassifier.load or lmworks.load")
        loaded = TextClassifier.load(directory, num_threads=num_threads)
        self = cls(config=loaded.config, columns=MultimodalConfig.from_dict(meta["multimodal"]))
        for name in ("backend_", "labels_", "thresholds_", "dev_metrics_", "train_info_", "columns_", "meta_"):
            setattr(self, name, getattr(loaded, name))
        return self
