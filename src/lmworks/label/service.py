"""The labelling page and its JSON API (``lmworks label start`` serves it).

``GET /api/next`` -> ``{"id", "text", "suggestion", "confidence", ...}``; ``POST /api/labels``
with ``{"id", "label"}`` or ``{"id", "skip": true}``; ``POST /api/undo``; ``GET /api/status``.
The annotator is the body's ``annotator`` field, else the ``X-Annotator`` header, else
``default``. A label is committed to the project's SQLite file before the 200 goes out.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any

from fastapi import Header
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from ..errors import ConfigError
from ..serve.common import ApiError, base_app, declare_limits, with_body
from ..serve.metrics import ServerMetrics
from .loop import Strategy
from .project import LabelProject, NotFound

PAGE = Path(__file__).with_name("page.html")
LOCK_FILE = "server.lock"
DEFAULT_ANNOTATOR = "default"
Name = Field(default=None, max_length=64, description="who labels (default: the X-Annotator header, else "
             "'default')")


class LabelRequest(BaseModel):
    """One answer: a label for the text ``id``, or a skip."""

    model_config = ConfigDict(extra="forbid")
    id: int = Field(description="the id GET /api/next gave")
    label: StrictStr | None = Field(default=None, description="one of the project's labels")
    skip: StrictBool = Field(default=False, description="true: pass on this text (no label)")
    annotator: StrictStr | None = Name


class UndoRequest(BaseModel):
    """Take back the annotator's latest label or skip."""

    model_config = ConfigDict(extra="forbid")
    annotator: StrictStr | None = Name


class StrategyRequest(BaseModel):
    """Switch the query strategy."""

    model_config = ConfigDict(extra="forbid")
    strategy: StrictStr = Field(description="margin, entropy, random or diverse")


def _who(body: str | None, header: str | None) -> str:
    return (body or header or DEFAULT_ANNOTATOR).strip() or DEFAULT_ANNOTATOR


def create_label_app(project: LabelProject, *, api_key: str | None = None):
    """The FastAPI app of one project: the page, next/labels/undo/status/history/conflicts/strategy."""
    app = base_app(title="lmworks labelling", description="Active-learning labelling of a text pool.",
                   metrics=ServerMetrics(), api_key=api_key, max_body_bytes=64 << 10)
    page = PAGE.read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> str:
        return page

    @app.get("/healthz", summary="liveness")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "pool": len(project.ids)}

    _asking_routes(app, project)
    _reading_routes(app, project)
    return app


def answer(call: Any) -> Any:
    """Run ``call``; a missing item is a 404, a bad label or name a 422, in lmworks' error shape."""
    try:
        return call()
    except NotFound as err:
        raise ApiError(404, "not_found", str(err)) from err
    except ConfigError as err:
        code = "unknown_label" if "is not one of" in str(err) else "invalid_request"
        raise ApiError(422, code, str(err)) from err


def _asking_routes(app: Any, project: LabelProject) -> None:
    @app.get("/api/next", summary="the text to label now (id null when the pool is done for this annotator)")
    def next_text(annotator: str | None = None, x_annotator: str | None = Header(default=None)) -> dict[str, Any]:
        card = answer(lambda: project.next(_who(annotator, x_annotator)))
        return card or {"id": None, "text": None, "suggestion": None, "confidence": None, "done": True}

    labelled = declare_limits(LabelRequest, {"label": {"enum": [*project.config.labels, None]}}, whole={"anyOf": [
        {"required": ["label"], "properties": {"label": {"type": "string"}}},
        {"required": ["skip"], "properties": {"skip": {"const": True}}}]})

    @app.post("/api/labels", summary="label (or skip) a text; committed before the answer",
              responses={401: {"description": "missing or wrong API key"}, 404: {"description": "no such text"},
                         422: {"description": "unknown label, or neither a label nor skip"}})
    @with_body(labelled)
    def post_label(request: LabelRequest, x_annotator: str | None = Header(default=None)) -> dict[str, Any]:
        if not request.skip and request.label is None:
            raise ApiError(422, "invalid_request", "give a label, or skip: true")
        who = _who(request.annotator, x_annotator)
        return answer(lambda: project.label(request.id, who, request.label, skip=request.skip))

    @app.post("/api/undo", summary="take back the annotator's latest label or skip",
              responses={404: {"description": "nothing to undo"}})
    def post_undo(request: UndoRequest, x_annotator: str | None = Header(default=None)) -> dict[str, Any]:
        return answer(lambda: project.undo(_who(request.annotator, x_annotator)))


def _reading_routes(app: Any, project: LabelProject) -> None:
    @app.get("/api/status", summary="counts, strategy, accuracy estimate (random audit sample), agreement")
    def status() -> dict[str, Any]:
        return project.status()

    @app.get("/api/history", summary="the accuracy estimate after each retrain, with its 95% interval")
    def history() -> list[dict[str, Any]]:
        return project.store.estimates()

    @app.get("/api/conflicts", summary="texts whose annotators disagree")
    def conflict_list() -> list[dict[str, Any]]:
        return project.conflict_list()

    @app.put("/api/strategy", summary="switch the query strategy")
    @with_body(declare_limits(StrategyRequest, {"strategy": {"enum": [m.value for m in Strategy]}}))
    def put_strategy(request: StrategyRequest) -> dict[str, Any]:
        answer(lambda: project.set_strategy(request.strategy))
        return {"strategy": request.strategy}


class ServerLock:
    """An exclusive lock on the project directory while a server runs (released by the OS if it dies)."""

    def __init__(self, directory: str | Path) -> None:
        self.path = Path(directory) / LOCK_FILE
        self.fh: Any = None

    def acquire(self, url: str) -> ServerLock:
        """Take the lock, or raise :class:`ConfigError` naming the server that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held open for the server's lifetime
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "{}"
            fh.close()
            info = json.loads(holder) if holder.startswith("{") else {}
            raise ConfigError(f"{self.path.parent}: another label server is running on this project "
                              f"(pid {info.get('pid', '?')}, {info.get('url', '?')}); stop it first") from None
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "url": url}))
        fh.flush()
        self.fh = fh
        return self

    def release(self) -> None:
        """Let go of the lock."""
        if self.fh is not None:
            fcntl.flock(self.fh, fcntl.LOCK_UN)
            self.fh.close()
            self.fh = None
