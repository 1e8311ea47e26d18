"""One-command local federation: split a dataset non-IID and run server and clients as processes."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import LmworksError
from ..runtime import usable_cpus
from .client import ServerLost, wait_for_server
from .config import FederatedConfig
from .deployment import free_port, read_log, tail, write_rows
from .server import LOG_FILE, show_progress
from .split import dirichlet_split

LOGGER = logging.getLogger("lmworks")


def simulate(
    texts: Sequence[str],
    labels: Sequence[str],
    config: FederatedConfig,
    *,
    n_clients: int,
    alpha: float,
    eval_texts: Sequence[str],
    eval_labels: Sequence[str],
    output: str | Path,
    split_seed: int = 0,
    client_threads: int | None = None,
    workdir: str | Path | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Split ``texts`` over ``n_clients`` (Dirichlet ``alpha``) and federate them for real.

    Each client is its own ``lmworks federated client`` process reading only its own
    shard file; the server is an ``lmworks federated server`` process scoring the global
    model on ``eval_*`` each round and writing it to ``output``. They talk through Flower's
    SuperLink and SuperNodes over 127.0.0.1, as they would across machines. Returns the shard
    sizes, the per-round log and the final held-out metrics.
    """
    labels = [str(y) for y in labels]
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="lmworks-federated-"))
    work.mkdir(parents=True, exist_ok=True)
    shard_info = _write_shards(work, texts, labels, n_clients=n_clients, alpha=alpha, seed=split_seed)
    eval_file = write_rows(work / "eval.jsonl", eval_texts, eval_labels)
    config_file = work / "federated.json"
    config_file.write_text(json.dumps({**config.to_dict(), "min_clients": n_clients}), encoding="utf-8")
    names = sorted(set(labels) | {str(y) for y in eval_labels})
    address = f"127.0.0.1:{free_port()}"
    threads = client_threads or max(1, usable_cpus() // n_clients)
    federation = _Federation(work, Path(output), config.rounds)
    _exit_on_sigterm()  # so the finally below stops the server and clients, not only Ctrl-C
    try:
        federation.launch_server(["--address", address, "--config-json", str(config_file), "--eval", str(eval_file),
                                  "--labels", ",".join(names), "--output", str(output)])
        federation.wait_for(address)
        for i in range(n_clients):
            federation.launch_client(i, [str(work / f"client_{i}.jsonl"), "--server", address,
                                         "--threads", str(threads), "--quiet"])
        federation.watch(timeout)
    finally:
        federation.stop()
    rounds = read_log(Path(output) / LOG_FILE)
    return {"clients": shard_info, "rounds": rounds, "final": rounds[-1].get("eval") if rounds else None,
            "workdir": str(work), "address": address}


def _write_shards(work: Path, texts: Sequence[str], labels: list[str], *, n_clients: int, alpha: float,
                  seed: int) -> list[dict[str, Any]]:
    """One JSONL file per client with its Dirichlet share of the rows; returns each shard's size and label mix."""
    info = []
    for i, rows in enumerate(dirichlet_split(labels, n_clients, alpha, seed=seed)):
        shard_texts, shard_labels = [texts[j] for j in rows], [labels[j] for j in rows]
        write_rows(work / f"client_{i}.jsonl", shard_texts, shard_labels)
        info.append({"client": i, "rows": len(rows), "labels": dict(sorted(Counter(shard_labels).items()))})
        LOGGER.info("client %d: %d rows %s", i, len(rows), info[-1]["labels"])
    return info


class _Federation:
    """The server and client processes of one simulation, their logs, and how they end."""

    def __init__(self, work: Path, output: Path, rounds: int) -> None:
        self.work, self.output, self.rounds = work, output, rounds
        self.server: subprocess.Popen | None = None
        self.clients: list[subprocess.Popen] = []
        self.logs: list[Any] = []
        self.shown = 0

    def _start(self, role: str, args: list[str], log: Path) -> subprocess.Popen:
        fh = open(log, "w", encoding="utf-8")  # noqa: SIM115 - closed in stop()
        self.logs.append(fh)
        return subprocess.Popen([sys.executable, "-m", "lmworks", "federated", role, *args], stdout=fh,
                                stderr=subprocess.STDOUT)

    def launch_server(self, args: list[str]) -> None:
        self.server = self._start("server", args, self.work / "server.log")

    def launch_client(self, index: int, args: list[str]) -> None:
        self.clients.append(self._start("client", args, self.work / f"client_{index}.log"))

    def wait_for(self, address: str) -> None:
        assert self.server is not None
        try:
            wait_for_server(address, 300, exited=self.server.poll)
        except ServerLost as err:
            raise LmworksError(f"{err}: {tail(self.work / 'server.log')}") from err

    def _client_failed(self, index: int, proc: subprocess.Popen) -> LmworksError:
        return LmworksError(f"client {index} failed (status {proc.returncode}): "
                            f"{tail(self.work / f'client_{index}.log')}")

    def watch(self, timeout: float | None) -> None:
        """Until the server ends: fail fast on a failed client or the timeout, log finished rounds."""
        assert self.server is not None
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.server.poll() is None:
            for i, proc in enumerate(self.clients):
                if proc.poll() not in (None, 0):
                    raise self._client_failed(i, proc)
            self.shown = show_progress(self.output / LOG_FILE, self.shown, self.rounds)
            if deadline is not None and time.monotonic() > deadline:
                raise LmworksError(f"the federation did not finish within {timeout:.0f} s (logs in {self.work})")
            time.sleep(0.5)
        if self.server.returncode != 0:
            raise LmworksError(f"the federated server failed (status {self.server.returncode}): "
                               f"{tail(self.work / 'server.log')}")
        for i, proc in enumerate(self.clients):
            if proc.wait(timeout=120) != 0:
                raise self._client_failed(i, proc)
        show_progress(self.output / LOG_FILE, self.shown, self.rounds)

    def stop(self) -> None:
        """Kill whatever still runs and close the logs."""
        for proc in [*self.clients, *([self.server] if self.server else [])]:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for fh in self.logs:
            fh.close()


def _exit_on_sigterm() -> None:
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
