"""The federated client: one data owner's process. Its rows never leave it."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from flwr.client import NumPyClient

from ..errors import ConfigError, DataError, LmworksError
from ..training.config import TrainConfig
from .model import FederatedModel
from .protocol import PROTOCOL, FederationError

LOGGER = logging.getLogger("lmworks")


class ServerLost(LmworksError):
    """The server stopped answering before the federation finished."""


class LmworksClient(NumPyClient):
    """One data owner's Flower client: trains the global weights on its rows, returns only weights.

    Parameters
    ----------
    texts, labels:
        This owner's rows; they never leave the process.
    source:
        Where the rows came from (for messages).
    model:
        The local encoder (default: whatever the server names). If it differs from the
        server's in any way that matters (files, head, labels, protocol), the first round
        is refused with :class:`FederationError` before any training.
    num_threads:
        Torch threads for local training.
    progress:
        Show a progress bar for each round's local training.
    """

    def __init__(self, texts: Sequence[str], labels: Sequence[str], *, source: str = "client data",
                 model: str | None = None, num_threads: int | None = None, progress: bool = False) -> None:
        self.texts, self.labels = list(texts), [str(y) for y in labels]
        if not self.texts:
            raise DataError(f"{source}: no rows; a client needs data to train on")
        self.classes = sorted(set(self.labels))
        if len(self.classes) == 1:
            LOGGER.warning("%s holds only label %r: this client trains on one class, and the federation's "
                           "average brings in the others", source, self.classes[0])
        self.source, self.local_model, self.num_threads, self.progress = source, model, num_threads, progress
        self.model: FederatedModel | None = None
        self.targets: np.ndarray | None = None
        self.rounds_done = 0
        self.rounds_total: int | None = None
        self.control: list[np.ndarray] | None = None  # SCAFFOLD's c_i; stays on this client

    def _setup(self, config: dict[str, Any]) -> FederatedModel:
        """The first round: check protocol, labels and fingerprint against the server's, then build the model."""
        if int(config.get("protocol", -1)) != PROTOCOL:
            raise FederationError(f"the server speaks federation protocol {config.get('protocol')}, this "
                                  f"client {PROTOCOL}: install the same lmworks version on both sides")
        server_labels = json.loads(str(config["labels"]))
        unknown = sorted(set(self.classes) - set(server_labels))
        if unknown:
            raise DataError(f"{self.source}: label(s) {unknown} are not among the federation's labels "
                            f"{server_labels}")
        train = self._round_training(config, self.local_model)
        federated = FederatedModel(server_labels, train)
        theirs, ours = str(config["fingerprint"]), federated.fingerprint
        if theirs != ours:
            raise FederationError(
                f"this client's model ({train.model}, fingerprint {ours}) differs from the server's "
                f"(fingerprint {theirs}): both sides need the same encoder files, head, labels and "
                "lmworks federation protocol")
        index = {name: i for i, name in enumerate(server_labels)}
        self.targets = np.asarray([index[y] for y in self.labels], dtype=np.int64)
        return federated

    def _round_training(self, config: dict[str, Any], model: str | None) -> TrainConfig:
        """The round's local settings as the server sent them, with this client's encoder path and threads."""
        train = TrainConfig.from_dict(json.loads(str(config["train_config"])))
        return train.replace(**({"model": model} if model is not None else {}), num_threads=self.num_threads)

    def get_parameters(self, config):  # noqa: D102 - Flower's interface
        if self.model is None:
            raise FederationError("the server asked for weights before sending any: start the server with "
                                  "initial weights (lmworks federated server does)")
        return self.model.get_arrays()

    def fit(self, parameters, config):
        """Train the received weights on the local rows; return weights, row count and a few numbers."""
        if self.model is None:
            self.model = self._setup(config)
        assert self.targets is not None
        self.rounds_total = int(config["rounds"])
        train = self._round_training(config, self.model.config.model)
        scaffold = bool(config.get("scaffold", False))
        correction, server_control = None, None
        if scaffold:
            parameters, server_control, correction = self._scaffold_split(parameters)
        self.model.set_arrays(parameters)
        info = self.model.train(self.texts, self.targets, train, proximal_mu=float(config.get("proximal_mu", 0.0)),
                                correction=correction, progress=self.progress)
        self.rounds_done = int(config["round"])
        LOGGER.info("round %d/%d: trained on %d texts in %.0f s, loss %.4f", self.rounds_done,
                    self.rounds_total, len(self.texts), info["train_seconds"], info["mean_loss"])
        # What leaves this process: the weights, the example count, two numbers and the fingerprint.
        metrics = {"loss": float(info["mean_loss"]), "train_seconds": float(info["train_seconds"]),
                   "fingerprint": self.model.fingerprint}
        weights = self.model.get_arrays()
        if server_control is not None:
            weights = weights + self._scaffold_update(parameters, weights, server_control, train, int(info["steps"]))
        return weights, len(self.texts), metrics

    def _scaffold_split(self, parameters):
        """SCAFFOLD: weights, the server's control variate, and this client's correction ``c - c_i``."""
        from .scaffold import split

        assert self.model is not None
        weights, server_control = split(parameters, len(self.model.names))
        if self.control is None:
            self.control = [np.zeros_like(a, dtype=np.float32) for a in server_control]
        return weights, server_control, [c - ci for c, ci in zip(server_control, self.control)]

    def _scaffold_update(self, start, weights, server_control, train: TrainConfig, steps: int) -> list[np.ndarray]:
        """Update ``c_i`` from how far the weights moved; return ``c_i+ - c_i`` (what the server averages)."""
        from .scaffold import updated_control

        assert self.model is not None and self.control is not None
        new = updated_control(start, weights, server_control, self.control,
                              self.model.step_coefficients(train, steps))
        delta = [a - b for a, b in zip(new, self.control)]
        self.control = new
        return delta

    def evaluate(self, parameters, config):  # noqa: D102 - the server evaluates on its own held-out data
        return 0.0, len(self.texts), {}


