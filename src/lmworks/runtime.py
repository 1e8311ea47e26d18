"""Process-level helpers: seeding, CPUs and threads, distributed start-up, quiet libraries.

Training, inference, the services and the benchmarks all need the same few facts
about the process they run in (how many CPUs it may use, whether ``torchrun``
started it) and the same few switches (seed everything, pin torch's threads, hush a
chatty library for a block). They live here, below every other module, so that no
layer has to reach into another's room for them. Nothing here imports torch or
transformers at import time, and every switch is a context manager that restores
what it changed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import random
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any


def lmworks_version() -> str:
    """The installed lmworks version (``0.0.0+local`` when running from a source tree)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lmworks")
    except PackageNotFoundError:
        return "0.0.0+local"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so that two runs with one seed are identical."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, which containers and taskset narrow)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[int]:
    """Run a block with ``n`` intra-op threads (default: CPUs this process may use).

    On a 2-core laptop torch's default can oversubscribe when tokenizers or data
    loading run alongside; pinning to the usable CPUs is also what makes timings
    reproducible. The previous setting is restored afterwards.
    """
    import torch

    if n is None:
        n = usable_cpus()
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        yield n
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def blas_threads(n: int | None) -> Iterator[None]:
    """Limit BLAS/OpenMP thread pools (OpenBLAS, MKL) for a block.

    Libraries built on BLAS (``implicit``'s ALS, scikit-learn) otherwise start one
    thread per core inside each of their own threads, and ``implicit`` warns about it
    on every fit. ``threadpoolctl`` changes the pools of the libraries already loaded
    and restores them afterwards.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=n if n is not None else usable_cpus(), user_api="blas"):
        yield


def distributed() -> tuple[int, int]:
    """``(rank, world_size)`` of this process; ``(0, 1)`` outside ``torchrun``."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed() -> tuple[int, int]:
    """Join the process group when started by ``torchrun`` (gloo: lmworks trains on the CPU)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import atexit

        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo")
            atexit.register(dist.destroy_process_group)
    return distributed()


def installed_package_dir(name: str) -> Path | None:
    """Folder of an installed package, found without importing it (some do work at import)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


@contextlib.contextmanager
def logging_state(levels: Mapping[str, int] | None = None, *, keep: Sequence[str] = ()) -> Iterator[None]:
    """Set some loggers' levels for a block; afterwards put back everything about them and the root logger.

    Restored: the level, handlers, filters, ``propagate`` and ``disabled`` of every logger in
    ``levels`` and ``keep`` and of the root logger. The root logger is always among them
    because a library that logs through the module-level ``logging.warning(...)`` adds a
    handler to it (``basicConfig``) the first time, which would change a user's own logging
    for the rest of the process. ``"root"`` names the root logger.
    """
    import logging

    names = {"root", *(levels or {}), *keep}
    loggers = [logging.getLogger(None if name == "root" else name) for name in names]
    saved = [(lg, lg.level, list(lg.handlers), list(lg.filters), lg.propagate, lg.disabled) for lg in loggers]
    for name, level in (levels or {}).items():
        logging.getLogger(None if name == "root" else name).setLevel(level)
    try:
        yield
    finally:
        for lg, level, handlers, filters, propagate, disabled in saved:
            lg.setLevel(level)
            lg.handlers[:] = handlers
            lg.filters[:] = filters
            lg.propagate = propagate
            lg.disabled = disabled


class quiet_transformers:
    """Silence transformers' load-time chatter (progress bars, 'newly initialised' notes).

    lmworks reports what matters itself; the notes about a fresh classifier head are
    expected every time a model is fine-tuned and only confuse users.
    """

    def __enter__(self) -> quiet_transformers:
        from transformers.utils import logging as hf_logging

        self._level = hf_logging.get_verbosity()
        self._bars = hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        return self

    def __exit__(self, *exc: Any) -> None:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity(self._level)
        if self._bars:
            hf_logging.enable_progress_bar()


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) until the block has finished, then raise it.

    A checkpoint written half-way is worse than one written a second late: torch's
    zip writer turns a KeyboardInterrupt mid-write into a RuntimeError, which escaped
    the training loop's interrupt handling. Outside the main thread (where signal
    handlers cannot be set) the block runs unprotected.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[object] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
    if received:
        raise KeyboardInterrupt
