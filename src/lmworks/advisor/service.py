"""HTTP service of the advisor: ``POST /v1/allocate`` in the style of the other services.

Same error shape, API key, body limit and Prometheus metrics as ``lmworks serve``
(:func:`lmworks.serve.common.base_app`). Answers are computed from the history the
advisor holds: ``as_of`` picks the close, ``risk`` the profile (or a numeric risk
aversion, answered by the nearest trained profile).
"""

from __future__ import annotations

import threading
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

from ..errors import LmworksError
from ..serve.common import ApiError, base_app
from ..serve.metrics import ServerMetrics
from .advisor import Advisor


class AllocateRequest(BaseModel):
    """A risk profile (or number) and optionally a date and the current weights."""

    model_config = ConfigDict(extra="forbid")
    risk: StrictStr | StrictFloat | StrictInt | None = Field(
        default=None, description="conservative, moderate, aggressive, or a risk aversion > 0 (default: the "
        "advisor's default profile)")
    as_of: StrictStr | None = Field(default=None, description="ISO date of the close to decide at (default: last)")
    current_weights: dict[StrictStr, float] | None = Field(
        default=None, description="the portfolio now, per asset and 'cash' (default: all cash)")


class AllocateResponse(BaseModel):
    """Target weights with what the agent saw."""

    as_of: str
    profile: str
    risk_aversion: float
    agent: str
    asset_share_band: list[float]
    weights: dict[str, float]
    strategic_mix: dict[str, str | float] | None = None
    features: dict[str, dict[str, float]]
    rule: str | None = None
    note: str | None = None


def create_advisor_app(advisor: Advisor, *, api_key: str | None = None, max_body_bytes: int = 64 * 1024) -> FastAPI:
    """The FastAPI app of a trained advisor."""
    import numpy as np

    app = base_app(title="lmworks advisor", description="Target portfolio weights for a client's risk profile.",
                   metrics=ServerMetrics(), api_key=api_key, max_body_bytes=max_body_bytes)
    lock = threading.Lock()  # the agents' networks are not meant to run concurrently
    assets = advisor.prices_.assets

    @app.get("/healthz", summary="liveness")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "profiles": list(advisor.agents_), "assets": len(assets)}

    @app.post("/v1/allocate", response_model=AllocateResponse, summary="target weights for a risk profile",
              responses={422: {"description": "unknown profile, bad date, malformed weights"}})
    def allocate(request: AllocateRequest) -> dict[str, Any]:
        current = None
        if request.current_weights is not None:
            unknown = sorted(set(request.current_weights) - {*assets, "cash"})
            if unknown:
                raise ApiError(422, "unknown_asset", f"current_weights names unknown asset(s): {unknown}")
            current = np.asarray([request.current_weights.get(a, 0.0) for a in [*assets, "cash"]])
            if (current < 0).any() or abs(current.sum() - 1.0) > 1e-6:
                raise ApiError(422, "bad_weights", "current_weights must be >= 0 and sum to 1")
        try:
            with lock:
                return advisor.allocate(as_of=request.as_of, risk=request.risk, current=current)
        except (LmworksError, ValueError) as err:
            raise ApiError(422, "invalid_request", str(err)) from err

    return app
