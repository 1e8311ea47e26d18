"""Alert delivery: POST each new alert to a webhook from a background thread, with retries.

``notify`` only enqueues, so a slow or failing receiver never blocks ingest; an alert
that cannot be delivered stays stored with ``delivered = false``.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from .store import Store

LOGGER = logging.getLogger("lmworks")


@dataclass
class WebhookNotifier:
    """POST each alert as JSON to ``url`` from a background thread, retrying with backoff.

    ``notify`` only enqueues, so ingest never waits on the receiver; when the queue
    is full the alert stays stored (``delivered = false``) and a warning is logged.
    """

    url: str
    store: Store | None = None
    attempts: int = 5
    backoff: float = 0.5
    timeout: float = 5.0
    queue_size: int = 1000

    def __post_init__(self) -> None:
        self._queue: queue.Queue = queue.Queue(self.queue_size)
        self._thread = threading.Thread(target=self._run, name="lmworks-webhook", daemon=True)
        self._thread.start()
        self.delivered = 0
        self.failed = 0

    def notify(self, alert: dict[str, Any]) -> None:
        """Queue an alert for delivery (never blocks)."""
        try:
            self._queue.put_nowait(alert)
        except queue.Full:
            LOGGER.warning("webhook queue full: alert %s stays undelivered", alert.get("id"))

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (up to ``timeout`` seconds), then stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            alert = self._queue.get()
            if alert is None:
                return
            if self._post(alert):
                self.delivered += 1
                if self.store is not None and alert.get("id") is not None:
                    self.store.mark_delivered(int(alert["id"]))
            else:
                self.failed += 1

    def _post(self, alert: dict[str, Any]) -> bool:
        body = json.dumps(alert).encode()
        for attempt in range(self.attempts):
            request = urllib.request.Request(self.url, data=body, headers={"content-type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    if 200 <= response.status < 300:
                        return True
            except (urllib.error.URLError, OSError, ValueError) as err:
                reason = str(err)
            else:
                reason = f"HTTP {response.status}"
            wait = self.backoff * 2 ** attempt
            LOGGER.warning("webhook %s: attempt %d/%d failed (%s)%s", self.url, attempt + 1, self.attempts,
                           reason, f"; retrying in {wait:.1f} s" if attempt + 1 < self.attempts else "; giving up")
            if attempt + 1 < self.attempts:
                time.sleep(wait)
        return False
