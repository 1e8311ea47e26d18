"""The audit: read the files, run every check, collect the findings in one report."""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .config import AuditConfig
from .duplicates import Pair, find_duplicates
from .labels import LabelCheck, check_labels
from .rows import AuditRows, read_rows
from .texts import check_texts, token_counts

LOGGER = logging.getLogger("lmworks")


@dataclass
class AuditReport:
    """Everything one audit found. Positions inside are 0-based; :meth:`to_json` numbers rows as errors do."""

    files: list[AuditRows]
    config: AuditConfig
    labels: LabelCheck | None = None
    duplicates: list[Pair] = field(default_factory=list)
    texts: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def train(self) -> AuditRows:
        """The audited data (the first file)."""
        return self.files[0]

    def label_issues(self) -> list[dict[str, Any]]:
        """Cleanlab's flagged rows, worst first: ``row`` (1-based), ``label``, ``suggested``, ``score``."""
        if self.labels is None or not self.labels.flagged:
            return []
        local = {int(p): k for k, p in enumerate(self.labels.checked)}
        labels = self.train.labels or []
        out = [{"row": self.train.rows[p], "label": labels[p], "suggested": self.labels.suggested[local[p]],
                "score": round(float(self.labels.scores[local[p]]), 4)} for p in self.labels.flagged]
        return sorted(out, key=lambda r: -r["score"])

    def duplicate_rows(self) -> list[dict[str, Any]]:
        """Each duplicate: ``file``, ``row`` repeats ``of_file``, ``of_row``; ``similarity``; ``same_label``."""
        out = []
        for p in self.duplicates:
            a, b = self.files[p.file], self.files[p.of_file]
            same = None
            if a.labels is not None and b.labels is not None and a.labels[p.row] is not None \
                    and b.labels[p.of_row] is not None:
                same = a.labels[p.row] == b.labels[p.of_row]
            out.append({"file": a.file, "row": a.rows[p.row], "of_file": b.file, "of_row": b.rows[p.of_row],
                        "similarity": p.similarity, "same_label": same})
        return out

    def text_findings(self) -> list[dict[str, Any]]:
        """Empty cells and the text checks: ``file``, ``row`` (1-based), ``issue``, ``detail``."""
        out = [{"file": f.file, **problem} for f in self.files for problem in f.problems]
        out += [{"file": self.files[t["file"]].file, "row": self.files[t["file"]].rows[t["row"]],
                 "issue": t["issue"], "detail": t["detail"]} for t in self.texts]
        return out

    def classes(self) -> dict[str, int]:
        """Rows per class in the audited data (multi-label: rows carrying each label)."""
        labels = self.train.labels
        if labels is None:
            return {}
        counts: Counter[str] = Counter()
        for y in labels:
            if y is not None:
                counts.update(y if self.config.multi_label else [y])
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def summary(self) -> dict[str, Any]:
        """Counts per finding (what the terminal prints)."""
        duplicates = self.duplicate_rows()
        train = self.train.file
        issues = Counter(t["issue"] for t in self.text_findings())
        classes = self.classes()
        out: dict[str, Any] = {
            "rows": {f.file: len(f) for f in self.files},
            "label_checked": 0 if self.labels is None else int(len(self.labels.checked)),
            "label_issues": len(self.label_issues()),
            "duplicates": sum(d["file"] == d["of_file"] for d in duplicates),
            "leakage": sum(d["file"] != train and d["of_file"] == train for d in duplicates),
            "conflicting_labels": sum(d["same_label"] is False for d in duplicates),
            "classes": len(classes),
            "imbalance": round(max(classes.values()) / min(classes.values()), 2) if classes else None,
        }
        for name in ("empty_text", "empty_label", "very_short", "too_long", "other_script", "other_language"):
            out[name] = issues.get(name, 0)
        out["seconds"] = round(self.seconds, 2)
        return out

    def to_json(self) -> dict[str, Any]:
        """The ``audit.json`` contract: ``summary``, ``label_issues``, ``duplicates`` (+ texts, classes, notes)."""
        return {"summary": self.summary(), "label_issues": self.label_issues(), "duplicates": self.duplicate_rows(),
                "texts": self.text_findings(), "classes": self.classes(), "notes": self.notes,
                "files": [f.file for f in self.files], "config": self.config.to_dict()}


def audit(data: str, *, test: str | None = None, config: AuditConfig | None = None,
          progress: bool = False) -> AuditReport:
    """Audit ``data`` (and ``test`` against it): label errors, duplicates, leakage, text problems.

    Nothing is changed in either file. Without a label column (``config.label_column=None``) or when
    ``data`` has none, only the duplicate and text checks run, and the report says so.
    """
    config = config or AuditConfig()
    start = time.perf_counter()
    notes: list[str] = []
    train = _read(data, config, notes)
    files = [train]
    if test is not None:
        files.append(_read(test, config, notes, labels=train.labels is not None, of=data))
    report = AuditReport(files=files, config=config, notes=notes)
    if train.labels is not None:
        report.labels = check_labels(train.texts, train.labels, config, progress=progress)
        notes.extend(report.labels.notes if report.labels else [])
    LOGGER.debug("looking for duplicates among %d texts", sum(len(f) for f in files))
    report.duplicates = find_duplicates([f.texts for f in files], config)
    for k, f in enumerate(files):
        tokens = token_counts(f.texts, config.encoder)
        if tokens is None and k == 0:
            notes.append(f"encoder {config.encoder!r} not found: token lengths not checked")
        report.texts += [{"file": k, **t} for t in check_texts(f.texts, config, tokens=tokens)]
    report.seconds = time.perf_counter() - start
    return report


def _read(path: str, config: AuditConfig, notes: list[str], *, labels: bool = True,
          of: str | None = None) -> AuditRows:
    """Read one file; a missing label column means an unlabelled audit (said), not an error."""
    from ..readers import iter_chunks

    want = labels and config.label_column is not None
    if want:
        header = next(iter_chunks(path, chunk_size=1, encoding=config.encoding, delimiter=config.delimiter))
        if config.label_column not in header.columns:
            notes.append(f"{path} has no {config.label_column!r} column: " + (
                "its duplicates of training rows are found, their labels not compared" if of is not None
                else "duplicate and text checks only"))
            want = False
    return read_rows(path, config, labels=want)
