"""Read a knowledge base of question/answer pairs, and evaluation queries.

Accepted layouts: CSV/JSONL/Parquet with columns ``question``, ``answer`` and optional
``intent``; YAML as a list of such mappings (or ``{"faq": [...]}``); and the
chatterbot-corpus YAML layout (``categories`` + ``conversations``: lists whose first
item is the question and second the answer; the category becomes the intent).
Repeated questions are merged: the first answer wins and the others are kept as
``alternatives`` and reported, because a knowledge base that answers the same
question two ways is something its owner wants to know about.
"""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data import clean_texts
from ..errors import DataError
from ..readers import iter_chunks, require_columns, row_ref

LOGGER = logging.getLogger("lmworks")
YAML_SUFFIXES = (".yml", ".yaml")


@dataclass
class FaqEntry:
    """One question with its answer."""

    question: str
    answer: str
    intent: str | None = None
    alternatives: list[str] = field(default_factory=list)
    source: str = ""


def normalise_question(text: str) -> str:
    """Key used to spot repeated questions: NFKC, case-folded, collapsed whitespace."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def read_faq(path: str | Path, *, encoding: str = "utf-8") -> tuple[list[FaqEntry], list[dict[str, Any]]]:
    """Entries and a list of conflicts (same question, different answers).

    ``path`` is a file, or a directory whose ``*.yml``/``*.yaml`` files are all read
    (chatterbot ships one file per category).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in YAML_SUFFIXES)
        if not files:
            raise DataError(f"{path}: directory holds no .yml/.yaml files")
    else:
        files = [path]
    raw = [e for f in files for e in (_read_yaml(f, encoding) if f.suffix.lower() in YAML_SUFFIXES
                                      else _read_table(f, encoding))]
    if not raw:
        raise DataError(f"{path}: no question/answer pairs found")
    entries, conflicts = merge_repeated(raw)
    if conflicts:
        LOGGER.warning(
            "%s: %d questions appear with different answers (first answer kept, others stored as alternatives), "
            "e.g. %r", path, len(conflicts), conflicts[0]["question"],
        )
    return entries, conflicts


def merge_repeated(raw: list[FaqEntry]) -> tuple[list[FaqEntry], list[dict[str, Any]]]:
    """Merge repeated questions; report those whose answers differ."""
    merged: dict[str, FaqEntry] = {}
    conflicts: dict[str, dict[str, Any]] = {}
    for entry in raw:
        key = normalise_question(entry.question)
        first = merged.get(key)
        if first is None:
            merged[key] = entry
            continue
        if normalise_question(entry.answer) == normalise_question(first.answer) or entry.answer in first.alternatives:
            continue
        first.alternatives.append(entry.answer)
        conflict = conflicts.setdefault(key, {"question": first.question, "answers": [first.answer],
                                              "where": [first.source]})
        conflict["answers"].append(entry.answer)
        conflict["where"].append(entry.source)
    return list(merged.values()), list(conflicts.values())


def _read_table(path: Path, encoding: str) -> list[FaqEntry]:
    out: list[FaqEntry] = []
    for frame in iter_chunks(path, encoding=encoding):
        require_columns(path, frame, ["question", "answer"])
        questions = clean_texts(path, frame, "question")
        answers = clean_texts(path, frame, "answer")
        intents = frame["intent"].tolist() if "intent" in frame.columns else [None] * len(frame)
        for index, q, a, i in zip(frame.index, questions, answers, intents):
            intent = str(i).strip() if isinstance(i, str) and i.strip() else None
            out.append(FaqEntry(q.strip(), a.strip(), intent, source=row_ref(path, frame, index)))
    return out


def _read_yaml(path: Path, encoding: str) -> list[FaqEntry]:
    import yaml  # type: ignore[import-untyped, unused-ignore]

    try:
        doc = yaml.safe_load(path.read_text(encoding=encoding))
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not valid {encoding} text (byte {err.start}); re-save as UTF-8") from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise DataError(f"{path}{where}: malformed YAML ({getattr(err, 'problem', err)})") from err
    if isinstance(doc, dict) and "conversations" in doc:
        return _chatterbot(path, doc)
    items = doc.get("faq") if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise DataError(f"{path}: expected a list of {{question, answer}} mappings or the chatterbot layout")
    out = []
    for n, item in enumerate(items, 1):
        where = f"{path} item {n}"
        if not isinstance(item, dict):
            raise DataError(f"{where}: expected a mapping with 'question' and 'answer'")
        for key in ("question", "answer"):
            value = item.get(key)
            if not isinstance(value, str) or not value.strip():
                raise DataError(f"{where}: {key!r} is missing or empty")
        intent = item.get("intent")
        out.append(FaqEntry(item["question"].strip(), item["answer"].strip(),
                            str(intent) if intent else None, source=where))
    return out


def _chatterbot(path: Path, doc: dict) -> list[FaqEntry]:
    categories = doc.get("categories") or []
    intent = str(categories[0]) if categories else path.stem
    out = []
    for n, convo in enumerate(doc.get("conversations") or [], 1):
        if not isinstance(convo, list) or len(convo) < 2:
            LOGGER.debug("%s conversation %d: fewer than two turns, skipped", path, n)
            continue
        question, answer = convo[0], convo[1]
        if not isinstance(question, str) or not isinstance(answer, str) or not question.strip() or not answer.strip():
            continue
        out.append(FaqEntry(question.strip(), answer.strip(), intent, source=f"{path} conversation {n}"))
    return out


def read_queries(path: str | Path, *, encoding: str = "utf-8") -> list[tuple[str, str | None]]:
    """``(query, expected_question)`` pairs; an empty expected question means out of scope."""
    out: list[tuple[str, str | None]] = []
    for frame in iter_chunks(path, encoding=encoding):
        require_columns(path, frame, ["query", "expected_question"])
        queries = clean_texts(path, frame, "query")
        for q, e in zip(queries, frame["expected_question"].tolist()):
            expected = e.strip() if isinstance(e, str) and e.strip() else None
            out.append((q, expected))
    if not out:
        raise DataError(f"{path}: no queries")
    return out
