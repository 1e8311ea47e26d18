"""Prometheus metrics of a server (its own registry, so tests can start many in one process).

With several worker processes (``--workers N``), each process counts only what it
answered, and a scrape reaches one of them at random. :func:`multiprocess_dir`
therefore puts prometheus_client in its multiprocess mode before the workers start:
every process writes its samples to files in a shared folder, and whichever worker
answers ``/metrics`` reports the sum over all of them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

#: The variable prometheus_client reads (at import) to write samples for aggregation.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
TOKEN_BUCKETS = (16, 64, 256, 512, 1024, 2048, 4096, 8192, 16384)


class ServerMetrics:
    """Request counts, latency, micro-batch sizes and truncation counts."""

    content_type = "text/plain; version=0.0.4; charset=utf-8"

    def __init__(self, prefix: str = "lmworks") -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(f"{prefix}_requests", "HTTP requests by endpoint and status code",
                                ["endpoint", "status"], registry=self.registry)
        self.latency = Histogram(f"{prefix}_request_latency_seconds", "Request latency by endpoint",
                                 ["endpoint"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.texts = Counter(f"{prefix}_texts", "Texts answered", registry=self.registry)
        self.truncated = Counter(f"{prefix}_truncated_texts", "Texts longer than max_length, truncated",
                                 registry=self.registry)
        self.batch_texts = Histogram(f"{prefix}_batch_size_texts", "Texts per model micro-batch",
                                     buckets=SIZE_BUCKETS, registry=self.registry)
        self.batch_tokens = Histogram(f"{prefix}_batch_tokens", "Tokens per model micro-batch",
                                      buckets=TOKEN_BUCKETS, registry=self.registry)
        self.batch_seconds = Histogram(f"{prefix}_batch_seconds", "Model time per micro-batch",
                                       buckets=LATENCY_BUCKETS, registry=self.registry)

    def observe_batch(self, n_texts: int, n_tokens: int, seconds: float) -> None:
        """Record one model call (the batcher's ``on_batch`` hook)."""
        self.batch_texts.observe(n_texts)
        self.batch_tokens.observe(n_tokens)
        self.batch_seconds.observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition (summed over every worker process in multiprocess mode)."""
        if os.environ.get(MULTIPROC_ENV):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


@contextmanager
def multiprocess_dir() -> Iterator[str]:
    """A fresh folder for worker processes' samples, named in the environment they inherit; removed after."""
    folder = tempfile.mkdtemp(prefix="lmworks-metrics-")
    previous = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = folder
    try:
        yield folder
    finally:
        if previous is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous
        shutil.rmtree(folder, ignore_errors=True)