def make_client(texts: Sequence[str], labels: Sequence[str], *, source: str = "client data",
                model: str | None = None, num_threads: int | None = None, progress: bool = False) -> LmworksClient:
    """A Flower ``NumPyClient`` that trains on ``texts``/``labels`` and returns only weights."""
    return LmworksClient(texts, labels, source=source, model=model, num_threads=num_threads, progress=progress)


def run_client(
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    address: str = "127.0.0.1:8080",
    source: str = "client data",
    model: str | None = None,
    num_threads: int | None = None,
    max_wait: float = 60.0,
    progress: bool = False,
) -> dict[str, Any]:
    """Join the federation at ``address`` and train until the server ends it.

    Raises :class:`ServerLost` when the server cannot be reached within ``max_wait``
    seconds, or goes away before the last round (the client keeps no state worth corrupting: the
    global model lives with the server, which writes it atomically each round).
    """
    import grpc
    from flwr.client import start_client

    from .server import quiet_flower

    client = make_client(texts, labels, source=source, model=model, num_threads=num_threads, progress=progress)
    wait_for_server(address, max_wait)
    try:
        with quiet_flower():
            start_client(server_address=address, client=client.to_client(), insecure=True)
    except grpc.RpcError as err:
        raise ServerLost(_lost(address, client, f"{err.code().name}")) from err
    # A server that ends the federation says goodbye (start_client returns); one that dies
    # breaks the stream (RpcError above). A client not sampled in the last rounds is fine.
    if client.rounds_total is None:
        LOGGER.warning("the server at %s ended the federation before this client trained", address)
    return {"rounds": client.rounds_done}


def wait_for_server(address: str, max_wait: float, *, exited: Callable[[], int | None] = lambda: None) -> None:
    """Block until ``address`` accepts TCP connections (Flower's gRPC stream does not retry).

    ``exited()`` (e.g. a server ``Popen.poll``) returning a status stops the wait early.
    """
    import socket
    import time

    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + max_wait
    while True:
        status = exited()
        if status is not None:
            raise ServerLost(f"the federated server at {address} exited with status {status} before "
                             "accepting clients")
        try:
            with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=2):
                return
        except OSError as err:
            if time.monotonic() >= deadline:
                raise ServerLost(f"cannot reach the federated server at {address} within {max_wait:.0f} s "
                                 f"({err.strerror or err}); is it running?") from err
            time.sleep(0.5)
        except ValueError as err:
            raise ConfigError(f"server address must be HOST:PORT, got {address!r}") from err


def _lost(address: str, client: Any, why: str) -> str:
    done, total = client.rounds_done, client.rounds_total
    where = f"after round {done} of {total}" if total else "before the first round"
    return (f"lost the federated server at {address} {where} ({why}); nothing was written here, and the "
            "server keeps the last complete global model")
