"""The federated client: one data owner's process. Its rows never leave it."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError, LmworksError
from ..training.config import TrainConfig
from .model import PROTOCOL, FederatedModel, FederationError

LOGGER = logging.getLogger("lmworks")


class ServerLost(LmworksError):
    """The server stopped answering before the federation finished."""


def make_client(texts: Sequence[str], labels: Sequence[str], *, source: str = "client data",
                model: str | None = None, num_threads: int | None = None, progress: bool = False):
    """A Flower ``NumPyClient`` that trains on ``texts``/``labels`` and returns only weights.

    ``model`` (default: whatever the server names) is the local encoder; if it differs
    from the server's in any way that matters (files, head, labels, protocol), the first
    round is refused with :class:`FederationError` before any training.
    """
    from flwr.client import NumPyClient

    texts, labels = list(texts), [str(y) for y in labels]
    if not texts:
        raise DataError(f"{source}: no rows; a client needs data to train on")
    classes = sorted(set(labels))
    if len(classes) == 1:
        LOGGER.warning("%s holds only label %r: this client trains on one class, and the federation's "
                       "average brings in the others", source, classes[0])

    class LmworksClient(NumPyClient):
        def __init__(self) -> None:
            self.model: FederatedModel | None = None
            self.targets: np.ndarray | None = None
            self.rounds_done = 0
            self.rounds_total: int | None = None
            self.control: list[np.ndarray] | None = None  # SCAFFOLD's c_i; stays on this client

        def _setup(self, config: dict[str, Any]) -> FederatedModel:
            if int(config.get("protocol", -1)) != PROTOCOL:
                raise FederationError(f"the server speaks federation protocol {config.get('protocol')}, this "
                                      f"client {PROTOCOL}: install the same lmworks version on both sides")
            server_labels = json.loads(str(config["labels"]))
            unknown = sorted(set(classes) - set(server_labels))
            if unknown:
                raise DataError(f"{source}: label(s) {unknown} are not among the federation's labels "
                                f"{server_labels}")
            train = TrainConfig.from_dict(json.loads(str(config["train_config"])))
            if model is not None:
                train = train.replace(model=model)
            federated = FederatedModel(server_labels, train.replace(num_threads=num_threads))
            theirs, ours = str(config["fingerprint"]), federated.fingerprint
            if theirs != ours:
                raise FederationError(
                    f"this client's model ({train.model}, fingerprint {ours}) differs from the server's "
                    f"(fingerprint {theirs}): both sides need the same encoder files, head, labels and "
                    "lmworks federation protocol")
            index = {name: i for i, name in enumerate(server_labels)}
            self.targets = np.asarray([index[y] for y in labels], dtype=np.int64)
            return federated

        def get_parameters(self, config):
            if self.model is None:
                raise FederationError("the server asked for weights before sending any: start the server with "
                                      "initial weights (lmworks federated server does)")
            return self.model.get_arrays()

        def fit(self, parameters, config):
            if self.model is None:
                self.model = self._setup(config)
            assert self.targets is not None
            self.rounds_total = int(config["rounds"])
            train = TrainConfig.from_dict(json.loads(str(config["train_config"])))
            train = train.replace(model=self.model.config.model, num_threads=num_threads)
            scaffold = bool(config.get("scaffold", False))
            correction = None
            if scaffold:
                from .scaffold import split

                parameters, server_control = split(parameters, len(self.model.names))
                if self.control is None:
                    self.control = [np.zeros_like(a, dtype=np.float32) for a in server_control]
                correction = [c - ci for c, ci in zip(server_control, self.control)]
            self.model.set_arrays(parameters)
            info = self.model.train(texts, self.targets, train, proximal_mu=float(config.get("proximal_mu", 0.0)),
                                    correction=correction, progress=progress)
            self.rounds_done = int(config["round"])
            LOGGER.info("round %d/%d: trained on %d texts in %.0f s, loss %.4f", self.rounds_done,
                        self.rounds_total, len(texts), info["train_seconds"], info["mean_loss"])
            # What leaves this process: the weights, the example count, two numbers and the fingerprint.
            metrics = {"loss": float(info["mean_loss"]), "train_seconds": float(info["train_seconds"]),
                       "fingerprint": self.model.fingerprint}
            weights = self.model.get_arrays()
            if scaffold:
                from .scaffold import updated_control

                assert self.control is not None
                new = updated_control(parameters, weights, server_control, self.control,
                                      self.model.step_coefficients(train, int(info["steps"])))
                delta = [a - b for a, b in zip(new, self.control)]
                self.control = new
                return weights + delta, len(texts), metrics
            return weights, len(texts), metrics

        def evaluate(self, parameters, config):
            return 0.0, len(texts), {}

    return LmworksClient()


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
        raise ServerLost(_lost(address, client, f"{err.code().name}")) from None
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
                                 f"({err.strerror or err}); is it running?") from None
            time.sleep(0.5)
        except ValueError:
            raise ConfigError(f"server address must be HOST:PORT, got {address!r}") from None


def _lost(address: str, client: Any, why: str) -> str:
    done, total = client.rounds_done, client.rounds_total
    where = f"after round {done} of {total}" if total else "before the first round"
    return (f"lost the federated server at {address} {where} ({why}); nothing was written here, and the "
            "server keeps the last complete global model")
