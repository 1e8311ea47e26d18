"""Why an item was scored negative, and why an alert fired.

An item's explanation is its sentiment model's word attributions (:mod:`lmworks.explain`)
for the label it got. An alert's is the words that drove its window's negative share: every
negative item of the topic's window explained for the negative label, aggregated — a
compliance officer sees at once whether the surge is about "recall" and "lawsuit" or about a
word the model over-reads. Explanations come from the model that scored the items (the one
the monitor runs with, or the one recorded in the store), loaded on first use.
"""

from __future__ import annotations

import threading
from typing import Any

from ..errors import ConfigError, LmworksError
from .ingest import OpinionClassifier
from .store import Store


class NotFound(LmworksError):
    """No item or alert with that id."""


class WhyExplainer:
    """Explanations of the monitor's items and alerts."""

    def __init__(self, store: Store, classifier: OpinionClassifier | None = None) -> None:
        self.store = store
        self._classifier = classifier
        self._lock = threading.Lock()

    def _model(self) -> tuple[Any, str]:
        """The sentiment predictor and its negative label."""
        with self._lock:
            if self._classifier is None:
                models = self.store.get_setting("models") or {}
                if not models.get("sentiment_model"):
                    raise ConfigError("this store records no sentiment model: start the monitor with "
                                      "--sentiment-model to explain its items")
                self._classifier = OpinionClassifier(models["sentiment_model"],
                                                     negative_label=models.get("negative_label"),
                                                     positive_label=models.get("positive_label"))
            return self._classifier.sentiment, self._classifier.negative

    def item(self, item_id: str) -> dict[str, Any]:
        """The item and its explanation for the sentiment label it got."""
        item = self.store.item(item_id)
        if item is None:
            raise NotFound(f"no item with id {item_id!r}")
        predictor, _ = self._model()
        explanation = predictor.explain([item["text"]], target=item["sentiment_label"])[0]
        return {"item": item, "explanation": explanation.to_dict()}

    def alert(self, alert_id: int, *, limit: int = 30, top: int = 10) -> dict[str, Any]:
        """The words behind an alert's negative items, and each of those items highlighted."""
        from ..explain import global_words

        found = self.store.alerts(alert_id=alert_id, limit=1)
        if not found:
            raise NotFound(f"no alert with id {alert_id}")
        alert = found[0]
        items = self.store.window_items(alert["topic"], alert["window_start"], alert["window_seconds"], limit=limit)
        predictor, negative = self._model()
        explanations = predictor.explain([i["text"] for i in items], target=negative) if items else []
        words = global_words(explanations, top=top, min_count=2 if len(items) >= 10 else 1).get(negative, [])
        return {"alert": alert, "negative_label": negative, "negative_items": len(items), "words": words,
                "items": [{**i, "explanation": e.to_dict()} for i, e in zip(items, explanations)],
                "method": explanations[0].method if explanations else None}

