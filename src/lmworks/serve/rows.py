"""``POST /v1/classify`` for a multimodal model: rows of column values, images as base64.

A row is ``{column: value}`` for every column the model reads: text as strings, images as
base64 strings (or ``data:image/...;base64,`` URLs; ``null`` when there is none), numbers
as numbers, categories as strings or numbers (``null`` when missing). A wrong type is a
422 naming the row and column; an image over ``max_image_bytes`` a 413.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from ..errors import DataError
from ..images import BrokenImage, from_base64
from ..predictor import Predictor
from .common import ApiError
from .metrics import ServerMetrics


class RowsRequest(BaseModel):
    """Rows to classify."""

    model_config = ConfigDict(extra="forbid")
    rows: list[dict[str, Any]] = Field(min_length=1, description="one {column: value} object per row; images "
                                       "as base64 strings")


class RowPrediction(BaseModel):
    """One row's answer."""

    label: str | list[str] = Field(description="the label (a list of labels for multi-label models)")
    scores: dict[str, float] = Field(description="probability of every label")


class RowsResponse(BaseModel):
    """Answers, in the order of the request's rows."""

    model: str
    predictions: list[RowPrediction]


def _checked(index: int, raw: dict[str, Any], columns: dict[str, list[str]], max_image_bytes: int) -> dict[str, Any]:
    row = dict(raw)
    where = f"rows[{index}]"
    kinds = (("text", (str,), "a string"), ("numeric", (int, float), "a number"),
             ("categorical", (str, int, float), "a string or a number"))
    for kind, types, what in kinds:
        for column in columns.get(kind, []):
            value = raw.get(column)
            if value is not None and (not isinstance(value, types) or isinstance(value, bool)):
                raise ApiError(422, "wrong_type", f"{where}.{column}: expected {what}, got {type(value).__name__}")
    for column in columns.get("image", []):
        value = raw.get(column)
        if value is None:
            continue
        if not isinstance(value, str):
            raise ApiError(422, "wrong_type", f"{where}.{column}: expected a base64 string, got "
                           f"{type(value).__name__}")
        if len(value) * 3 // 4 > max_image_bytes:
            raise ApiError(413, "image_too_large", f"{where}.{column}: image over {max_image_bytes} bytes")
        try:
            row[column] = from_base64(value, f"{where}.{column}")
        except BrokenImage as err:
            raise ApiError(422, "bad_image", str(err)) from err
    return row


def add_rows_route(app: FastAPI, predictor: Predictor, *, max_rows: int, max_image_bytes: int,
                   metrics: ServerMetrics) -> None:
    """Register ``POST /v1/classify`` for rows (see the module docstring)."""
    columns = (predictor.meta.get("columns") or {})

    @app.post("/v1/classify", response_model=RowsResponse, summary="classify rows (text, image, numbers, categories)",
              responses={413: {"description": "too many rows, or an image too large"},
                         422: {"description": "malformed JSON, a missing column, a wrong type, an undecodable image"}})
    async def classify(request: RowsRequest) -> dict[str, Any]:
        if len(request.rows) > max_rows:
            raise ApiError(413, "too_many_rows", f"{len(request.rows)} rows, at most {max_rows} per request")
        rows = [_checked(i, raw, columns, max_image_bytes) for i, raw in enumerate(request.rows)]
        try:
            results = await run_in_threadpool(predictor.classify_rows, rows)
        except DataError as err:
            raise ApiError(422, "invalid_row", str(err)) from err
        metrics.texts.inc(len(results))
        return {"model": predictor.name, "predictions": results}
