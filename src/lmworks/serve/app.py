"""The classification REST service: ``lmworks serve MODEL_DIR``.

``POST /v1/classify`` answers ``{"texts": [...]}`` with one label and the scores of
every class per text; ``POST /v1/explain`` answers the same request with the words
behind each decision (:mod:`lmworks.explain`), under the same limits and key; concurrent
requests are coalesced into micro-batches (:mod:`.batcher`). ``GET /healthz``, ``GET /v1/model`` and ``GET /metrics``
(Prometheus) complete it; the OpenAPI schema is at ``/openapi.json``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from ..predictor import Predictor
from .batcher import MicroBatcher, Overloaded
from .common import NOT_BLANK, ApiError, base_app, declare_limits, is_blank, with_body
from .metrics import ServerMetrics


@dataclass
class ServeConfig:
    """Limits and batching of the classification service.

    Attributes
    ----------
    max_texts:
        Texts one request may carry (413 beyond).
    max_chars:
        Characters one text may have (413 beyond); the model reads at most
        ``max_length`` tokens anyway, longer texts are truncated and flagged.
    max_body_bytes:
        Request body size (413 beyond).
    max_wait_ms:
        How long a request may wait for others to share its micro-batch. 0 (default):
        never wait; requests that arrive while the model runs still share the next
        batch. Measured open-loop (``docs/research-log/benchmarks-history.md``), waiting 5 ms moved the
        highest rate with p99 <= 100 ms from 35 % to 30 % of the offline rate and gained
        no throughput at 8 or 32 closed-loop clients.
    max_batch_tokens:
        Token budget of one micro-batch.
    api_key:
        Required key for ``/v1/*`` (``None``: open).
    threads:
        Inference threads of the process (``None``: the usable CPUs; with several
        workers, give each its share).
    max_image_bytes:
        Size of one image of a multimodal model's request (413 beyond).
    max_queue:
        Texts that may wait for the model; a request beyond it is answered 503 with
        ``Retry-After`` at once (load shedding). The default equals ``max_texts``: one
        full request may always wait. ``None``: no bound (latency grows with overload).
    """

    max_texts: int = 256
    max_chars: int = 20_000
    max_body_bytes: int = 2 << 20
    max_wait_ms: float = 0.0
    max_batch_tokens: int = 8192
    api_key: str | None = None
    threads: int | None = None
    max_image_bytes: int = 5 << 20
    max_queue: int | None = 256


class ClassifyRequest(BaseModel):
    """Texts to classify."""

    model_config = ConfigDict(extra="forbid")
    texts: list[StrictStr] = Field(min_length=1, description="texts to classify, each non-empty")


class Prediction(BaseModel):
    """One text's answer."""

    label: str | list[str] = Field(description="the label (a list of labels for multi-label models)")
    scores: dict[str, float] = Field(description="probability of every label")
    truncated: bool = Field(description="the text was longer than the model's max_length and was cut")


class ClassifyResponse(BaseModel):
    """Answers, in the order of the request's texts."""

    model: str
    predictions: list[Prediction]


class ExplainRequest(BaseModel):
    """Texts to explain, and optionally the class to explain instead of the predicted one."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    texts: list[StrictStr] = Field(min_length=1, description="texts to explain, each non-empty")
    target: StrictStr | None = Field(default=None, alias="class",
                                     description="explain this class for every text (default: the predicted one)")


class WordExplanation(BaseModel):
    """Why one text got its label: one score per word, positive where the word supports ``label``."""

    model_config = ConfigDict(extra="allow")
    label: str = Field(description="the explained class (the prediction unless 'class' was given)")
    predicted: str | list[str] = Field(description="the model's decision")
    probability: float = Field(description="the model's probability of label")
    words: list[str] = Field(description="the text's words (Chinese: characters)")
    scores: list[float] = Field(description="one score per word; positive supports label")
    method: str = Field(description="how the scores were computed (integrated_gradients, tfidf_exact, blend, "
                        "occlusion)")
    truncated: bool = Field(description="the text was longer than the model reads; words past the limit score 0")
    words_read: int = Field(description="words within the model's token limit")


class ExplainResponse(BaseModel):
    """Explanations, in the order of the request's texts."""

    model: str
    explanations: list[WordExplanation]


def build_app(model_dir: str | Path, config: ServeConfig) -> FastAPI:
    """Load ``model_dir`` and build its app: what every worker process runs (module-level, so it pickles)."""
    return create_app(Predictor.load(model_dir, num_threads=config.threads), config)


def create_app(predictor: Predictor, config: ServeConfig | None = None) -> FastAPI:
    """The FastAPI app serving ``predictor``."""
    config = config or ServeConfig()
    metrics = ServerMetrics()

    def infer(texts: list[str], tokens: list[int]) -> list[dict[str, Any]]:
        results = predictor.classify(texts, token_counts=tokens)
        metrics.texts.inc(len(results))
        metrics.truncated.inc(sum(r["truncated"] for r in results))
        return results

    batcher = MicroBatcher(infer, max_wait_ms=config.max_wait_ms, max_batch_tokens=config.max_batch_tokens,
                           max_tokens_per_text=predictor.max_length, on_batch=metrics.observe_batch,
                           max_queue=config.max_queue)
    # Explanations cost a forward and backward pass per interpolation step: their own batches, smaller.
    explainer = MicroBatcher(lambda items, tokens: _explain_batch(predictor, items), max_wait_ms=config.max_wait_ms,
                             max_batch_tokens=max(predictor.max_length, config.max_batch_tokens // EXPLAIN_COST),
                             max_tokens_per_text=predictor.max_length, max_queue=config.max_queue)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        await explainer.start()
        yield
        await batcher.stop()  # uvicorn has let in-flight requests finish by now
        await explainer.stop()

    app = base_app(
        title="lmworks classifier",
        description=f"Text classification with the model '{predictor.name}' ({predictor.task}, "
        f"labels: {', '.join(predictor.labels)}).",
        metrics=metrics, api_key=config.api_key,
        max_body_bytes=config.max_body_bytes, lifespan=lifespan,
    )
    limits = {"max_texts": config.max_texts, "max_chars": config.max_chars, "max_body_bytes": config.max_body_bytes}

    @app.get("/healthz", summary="liveness and readiness")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "model": predictor.name}

    @app.get("/v1/model", summary="labels, task, metrics and versions of the served model")
    async def model_info() -> dict[str, Any]:
        return {**predictor.describe(), "limits": limits}

    if predictor.reads_rows:
        from .rows import add_rows_route

        add_rows_route(app, predictor, max_rows=config.max_texts, max_image_bytes=config.max_image_bytes,
                       metrics=metrics)
    else:
        _add_texts_route(app, predictor, config, batcher)
        _add_explain_route(app, predictor, config, explainer)
    return app


#: An explanation's cost in forward passes of its text (Integrated Gradients' default steps).
EXPLAIN_COST = 8
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or wrong API key"},
    413: {"description": "too many texts, a text too long, or body too large"},
    422: {"description": "malformed JSON, wrong types, empty list, empty text or unknown class"},
    503: {"description": "overloaded: the queue is full; retry after the Retry-After seconds"},
}


def _check_texts(texts: list[str], config: ServeConfig) -> None:
    """The limits every text route enforces, as one-line API errors naming the text."""
    if len(texts) > config.max_texts:
        raise ApiError(413, "too_many_texts", f"{len(texts)} texts, at most {config.max_texts} per request")
    for i, text in enumerate(texts):
        if len(text) > config.max_chars:
            raise ApiError(413, "text_too_long", f"texts[{i}] has {len(text)} characters, at most {config.max_chars}")
        if is_blank(text):
            raise ApiError(422, "empty_text", f"texts[{i}] is empty")


def _explain_batch(predictor: Predictor, items: list[tuple[str, str | None]]) -> list[dict[str, Any]]:
    """Explain a micro-batch: texts asking for the same class go through the model together."""
    out: list[dict[str, Any] | None] = [None] * len(items)
    for target in dict.fromkeys(t for _, t in items):
        index = [i for i, (_, t) in enumerate(items) if t == target]
        for i, e in zip(index, predictor.explain([items[i][0] for i in index], target=target)):
            out[i] = e.to_dict()
    return [o for o in out if o is not None]


def text_limits(config: ServeConfig) -> dict[str, Any]:
    """The ``texts`` field's declared limits: what :func:`_check_texts` enforces."""
    return {"maxItems": config.max_texts, "items": {"minLength": 1, "maxLength": config.max_chars,
                                                    "pattern": NOT_BLANK}}


def _add_explain_route(app: FastAPI, predictor: Predictor, config: ServeConfig, explainer: MicroBatcher) -> None:
    limited = declare_limits(ExplainRequest, {"texts": text_limits(config),
                                              "class": {"enum": [*predictor.labels, None]}})

    @app.post("/v1/explain", response_model=ExplainResponse, summary="which words made each decision",
              responses=_ERRORS)
    @with_body(limited)
    async def explain(request: ExplainRequest) -> dict[str, Any]:
        texts = request.texts
        _check_texts(texts, config)
        if request.target is not None and request.target not in predictor.labels:
            raise ApiError(422, "unknown_class",
                           f"class {request.target!r} is not one of the model's: {', '.join(predictor.labels)}")
        try:
            results = await explainer.submit([(t, request.target) for t in texts], predictor.token_counts(texts))
        except Overloaded as err:
            raise ApiError(503, "overloaded", str(err), headers={"Retry-After": str(err.retry_after)}) from err
        return {"model": predictor.name, "explanations": results}


def _add_texts_route(app: FastAPI, predictor: Predictor, config: ServeConfig, batcher: MicroBatcher) -> None:
    @app.post("/v1/classify", response_model=ClassifyResponse, summary="classify texts", responses=_ERRORS)
    @with_body(declare_limits(ClassifyRequest, {"texts": text_limits(config)}))
    async def classify(request: ClassifyRequest) -> dict[str, Any]:
        texts = request.texts
        _check_texts(texts, config)
        try:
            results = await batcher.submit(texts, predictor.token_counts(texts))
        except Overloaded as err:
            raise ApiError(503, "overloaded", str(err), headers={"Retry-After": str(err.retry_after)}) from err
        return {"model": predictor.name, "predictions": results}
