"""A labelling project: the pool, who labelled what, the model in the loop, and what to ask next.

:class:`LabelProject` is what the page's server calls, and what a script (or the
benchmark) drives directly. All state changes go through the event log of
:class:`~.store.LabelStore` first, then into memory, under one lock; the loop model
retrains on a background thread and is swapped in when ready, so asking for the next
text never waits for it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..data import read_dataset
from ..errors import ConfigError, DataError
from .config import LabelConfig
from .loop import PoolModel, Strategy, cold_start_order, pick, wilson
from .store import DB_FILE, Event, LabelState, LabelStore
from .team import agreement, conflicts, resolve

LOGGER = logging.getLogger("lmworks")
SEED_ANNOTATOR = "seed"


class NotFound(LookupError):
    """No such item, or nothing to undo."""


class LabelProject:
    """One project directory: ``labels.db`` and, while a server runs, ``server.lock``."""

    def __init__(self, directory: str | Path, *, background: bool = True, model: PoolModel | None = None,
                 learn: bool = True) -> None:
        """Open a project; ``learn=False`` reads it without fitting the loop model (status, export)."""
        self.directory = Path(directory)
        path = self.directory / DB_FILE
        if not path.is_file():
            raise ConfigError(f"{self.directory}: not a labelling project (no {DB_FILE}; start one with "
                              "'lmworks label start POOL --labels A,B --project DIR')")
        self.store = LabelStore(path)
        self.config = LabelConfig.from_dict(self.store.get("config"))
        self.background = background
        self.lock = threading.RLock()
        items = self.store.items()
        self.ids = [i for i, *_ in items]
        self.index = {item: n for n, item in enumerate(self.ids)}
        self.rows = [r for _, r, *_ in items]
        self.texts = [t for _, _, t, _, _ in items]
        self.origins = [o for *_, o, _ in items]
        self.audit = np.array([a for *_, a in items], dtype=bool)
        self.state = LabelState()
        for event in self.store.events():
            self.state.apply(event)
        self.done = np.array([bool(self.state.current(i)) for i in self.ids], dtype=bool)
        self.leases: dict[int, tuple[str, float]] = {}
        self.rng = np.random.default_rng(self.config.seed + len(self.state.stack))
        self.model = (model or PoolModel(self.texts, self.config.labels, seed=self.config.seed)) if learn else None
        self.cold_order = [self.index[i] for i in self.store.get("cold_order", []) if i in self.index]
        self.probs: np.ndarray | None = None
        self.classifier: Any = None  # the loop model's latest logistic regression
        self.retrains, self.trained_on, self.new_labels = 0, 0, 0
        self._worker: threading.Thread | None = None
        self._again = False
        if learn:
            self.retrain()

    # ----- creation -------------------------------------------------------------------------------
    @classmethod
    def start(cls, directory: str | Path, pool: str | Path, config: LabelConfig, *,
              seed_labels: str | Path | None = None, background: bool = True,
              model: PoolModel | None = None) -> LabelProject:
        """Create the project from ``pool`` (or reopen it, if it was made from the same pool) and open it.

        ``model``: the pool's features fitted already (a script labelling the same pool many
        times, as the benchmark does); it must have been built from exactly these texts.
        """
        directory = Path(directory)
        texts = read_dataset(pool, text_column=config.text_column, label_column=None).texts
        fingerprint = hashlib.sha256("\x1e".join(texts).encode("utf-8")).hexdigest()
        if (directory / DB_FILE).is_file():
            store = LabelStore(directory / DB_FILE)
            known, stored = store.get("pool_sha256"), store.get("config", {})
            store.close()
            if known != fingerprint:
                raise ConfigError(f"{directory}: this project was started on another pool; "
                                  f"use a new --project directory for {pool}")
            if stored.get("labels") != config.labels:
                raise ConfigError(f"{directory}: this project's labels are {','.join(stored.get('labels', []))}, "
                                  f"not {','.join(config.labels)}")
            return cls(directory, background=background, model=model)
        seeds = _read_seed_labels(seed_labels, config) if seed_labels else []
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / f".{DB_FILE}.creating"
        tmp.unlink(missing_ok=True)
        store = LabelStore(tmp)
        store.set("config", config.to_dict())
        store.set("pool_sha256", fingerprint)
        store.add_items([(n + 1, text, "pool") for n, text in enumerate(texts)])
        known = {text: n + 1 for n, text in reversed(list(enumerate(texts)))}
        extra = [(row, text, "seed") for row, text, _ in seeds if text not in known]
        store.add_items(extra)
        for offset, (_, text, _) in enumerate(x for x in seeds if x[1] not in known):
            known[text] = len(texts) + offset + 1
        for _, text, label in seeds:
            store.append(known[text], SEED_ANNOTATOR, "label", label=label)
        if model is None or model.features.shape[0] != len(texts) + len(extra):
            model = PoolModel(texts + [t for _, t, _ in extra], config.labels, seed=config.seed)
        order = cold_start_order(model.features, clusters=config.clusters, seed=config.seed)
        store.set("cold_order", [i + 1 for i in order])
        store.close()
        tmp.replace(directory / DB_FILE)  # a half-made project never looks like a project
        return cls(directory, background=background, model=model)

    # ----- asking ---------------------------------------------------------------------------------
    def next(self, annotator: str) -> dict[str, Any] | None:
        """The text ``annotator`` should label now, or None when the pool is exhausted for them."""
        annotator = _check_annotator(annotator)
        if self.model is None:
            raise ConfigError("this project was opened read-only (learn=False)")
        with self.lock:
            now = time.monotonic()
            held = next((i for i, (who, until) in self.leases.items() if who == annotator and until > now), None)
            if held is not None and annotator not in self.state.current(self.ids[held]):
                return self._card(held)
            index = self._overlap(annotator, now)
            if index is None:
                index = self._fresh(annotator, now)
            if index is None:
                return None
            self.leases = {i: lease for i, lease in self.leases.items() if lease[0] != annotator and lease[1] > now}
            self.leases[index] = (annotator, now + self.config.lease_seconds)
            return self._card(index)

    def _available(self, annotator: str, now: float) -> np.ndarray:
        available = ~self.done
        for index, (who, until) in self.leases.items():
            if who != annotator and until > now:
                available[index] = False
        return available

    def _fresh(self, annotator: str, now: float) -> int | None:
        available = self._available(annotator, now)
        due = self.config.audit_every and int(self.audit.sum()) < (int(self.done.sum()) + 1) // self.config.audit_every
        if due and available.any():
            index = int(self.rng.choice(np.flatnonzero(available)))
            self.store.mark_audit(self.ids[index])
            self.audit[index] = True
            return index
        labelled = [self.index[i] for i in self.state.active if self.state.labels(i)]
        assert self.model is not None  # next() checked it
        return pick(Strategy.parse(self.config.strategy), self.probs, available, self.rng,
                    features=self.model.features, labelled=labelled, cold_order=self.cold_order)

    def _overlap(self, annotator: str, now: float) -> int | None:
        if self.config.overlap <= 0 or self.rng.random() >= self.config.overlap:
            return None
        busy = {i for i, (who, until) in self.leases.items() if who != annotator and until > now}
        singles = [self.index[item] for item, by in self.state.active.items()
                   if len(labels := self.state.labels(item)) == 1 and annotator not in labels
                   and SEED_ANNOTATOR not in labels and annotator not in self.state.current(item)
                   and self.index[item] not in busy and by]
        return int(self.rng.choice(singles)) if singles else None

    def _card(self, index: int) -> dict[str, Any]:
        card = {"id": self.ids[index], "text": self.texts[index], "suggestion": None, "confidence": None,
                "audit": bool(self.audit[index]), "row": self.rows[index], "origin": self.origins[index]}
        if self.probs is not None:
            best = int(np.argmax(self.probs[index]))
            card.update(suggestion=self.config.labels[best], confidence=round(float(self.probs[index, best]), 4))
        return card

    # ----- answering ------------------------------------------------------------------------------
    def label(self, item: int, annotator: str, label: str | None = None, *, skip: bool = False) -> dict[str, Any]:
        """Record ``annotator``'s label for ``item`` (or a skip), committed before this returns."""
        annotator = _check_annotator(annotator)
        if item not in self.index:
            raise NotFound(f"no item {item} in this project")
        if not skip and label not in self.config.labels:
            raise ConfigError(f"label {label!r} is not one of {', '.join(self.config.labels)}")
        with self.lock:
            event = self.store.append(item, annotator, "skip" if skip else "label", label=None if skip else label)
            self._apply(event)
            self.leases.pop(self.index[item], None)
            if not skip:
                self.new_labels += 1
            due = self.new_labels >= self.config.retrain_every
        if due:
            self._schedule()
        return {"id": item, "seq": event.seq, "labelled": self.labelled_count()}

    def undo(self, annotator: str) -> dict[str, Any]:
        """Take back ``annotator``'s latest label or skip (a new event: nothing is deleted); their text comes back."""
        annotator = _check_annotator(annotator)
        with self.lock:
            last = self.state.last(annotator)
            if last is None:
                raise NotFound(f"{annotator} has nothing to undo")
            self._apply(self.store.append(last.item, annotator, "undo", undoes=last.seq))
            index = self.index[last.item]
            self.leases = {i: lease for i, lease in self.leases.items() if lease[0] != annotator}
            self.leases[index] = (annotator, time.monotonic() + self.config.lease_seconds)
            return {"undone": last.seq, "item": self._card(index)}

    def _apply(self, event: Event) -> None:
        self.state.apply(event)
        index = self.index[event.item]
        self.done[index] = bool(self.state.current(event.item))

    def set_strategy(self, strategy: str) -> None:
        """Switch the query strategy (kept in the project for the next start)."""
        with self.lock:
            self.config.strategy = Strategy.parse(strategy)
            self.store.set("config", self.config.to_dict())

    # ----- the model in the loop ------------------------------------------------------------------
    def resolved(self) -> dict[int, str]:
        """Pool index -> the label the annotators agree on (majority; ties are conflicts, left out)."""
        out = {}
        for item in self.state.active:
            label = resolve(self.state.labels(item))
            if label is not None:
                out[self.index[item]] = label
        return out

    def retrain(self) -> dict[str, Any] | None:
        """Refit the loop model on every agreed label outside the audit sample; record the audit estimate."""
        with self.lock:
            labelled = self.resolved()
            self.new_labels = 0
        train = [(i, y) for i, y in labelled.items() if not self.audit[i]]
        if self.model is None:
            return None
        clf = self.model.fit([i for i, _ in train], [y for _, y in train]) if train else None
        if clf is None:
            return None
        probs = self.model.proba(clf)
        checked = [(i, y) for i, y in labelled.items() if self.audit[i]]
        correct = sum(self.config.labels[int(np.argmax(probs[i]))] == y for i, y in checked)
        accuracy = correct / len(checked) if checked else None
        low, high = wilson(correct, len(checked)) if checked else (None, None)
        with self.lock:
            self.probs, self.classifier, self.trained_on = probs, clf, len(train)
            self.retrains += 1
        self.store.add_estimate(len(labelled), len(checked), int(correct), accuracy, low, high)
        return {"trained_on": len(train), "audited": len(checked), "accuracy": accuracy}

    def _schedule(self) -> None:
        if not self.background:
            self.retrain()
            return
        with self.lock:
            if self._worker is not None and self._worker.is_alive():
                self._again = True
                return
            self._worker = threading.Thread(target=self._retrain_loop, name="lmworks-label-retrain", daemon=True)
            self._worker.start()

    def _retrain_loop(self) -> None:
        while True:
            try:
                self.retrain()
            except Exception:  # a failed refit must not take the labelling page down; the old model stays
                LOGGER.exception("retraining the labelling model failed")
            with self.lock:
                if not self._again:
                    self._worker = None
                    return
                self._again = False

    def wait(self, timeout: float = 60.0) -> None:
        """Block until a background retrain (if any) has finished (tests, scripts)."""
        worker = self._worker
        if worker is not None:
            worker.join(timeout)

    # ----- reporting ------------------------------------------------------------------------------
    def labelled_count(self) -> int:
        """Items with at least one current label."""
        return sum(1 for item in self.state.active if self.state.labels(item))

    def item_labels(self) -> dict[int, dict[str, str]]:
        """Item id -> annotator -> current label, for items with any label."""
        return {item: labels for item in list(self.state.active) if (labels := self.state.labels(item))}

    def status(self) -> dict[str, Any]:
        """Counts, the strategy, the latest accuracy estimate, agreement and conflicts."""
        with self.lock:
            labels = self.item_labels()
            per_label: dict[str, int] = {name: 0 for name in self.config.labels}
            for name in self.resolved().values():
                per_label[name] += 1
            annotators: dict[str, int] = {}
            for by in labels.values():
                for who in by:
                    annotators[who] = annotators.get(who, 0) + 1
            skipped = sum(1 for item in self.state.active if not self.state.labels(item) and self.state.current(item))
            estimates = self.store.estimates()
            return {
                "pool": len(self.ids), "labelled": len(labels), "skipped": skipped,
                "remaining": int((~self.done).sum()), "labels": per_label, "annotators": annotators,
                "strategy": Strategy.parse(self.config.strategy).value, "labels_names": self.config.labels,
                "audit": {"every": self.config.audit_every, "drawn": int(self.audit.sum()),
                          "labelled": sum(1 for i in labels if self.audit[self.index[i]])},
                "model": {"retrains": self.retrains, "trained_on": self.trained_on,
                          "retrain_every": self.config.retrain_every},
                "estimate": estimates[-1] if estimates else None,
                "agreement": agreement(labels), "conflicts": len(conflicts(labels)),
            }

    def conflict_list(self) -> list[dict[str, Any]]:
        """Items whose annotators disagree: id, text and each annotator's label."""
        labels = self.item_labels()
        return [{"id": item, "text": self.texts[self.index[item]], "labels": labels[item]}
                for item in conflicts(labels)]

    def export(self, output: str | Path) -> dict[str, int]:
        """Write the agreed labels (text, label, row, origin, annotators, audit) to a CSV/JSONL/Parquet file.

        Conflicts (a tie between annotators) are left out and counted; skips are not labels.
        """
        import pandas as pd

        from ..inference.files import write_frame

        with self.lock:
            labels = self.item_labels()
            agreed = self.resolved()
        order = sorted(agreed)
        frame = pd.DataFrame({"text": [self.texts[i] for i in order], "label": [agreed[i] for i in order],
                              "row": [self.rows[i] for i in order], "origin": [self.origins[i] for i in order],
                              "annotators": [len(labels[self.ids[i]]) for i in order],
                              "audit": [bool(self.audit[i]) for i in order]})
        if frame.empty:
            raise ConfigError(f"{self.directory}: no agreed labels yet, nothing to export")
        write_frame(output, frame)
        return {"rows": len(frame), "conflicts": len(conflicts(labels))}

    def close(self) -> None:
        """Wait for a running retrain, then close the database."""
        self.wait()
        self.store.close()


def _check_annotator(name: str | None) -> str:
    name = (name or "").strip()
    if not name or len(name) > 64:
        raise ConfigError("annotator must be a name of 1-64 characters")
    return name


def _read_seed_labels(path: str | Path, config: LabelConfig) -> list[tuple[int, str, str]]:
    data = read_dataset(path, text_column=config.text_column, label_column="label")
    out = []
    for n, (text, label) in enumerate(zip(data.texts, data.labels or [])):
        if label not in config.labels:
            raise DataError(f"{path} row {n + 1}: label {label!r} is not one of {', '.join(config.labels)}")
        out.append((n + 1, text, label))
    return out
