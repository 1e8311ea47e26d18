"""HTTP service of the assistant: ``POST /v1/ask``, a chat page, and a review log.

Every exchange is logged to SQLite for review: time, question text, answer id,
confidence, hand-off and reason. Nothing else about the caller is stored (no IP
address, headers or keys), so the log holds no personal data beyond what the user
typed into the question.
"""

from __future__ import annotations

import datetime as _dt
import sqlite3
import threading
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from ..serve.common import NOT_BLANK, ApiError, base_app, declare_limits, is_blank, with_body
from ..serve.metrics import ServerMetrics
from .assistant import Assistant

SCHEMA = """
CREATE TABLE IF NOT EXISTS exchanges (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    question TEXT NOT NULL,
    answer_id INTEGER,
    matched_question TEXT,
    confidence REAL NOT NULL,
    handoff INTEGER NOT NULL,
    reason TEXT
)
"""


class ExchangeLog:
    """Append-only SQLite log of questions and the assistant's decisions."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(SCHEMA)
        self._conn.commit()
        self._lock = threading.Lock()

    def record(self, question: str, result: dict[str, Any]) -> None:
        """Store one exchange (committed before the answer is returned)."""
        at = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")
        with self._lock:
            self._conn.execute(
                "INSERT INTO exchanges (at, question, answer_id, matched_question, confidence, handoff, reason) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (at, question, result["answer_id"], result["matched_question"], result["confidence"],
                 int(result["handoff"]), result["reason"]),
            )
            self._conn.commit()

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()


class AskRequest(BaseModel):
    """A customer's question."""

    model_config = ConfigDict(extra="forbid")
    question: StrictStr = Field(min_length=1, description="the question, in any language the encoder reads")
    explain: StrictBool = Field(default=False, description="also return the words that led to the match or hand-off")


class AskExplanation(BaseModel):
    """Each word's share of the match score: how much the score against the matched entry drops without it."""

    words: list[str]
    scores: list[float]
    method: str
    entry: int | None
    matched_question: str | None = None
    confidence: float | None = None
    threshold: float | None = None


class Option(BaseModel):
    """A candidate answer."""

    id: int
    question: str
    answer: str
    intent: str | None
    score: float


class AskResponse(BaseModel):
    """The answer, or a hand-off with suggestions."""

    handoff: bool
    reason: str | None
    answer: str | None
    matched_question: str | None
    intent: str | None
    answer_id: int | None
    confidence: float
    alternatives: list[Option]
    suggestions: list[Option]
    predicted_intent: str | None = None
    explanation: AskExplanation | None = Field(default=None, description="present when the request asked for it")


def create_assistant_app(assistant: Assistant, *, log_db: str | Path, api_key: str | None = None,
                         max_chars: int = 2000, max_body_bytes: int = 64 * 1024) -> FastAPI:
    """The FastAPI app of the assistant."""
    import contextlib

    log = ExchangeLog(log_db)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        log.close()

    app = base_app(title="lmworks assistant", description="Answers from a knowledge base, or a hand-off.",
                   metrics=ServerMetrics(), api_key=api_key,
                   max_body_bytes=max_body_bytes, lifespan=lifespan)

    @app.get("/healthz", summary="liveness")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "entries": len(assistant.entries)}

    @app.post("/v1/ask", response_model=AskResponse, summary="answer a question or hand off",
              responses={401: {"description": "missing or wrong API key"}, 413: {"description": "question too long"},
                         422: {"description": "empty or malformed"}})
    @with_body(declare_limits(AskRequest, {"question": {"maxLength": max_chars, "pattern": NOT_BLANK}}))
    def ask(request: AskRequest) -> dict[str, Any]:
        question = request.question
        if len(question) > max_chars:
            raise ApiError(413, "question_too_long", f"question has {len(question)} characters, at most {max_chars}")
        if is_blank(question):
            raise ApiError(422, "empty_question", "question is empty")
        result = assistant.ask(question)
        log.record(question, result)
        if request.explain:
            result["explanation"] = assistant.explain(question, result)
        return result

    from ..explain.report import HIGHLIGHT_JS

    chat_page = (Path(__file__).parent / "chat.html").read_text(encoding="utf-8").replace("/*LM_HIGHLIGHT*/",
                                                                                       HIGHLIGHT_JS, 1)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return chat_page

    return app
