"""The pieces every lmworks HTTP service shares: JSON errors, limits, API key, metrics.

The classifier, assistant, monitor and recommender services are all FastAPI apps
built with :func:`base_app`, so they answer errors, authenticate and report
metrics the same way. Errors are always ``{"error": {"code", "message"}}`` with a
4xx status; an unexpected exception is logged and answered 500 without details.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import ConfigError
from ..runtime import lmworks_version
from .metrics import ServerMetrics

LOGGER = logging.getLogger("lmworks")

#: Endpoints that stay open when an API key is required (probes, scrapers and the API docs).
PUBLIC_PATHS = frozenset({"/healthz", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
#: Where the docs pages' scripts and styles are served from (no CDN: the services run offline).
DOCS_ASSETS = "/docs-assets"


class ApiError(Exception):
    """An error answered as JSON with ``status``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The one error shape of every lmworks service."""
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def api_key_from_env(variable: str | None) -> str | None:
    """The key held in environment variable ``variable`` (never on the command line, where ``ps`` shows it)."""
    if not variable:
        return None
    key = os.environ.get(variable, "")
    if not key:
        raise ConfigError(f"--api-key-env {variable}: the environment variable is not set or empty")
    return key


class BodyLimit:
    """ASGI middleware: refuse bodies over ``max_bytes`` with 413, declared or streamed.

    Checking ``Content-Length`` alone is not enough, a chunked upload has none; the
    body is counted as it arrives and the request is cut off at the limit.
    """

    def __init__(self, app, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send) -> None:  # noqa: D102 - ASGI entry point
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_big(scope, receive, send)
            return
        seen = 0
        started = False

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # FastAPI turns any error while reading the body into a 400; the flag
                    # lets the error handler answer what it really is.
                    scope["lmworks.body_too_large"] = self.max_bytes
                    raise _BodyTooLarge
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._too_big(scope, receive, send)

    async def _too_big(self, scope, receive, send) -> None:
        await error_response(413, "body_too_large", f"request body exceeds {self.max_bytes} bytes")(
            scope, receive, send)


class _BodyTooLarge(Exception):
    pass


def base_app(
    *,
    title: str,
    description: str,
    metrics: ServerMetrics,
    version: str | None = None,
    api_key: str | None = None,
    max_body_bytes: int = 1 << 20,
    lifespan: Callable[[FastAPI], Any] | None = None,
) -> FastAPI:
    """A FastAPI app with lmworks' error shape, API-key check, metrics and body limit (version: lmworks').

    ``/docs`` (Swagger UI) and ``/redoc`` load their scripts from this server
    (``fastapi-offline``'s copies), not from a CDN a closed network cannot reach.
    """
    from fastapi_offline import FastAPIOffline

    app = FastAPIOffline(title=title, description=description, version=version or lmworks_version(),
                         lifespan=lifespan, static_url=DOCS_ASSETS)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for e in exc.errors()[:5]:
            where = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
            problems.append(f"{where}: {e.get('msg', 'invalid')}")
        return error_response(422, "invalid_request", "; ".join(problems))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        limit = request.scope.get("lmworks.body_too_large")
        if limit is not None:
            return error_response(413, "body_too_large", f"request body exceeds {limit} bytes")
        if exc.status_code == 400:  # FastAPI could not parse the body (not JSON, not UTF-8): as malformed JSON
            return error_response(422, "invalid_request", f"body: {exc.detail}")
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        # Starlette names the allowed methods of a 405 in ``Allow`` (RFC 9110 requires it): keep it.
        return error_response(exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        LOGGER.exception("unhandled error on %s", request.url.path)
        return error_response(500, "internal_error", "internal server error (logged)")

    @app.get("/metrics", include_in_schema=False)
    async def _metrics() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.add_middleware(AuthAndMetrics, api_key=api_key, metrics=metrics)
    return app


class AuthAndMetrics:
    """ASGI middleware: API-key check on non-public paths, request count and latency.

    Plain ASGI rather than Starlette's ``BaseHTTPMiddleware``, which costs a task group
    per request, a measurable share of a small CPU's budget at hundreds of requests/s.
    """

    def __init__(self, app, api_key: str | None, metrics: ServerMetrics) -> None:
        self.app, self.api_key, self.metrics = app, api_key, metrics

    async def __call__(self, scope, receive, send) -> None:  # noqa: D102 - ASGI entry point
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def tracking_send(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            if self.api_key is not None and not _public(scope["path"]) and not _authorised(scope, self.api_key):
                response = error_response(
                    401, "unauthorized",
                    "missing or wrong API key (send 'Authorization: Bearer KEY' or 'X-API-Key: KEY')",
                    headers={"WWW-Authenticate": "Bearer"},
                )
                await response(scope, receive, tracking_send)
            else:
                await self.app(scope, receive, tracking_send)
        finally:
            # the route template, not the raw path: unknown paths must not create new series
            route = getattr(scope.get("route"), "path", "unmatched")
            if route != "/metrics":
                self.metrics.requests.labels(route, str(status["code"])).inc()
                self.metrics.latency.labels(route).observe(time.perf_counter() - started)


def _public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(DOCS_ASSETS + "/")


def _authorised(scope, key: str) -> bool:
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
    given = headers.get("x-api-key", "")
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    return bool(given) and hmac.compare_digest(given.encode(), key.encode())


#: A JSON-schema pattern a string matches when it holds something besides whitespace (unanchored, as
#: JSON Schema's ``pattern`` is): what the services mean by "not empty". Python's and ECMA-262's
#: whitespace differ (Python counts U+001C-U+001F and U+0085, ECMA U+FEFF), so the class names
#: both: a text that either language calls blank is blank, and the schema and the server agree.
NOT_BLANK = r"[^\s\x1c-\x1f\x85\ufeff]"


def is_blank(text: str) -> bool:
    """True when ``text`` has nothing but whitespace (in Python's or JSON Schema's sense): :data:`NOT_BLANK`."""
    return re.search(NOT_BLANK, text) is None


def declare_limits(model: type[BaseModel], limits: dict[str, dict[str, Any]],
                   whole: dict[str, Any] | None = None) -> type[BaseModel]:
    """``model`` whose OpenAPI schema states the limits the route enforces itself, per field.

    ``limits`` maps a field to JSON-schema keywords, e.g. ``{"texts": {"maxItems": 32, "items":
    {"maxLength": 2000, "pattern": NOT_BLANK}}}``. Only the *schema* changes: the route still
    checks and answers with its own error codes (413 ``too_many_texts``, 422 ``empty_text``),
    but a client or a tool such as Schemathesis reading ``/openapi.json`` now knows which
    requests are valid, instead of meeting limits the schema never mentioned. ``whole`` adds
    keywords to the object itself (e.g. ``anyOf`` of required fields).
    """
    def extra(schema: dict[str, Any]) -> None:
        schema.update(whole or {})
        for name, keywords in limits.items():
            field = schema["properties"][name]
            target = next((option for option in field.get("anyOf", []) if option.get("type") == "array"), field)
            for key, value in keywords.items():
                if isinstance(value, dict):
                    target.setdefault(key, {}).update(value)
                else:
                    target[key] = value

    config = ConfigDict(**{**model.model_config, "json_schema_extra": extra})
    return type(model.__name__, (model,), {"model_config": config, "__doc__": model.__doc__})


def with_body(model: type[BaseModel]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: the route's ``request`` parameter is read as ``model`` (e.g. one made by :func:`declare_limits`).

    Goes *under* ``@app.post(...)``: FastAPI reads the annotation when the route is added,
    and a class made per app cannot be named in the source's (string) annotations.
    """
    def apply(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.__annotations__["request"] = model
        return fn

    return apply
