"""HTTP service of the recommender: ``POST /v1/recommend`` in the style of the other services.

Same error shape, API key, body limit and Prometheus metrics as ``lmworks serve``
(:func:`lmworks.serve.common.base_app`).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from ..serve.common import ApiError, base_app, declare_limits, with_body
from ..serve.metrics import ServerMetrics
from .recommender import TextRecommender


class RecommendRequest(BaseModel):
    """Either a known ``user_id`` or an explicit ``history`` of item IDs (oldest first)."""

    model_config = ConfigDict(extra="forbid")
    user_id: StrictStr | None = Field(default=None, description="a user ID from the training interactions")
    history: list[StrictStr] | None = Field(default=None, description="item IDs the user liked, oldest first")
    k: int = Field(default=10, ge=1, description="how many items to return")
    exclude: list[StrictStr] = Field(default_factory=list, description="item IDs never to return")


class RecommendedItem(BaseModel):
    """One ranked item."""

    item_id: str
    score: float
    text: str


class RecommendResponse(BaseModel):
    """Ranked items; ``fallback`` is ``"popular"`` when they are not personalised, with a message why."""

    user: str | None
    items: list[RecommendedItem]
    fallback: str | None
    message: str | None
    ignored_history: list[str]


def create_recommender_app(recommender: TextRecommender, *, api_key: str | None = None, max_k: int = 100,
                           max_history: int = 1000, max_body_bytes: int = 256 * 1024) -> FastAPI:
    """The FastAPI app of a trained recommender."""
    app = base_app(title="lmworks recommender", description="Ranks items for a user from item text and history.",
                   metrics=ServerMetrics(), api_key=api_key, max_body_bytes=max_body_bytes)
    data = recommender.data_

    @app.get("/healthz", summary="liveness")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "items": data.n_items, "users": data.n_users}

    @app.get("/v1/model", summary="what the recommender was trained on and how it scored")
    def model() -> dict[str, Any]:
        meta = recommender.meta_
        return {"items": data.n_items, "users": data.n_users, "protocol": data.protocol,
                "config": meta.get("config"), "metrics": meta.get("metrics"), "versions": meta.get("versions")}

    limited = declare_limits(RecommendRequest, {"k": {"maximum": max_k}, "history": {"maxItems": max_history}},
                             whole={"anyOf": [{"required": ["user_id"], "properties": {"user_id": {"type": "string"}}},
                                              {"required": ["history"], "properties": {"history": {"type": "array"}}}]})

    @app.post("/v1/recommend", response_model=RecommendResponse, summary="top-k items for a user or a history",
              responses={401: {"description": "missing or wrong API key"},
                         413: {"description": "k or history too large"},
                         422: {"description": "malformed, or neither user_id nor history"}})
    @with_body(limited)
    def recommend(request: RecommendRequest) -> dict[str, Any]:
        if request.k > max_k:
            raise ApiError(413, "k_too_large", f"k is {request.k}, at most {max_k}")
        if request.history is not None and len(request.history) > max_history:
            raise ApiError(413, "history_too_long", f"history has {len(request.history)} items, at most {max_history}")
        if request.user_id is None and request.history is None:
            raise ApiError(422, "missing_user", "give user_id or history")
        result = recommender.recommend(request.user_id, history=request.history, k=request.k,
                                       exclude=request.exclude)
        return result.to_json()

    return app
