"""HTTP service of the advisor: ``POST /v1/allocate`` in the style of the other services.

Same error shape, API key, body limit and Prometheus metrics as ``lmworks serve``
(:func:`lmworks.serve.common.base_app`). Answers are computed from the history the
advisor holds: ``as_of`` picks the close, ``risk`` the profile (or a numeric risk
aversion, answered by the nearest trained profile).
"""

from __future__ import annotations

import datetime
import re
import threading
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

from ..errors import LmworksError
from ..serve.common import ApiError, base_app, declare_limits, with_body
from ..serve.metrics import ServerMetrics
from .advisor import Advisor

#: ``as_of``: an ISO calendar date, nothing else (``pd.Timestamp`` would also read "now" or "2021").
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class AllocateRequest(BaseModel):
    """A risk profile (or number) and optionally a date and the current weights."""

    model_config = ConfigDict(extra="forbid")
    risk: StrictStr | StrictFloat | StrictInt | None = Field(
        default=None, description="conservative, moderate, aggressive, or a risk aversion > 0 (default: the "
        "advisor's default profile)")
    as_of: StrictStr | None = Field(default=None, description="ISO date of the close to decide at (default: last)")
    current_weights: dict[StrictStr, float] | None = Field(
        default=None, description="the portfolio now, per asset and 'cash', as weights or amounts (scaled to sum "
        "to 1; nothing held: all cash; default: all cash)")


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


def _as_of(text: str | None, advisor: Advisor) -> str | None:
    """``as_of`` as a close the advisor can answer for: 422 for a malformed date, 404 for one it cannot answer."""
    if text is None:
        return None
    try:
        day = datetime.date.fromisoformat(text) if DATE.fullmatch(text) else None
    except ValueError:
        day = None
    if day is None:
        raise ApiError(422, "invalid_request", f"as_of: {text!r} is not a date (YYYY-MM-DD)")
    last = advisor.prices_.dates[-1].date()  # the close it was trained up to, and the last one it holds
    if day < last:
        raise ApiError(404, "no_allocation", f"as_of {day} is before the close this advisor was trained up to "
                       f"({last}): its agents were chosen on later prices")
    if day > last:
        raise ApiError(404, "no_allocation", f"as_of {day} is after the last close this advisor holds ({last})")
    return text


def _current(weights: dict[str, float] | None, assets: list[str]) -> Any:
    """The portfolio now as weights summing to 1 (amounts are scaled; nothing held is all cash)."""
    import numpy as np

    if weights is None:
        return None
    unknown = sorted(set(weights) - {*assets, "cash"})
    if unknown:
        raise ApiError(422, "unknown_asset", f"current_weights names unknown asset(s): {unknown}")
    current = np.asarray([weights.get(a, 0.0) for a in [*assets, "cash"]], dtype=float)
    if (current < 0).any() or not np.isfinite(current).all():
        raise ApiError(422, "bad_weights", "current_weights must be numbers >= 0")
    return current / current.sum() if current.sum() > 0 else np.r_[np.zeros(len(assets)), 1.0]


def create_advisor_app(advisor: Advisor, *, api_key: str | None = None, max_body_bytes: int = 64 * 1024) -> FastAPI:
    """The FastAPI app of a trained advisor."""
    app = base_app(title="lmworks advisor", description="Target portfolio weights for a client's risk profile.",
                   metrics=ServerMetrics(), api_key=api_key, max_body_bytes=max_body_bytes)
    lock = threading.Lock()  # the agents' networks are not meant to run concurrently
    assets = advisor.prices_.assets

    @app.get("/healthz", summary="liveness")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "profiles": list(advisor.agents_), "assets": len(assets)}

    profiles = list(advisor.agents_)
    limited = declare_limits(AllocateRequest, {
        "risk": {"anyOf": [{"type": "string", "enum": profiles}, {"type": "number", "exclusiveMinimum": 0},
                           {"type": "null"}]},
        "as_of": {"anyOf": [{"type": "string", "format": "date", "pattern": DATE.pattern}, {"type": "null"}]},
        "current_weights": {"anyOf": [{"type": "object", "propertyNames": {"enum": [*assets, "cash"]},
                                       "additionalProperties": {"type": "number", "minimum": 0}},
                                      {"type": "null"}]}})

    @app.post("/v1/allocate", response_model=AllocateResponse, summary="target weights for a risk profile",
              responses={401: {"description": "missing or wrong API key"},
                         404: {"description": "no allocation for that date (before training ended, or after the "
                               "prices held)"},
                         422: {"description": "unknown profile, malformed date or weights"}})
    @with_body(limited)
    def allocate(request: AllocateRequest) -> dict[str, Any]:
        current = _current(request.current_weights, assets)
        as_of = _as_of(request.as_of, advisor)
        try:
            with lock:
                return advisor.allocate(as_of=as_of, risk=request.risk, current=current)
        except (LmworksError, ValueError) as err:
            raise ApiError(422, "invalid_request", str(err)) from err

    return app
