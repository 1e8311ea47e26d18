"""Running an lmworks service: in the foreground, as several worker processes, or in a background thread.

Every service (classifier, assistant, recommender, monitor) is a FastAPI app built by
a function of its own package from a typed config. Here they are run under uvicorn:
``run_app`` for one process; ``run_workers`` for several, each building its own app
(its own model copy) from a picklable factory, so settings travel as a typed object
rather than through environment variables; ``BackgroundServer`` for a dashboard
beside other work in the same process (the monitor's demo).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from ..errors import ConfigError

#: Seconds uvicorn gives in-flight requests to finish on SIGTERM / Ctrl-C.
GRACEFUL_SECONDS = 30


def _keep_graceful_exit() -> None:
    # uvicorn finishes in-flight requests on SIGTERM, then re-raises the signal with the handler
    # installed before it; a no-op one makes a graceful stop exit 0.
    import signal

    signal.signal(signal.SIGTERM, lambda *_: None)


def run_app(app: Any, *, host: str, port: int) -> None:
    """Serve ``app`` in this process until Ctrl-C or SIGTERM, finishing in-flight requests first."""
    import uvicorn

    _keep_graceful_exit()
    uvicorn.run(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=GRACEFUL_SECONDS)


def run_workers(factory: Callable[[], Any], *, host: str, port: int, workers: int) -> None:
    """Serve ``workers`` processes on one socket; each builds its app by calling ``factory``.

    ``factory`` must be picklable (a module-level function, or ``functools.partial`` of one
    with picklable arguments such as a config dataclass): worker processes are spawned,
    not forked, and receive it through uvicorn's process supervisor. Their Prometheus
    metrics are aggregated across processes (:func:`.metrics.multiprocess_dir`).
    """
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from .metrics import multiprocess_dir

    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    _keep_graceful_exit()
    config = uvicorn.Config(factory, factory=True, host=host, port=port, workers=workers, log_level="info",
                            timeout_graceful_shutdown=GRACEFUL_SECONDS)
    sock = config.bind_socket()
    try:
        with multiprocess_dir():
            # uvicorn < 0.50 (the line Flower pins) takes the worker entry point; later ones build it
            import inspect

            target = {"target": uvicorn.Server(config).run} if "target" in inspect.signature(Multiprocess).parameters \
                else {}
            Multiprocess(config, sockets=[sock], **target).run()
    finally:
        sock.close()


class BackgroundServer:
    """``app`` served from a daemon thread of this process (``with BackgroundServer(app, port=...) as s:``)."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 8000, startup_seconds: float = 30.0) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, name="lmworks-background-server", daemon=True)
        self.startup_seconds = startup_seconds

    def start(self) -> BackgroundServer:
        """Start serving; return once the socket accepts connections (or raise if it never does)."""
        self.thread.start()
        deadline = time.monotonic() + self.startup_seconds
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise ConfigError("the background server did not start (is the port in use?)")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        """Ask uvicorn to exit and wait for the thread."""
        self.server.should_exit = True
        self.thread.join(timeout=GRACEFUL_SECONDS)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()
