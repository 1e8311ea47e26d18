"""``lmworks serve``: the classification REST service (FastAPI + uvicorn)."""

from __future__ import annotations

import argparse
import logging

from .common import (
    SERVE_PORT,
    add_server_options,
    non_negative_int,
    positive_int,
)

LOGGER = logging.getLogger("lmworks")


def register(sub) -> None:
    """Add the subcommand."""
    from ..serve.app import ServeConfig

    d = ServeConfig()
    p = sub.add_parser(
        "serve", help="serve a model over HTTP (POST /v1/classify)",
        description="Serve MODEL_DIR (PyTorch or ONNX export) over HTTP: POST /v1/classify, GET /healthz, "
        "GET /v1/model, GET /metrics (Prometheus), OpenAPI at /openapi.json. Concurrent requests are "
        "coalesced into micro-batches. Ctrl-C / SIGTERM finish in-flight requests before exiting.",
    )
    p.add_argument("model_dir", metavar="MODEL_DIR", help="a model directory from 'lmworks train' or 'lmworks export'")
    add_server_options(p, port=SERVE_PORT)
    p.add_argument("--workers", type=positive_int, default=1,
                   help="worker processes, each with its own model copy and a share of the CPUs (default: 1)")
    p.add_argument("--api-key-env", metavar="VAR",
                   help="require the API key held in environment variable VAR on /v1/* endpoints")
    p.add_argument("--max-texts", type=positive_int, default=d.max_texts,
                   help=f"texts per request (default: {d.max_texts})")
    p.add_argument("--max-chars", type=positive_int, default=d.max_chars,
                   help=f"characters per text (default: {d.max_chars})")
    p.add_argument("--max-body-bytes", type=positive_int, default=d.max_body_bytes,
                   help=f"request body size (default: {d.max_body_bytes})")
    p.add_argument("--max-wait-ms", type=float, default=d.max_wait_ms,
                   help=f"how long a request may wait to share a micro-batch (default: {d.max_wait_ms})")
    p.add_argument("--max-batch-tokens", type=positive_int, default=d.max_batch_tokens,
                   help=f"token budget of one micro-batch (default: {d.max_batch_tokens})")
    p.add_argument("--max-queue", type=non_negative_int, default=d.max_queue, metavar="TEXTS",
                   help="texts that may wait for the model; beyond it requests are answered 503 with Retry-After "
                   f"instead of queueing without bound (default: {d.max_queue}; 0: no bound)")
    p.add_argument("--threads", type=positive_int, help="inference threads per worker (default: CPUs / workers)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Load the model (fail fast, before binding), then serve it with one or several worker processes."""
    import functools

    from ..model_dir import read_meta
    from ..runtime import usable_cpus
    from ..serve.app import ServeConfig, build_app
    from ..serve.common import api_key_from_env
    from ..serve.runner import run_app, run_workers

    config = ServeConfig(max_texts=args.max_texts, max_chars=args.max_chars, max_body_bytes=args.max_body_bytes,
                         max_wait_ms=args.max_wait_ms, max_batch_tokens=args.max_batch_tokens,
                         max_queue=args.max_queue or None, api_key=api_key_from_env(args.api_key_env),
                         threads=args.threads or max(1, usable_cpus() // args.workers))
    if args.workers == 1:
        app = build_app(args.model_dir, config)
        LOGGER.info("serving %s on http://%s:%d (docs: /docs, schema: /openapi.json)",
                    args.model_dir, args.host, args.port)
        run_app(app, host=args.host, port=args.port)
    else:
        read_meta(args.model_dir)  # a broken directory fails here, not in N workers
        run_workers(functools.partial(build_app, args.model_dir, config), host=args.host, port=args.port,
                    workers=args.workers)
    return 0
