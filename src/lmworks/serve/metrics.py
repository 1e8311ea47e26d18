"""Prometheus metrics of one server process (its own registry, so tests can start many)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

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
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
