"""The monitor's dashboard and HTTP ingest endpoint, and the offline report.

``GET /`` is a self-contained page (no CDN: it must work offline) that polls
``GET /api/overview``; ``monitor report`` writes the same page with the data
embedded (``.html``) or the same chart drawn by matplotlib (``.png``).
``POST /v1/items`` ingests items through the same :class:`Ingestor` as the CLI.
(Needs the ``serve`` extra: pydantic comes with FastAPI.)
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..atomic import atomic_file
from ..errors import ConfigError
from .ingest import Ingestor, RejectedLine, parse_item
from .store import Store
from .windows import by_topic, fill_gaps, format_window

#: The largest id SQLite stores (a signed 64-bit integer): a larger one in a URL is a 422, not a crash.
SQLITE_MAX_INT = 2**63 - 1

PAGE = Path(__file__).with_name("dashboard.html")


def overview(store: Store, window: int, *, negative_limit: int = 15, recent_windows: int = 7) -> dict[str, Any]:
    """Everything the dashboard shows: per-topic series, alerts, most negative recent items."""
    series = {
        topic: [{"start": s.start, "volume": s.volume, "negatives": s.negatives,
                 "negative_share": round(s.negative_share, 4), "mean_sentiment": round(s.mean_sentiment, 4)}
                for s in fill_gaps(topic_stats, window)]
        for topic, topic_stats in by_topic(store.window_stats(window)).items()
    }
    last = store.last_ts()
    since = None if last is None else (last // window - recent_windows + 1) * window
    alerts = [a for a in store.alerts(limit=200) if a["window_seconds"] == window]
    return {"window": format_window(window), "window_seconds": window, "count": store.count(), "last_ts": last,
            "series": series, "alerts": alerts, "negative": store.most_negative(limit=negative_limit, since=since)}


def summary(store: Store, window: int, *, last: int = 7) -> dict[str, Any]:
    """Per topic, its last ``last`` windows: start, volume, negative share and mean sentiment."""
    topics = {t: [{"window_start": st.start, "volume": st.volume, "negative_share": round(st.negative_share, 4),
                   "mean_sentiment": round(st.mean_sentiment, 4)} for st in rows[-last:]]
              for t, rows in sorted(by_topic(store.window_stats(window)).items())}
    return {"window": format_window(window), "topics": topics}


def write_report(store: Store, window: int, output: str | Path) -> Path:
    """``.html``: the dashboard with the data embedded; ``.png``: a matplotlib chart."""
    output = Path(output)
    data = overview(store, window)
    suffix = output.suffix.lower()
    if suffix in (".html", ".htm"):
        page = dashboard_page()
        payload = json.dumps(data).replace("</", "<\\/")
        page = page.replace("<script>\n\"use strict\";", f"<script>window.LMWORKS_DATA = {payload};</script>\n"
                            "<script>\n\"use strict\";", 1)
        with atomic_file(output) as fh:
            fh.write(page)
    elif suffix == ".png":
        _png(data, output)
    else:
        raise ConfigError(f"{output}: report must end in .html or .png")
    return output


def _png(data: dict[str, Any], output: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.dates as mdates
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ConfigError("a .png report needs matplotlib: pip install 'lmworks[monitor]'") from err
    import datetime as _dt

    topics = sorted(data["series"])
    if not topics:
        raise ConfigError("no items in the store yet: nothing to chart")
    fig, axes = plt.subplots(len(topics), 1, figsize=(10, 1.8 * len(topics) + 0.6), sharex=True, squeeze=False)
    alert_windows = {(a["topic"], a["window_start"]) for a in data["alerts"]}
    for ax, topic in zip(axes[:, 0], topics):
        points = data["series"][topic]  # gaps (no items) are NaN, so the line breaks there
        times = [_dt.datetime.fromtimestamp(p["start"], _dt.timezone.utc) for p in points]
        ax.plot(times, [p["mean_sentiment"] if p["volume"] else float("nan") for p in points], color="#1f4e79",
                lw=1.8, marker="." if len(points) < 60 else None)
        flagged = [(t, p["mean_sentiment"]) for t, p in zip(times, points) if (topic, p["start"]) in alert_windows]
        if flagged:
            ax.scatter(*zip(*flagged), marker="^", s=70, color="#c62828", zorder=3, label="alert")
            ax.legend(loc="lower left", fontsize=8)
        ax.axhline(0, color="#9ca3af", lw=0.8)
        ax.set_ylim(-1.05, 1.05)
        ax.set_ylabel(topic, rotation=0, ha="right", va="center")
    axes[-1, 0].xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
    fig.suptitle(f"Mean sentiment per {data['window']} window ({data['count']} items)")
    fig.autofmt_xdate()
    fig.tight_layout()
    with atomic_file(output, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)


class ItemsRequest(BaseModel):
    """Stream items: each needs id, timestamp (ISO 8601) and text; source and topic are optional."""

    model_config = ConfigDict(extra="forbid")
    items: list[Any] = Field(description="objects with id, timestamp, text and optional source/topic")


def dashboard_page() -> str:
    """The dashboard's HTML, with the word-highlighting script the explanation panels share."""
    from ..explain.report import HIGHLIGHT_JS

    return PAGE.read_text(encoding="utf-8").replace("/*LM_HIGHLIGHT*/", HIGHLIGHT_JS, 1)


