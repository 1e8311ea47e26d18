"""Explanations of a multimodal model: each modality's share, and words of the text columns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError
from .explanation import Explanation
from .occlusion import modality_shares, occlusion
from .words import split_words


def explain_rows(classifier: Any, rows: Sequence[Any], asked: int | None, *, method: str = "auto") -> list[Explanation]:
    """Modality shares (ablation through the model's missing-modality gate) and text-column occlusion."""
    if method not in ("auto", "occlusion"):
        raise ConfigError(f"a multimodal model is explained by occlusion; method {method!r} does not apply")
    backend = classifier.backend_
    multi_label = bool(classifier.config.multi_label)
    checked = backend.inputs(rows)
    proba = backend.predict_proba(checked)
    decided = classifier.decide(proba)
    labels = list(classifier.labels_)
    columns = [asked if asked is not None else int(np.argmax(p)) for p in proba]
    config = backend.columns
    kinds = {"text": config.text_columns, "image": config.image_columns, "numeric": config.numeric_columns,
             "categorical": config.categorical_columns}
    shares = modality_shares(backend.predict_proba, checked, kinds, columns, multi_label=multi_label)
    per_column: list[dict[str, dict[str, list[Any]]]] = [{} for _ in checked]
    for column in config.text_columns:
        words = [split_words(str(row[column] or "")) for row in checked]
        def rebuild(i: int, text: str, c: str = column) -> dict[str, Any]:
            return {**checked[i], c: text}

        scores = occlusion(backend.predict_proba, words, columns, multi_label=multi_label, rebuild=rebuild)
        for i, (w, s) in enumerate(zip(words, scores)):
            per_column[i][column] = {"words": w.words, "scores": [round(float(x), 6) for x in s]}
    out = []
    for i, column in enumerate(columns):
        first = per_column[i].get(config.text_columns[0], {"words": [], "scores": []}) if config.text_columns \
            else {"words": [], "scores": []}
        out.append(Explanation(labels[column], decided[i], float(proba[i, column]), first["words"], first["scores"],
                               "modality ablation + occlusion", words_read=len(first["words"]),
                               modalities=shares[i], columns=per_column[i] or None))
    return out