def create_monitor_app(store: Store, window: int, *, ingestor: Ingestor | None = None, api_key: str | None = None,
                       max_items: int = 1000, max_body_bytes: int = 4 << 20):
    """The FastAPI app: dashboard, overview API, explanations, and ``POST /v1/items`` when models are loaded."""
    from fastapi.responses import HTMLResponse

    from ..serve.common import ApiError, base_app, declare_limits, with_body
    from ..serve.metrics import ServerMetrics
    from .why import WhyExplainer

    app = base_app(title="lmworks opinion monitor", description="Topic and sentiment of a stream, with alerts.",
                   metrics=ServerMetrics(), api_key=api_key, max_body_bytes=max_body_bytes)
    lock = threading.Lock()
    page = dashboard_page()
    why = WhyExplainer(store, ingestor.classifier if ingestor else None)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def dashboard() -> str:
        return page

    @app.get("/healthz", summary="liveness")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "items": store.count(), "ingest": ingestor is not None}

    @app.get("/api/overview", summary="per-topic series, alerts and the most negative recent items")
    def api_overview() -> dict[str, Any]:
        return overview(store, window)

    @app.get("/v1/alerts", summary="stored alerts, newest first")
    def api_alerts(limit: int = 100) -> list[dict[str, Any]]:
        return store.alerts(limit=max(1, min(limit, 1000)))

    _add_why_routes(app, why)

    # A read-only monitor (no models) offers no ingest: the route stays out of its OpenAPI and
    # answers 503 with the reason, for a client that posts anyway.
    @app.post("/v1/items", summary="classify, store and alert on a batch of items",
              include_in_schema=ingestor is not None,
              responses={401: {"description": "missing or wrong API key"}, 413: {"description": "too many items"},
                         503: {"description": "no models loaded"}})
    @with_body(declare_limits(ItemsRequest, {"items": {"maxItems": max_items}}))
    def post_items(request: ItemsRequest) -> dict[str, Any]:
        if ingestor is None:
            raise ApiError(503, "no_models", "this monitor was started without --sentiment-model: read-only")
        if len(request.items) > max_items:
            raise ApiError(413, "too_many_items", f"{len(request.items)} items, at most {max_items} per request")
        parsed, rejected = [], []
        for index, raw in enumerate(request.items):
            try:
                parsed.append(parse_item(raw))
            except RejectedLine as err:
                rejected.append({"index": index, "reason": str(err)})
        with lock:
            before = (ingestor.stats.added, ingestor.stats.duplicates)
            alerts = ingestor.add(parsed)
            added = ingestor.stats.added - before[0]
            duplicates = ingestor.stats.duplicates - before[1]
        # Committed before this answer: a 200 means the items are stored.
        return {"added": added, "duplicates": duplicates, "rejected": rejected, "alerts": alerts}

    return app


def _add_why_routes(app: Any, why: Any) -> None:
    """``GET /api/items/{id}/why`` and ``GET /api/alerts/{id}/why``: the dashboard's explanation panels."""
    from fastapi import Path as PathParam

    from ..serve.common import ApiError
    from .why import NotFound

    def answer(call: Any) -> dict[str, Any]:
        try:
            return call()
        except NotFound as err:
            raise ApiError(404, "not_found", str(err)) from err
        except ConfigError as err:
            raise ApiError(503, "no_model", str(err)) from err

    @app.get("/api/items/{item_id}/why", summary="the words that made an item's sentiment",
             responses={404: {"description": "no such item"}, 503: {"description": "no sentiment model known"}})
    def item_why(item_id: str) -> dict[str, Any]:
        return answer(lambda: why.item(item_id))

    @app.get("/api/alerts/{alert_id}/why", summary="the words that drove an alert window's negative share",
             responses={404: {"description": "no such alert"}, 503: {"description": "no sentiment model known"}})
    def alert_why(alert_id: int = PathParam(ge=1, le=SQLITE_MAX_INT)) -> dict[str, Any]:
        return answer(lambda: why.alert(alert_id))
