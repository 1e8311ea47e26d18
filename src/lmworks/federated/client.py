"""The federated client: one data owner's process. Its rows never leave it."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from flwr.client import NumPyClient

from ..atomic import atomic_file
from ..errors import DataError, LmworksError
from ..training.config import TrainConfig
from .model import FederatedModel
from .protocol import PROTOCOL, FederationError

LOGGER = logging.getLogger("lmworks")
#: The Flower node-state key of SCAFFOLD's client control variate.
CONTROL = "lmworks.scaffold_control"
#: The round a ClientApp last finished, for the wrapper process.
PROGRESS_FILE = "progress.json"


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
    state:
        Flower's per-node state (``Context.state``), which outlives the ClientApp process of one
        round: SCAFFOLD's control variate ``c_i`` is kept there.
    job_dir:
        Where the wrapper process (:func:`run_client`) reads this client's progress and errors.
    """

    def __init__(self, texts: Sequence[str], labels: Sequence[str], *, source: str = "client data",
                 model: str | None = None, num_threads: int | None = None, progress: bool = False,
                 state: Any = None, job_dir: Path | None = None) -> None:
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
        self.state, self.job_dir = state, job_dir
        self.control: list[np.ndarray] | None = None  # SCAFFOLD's c_i; stays on this client
        if state is not None and CONTROL in state:
            self.control = state[CONTROL].to_numpy_ndarrays()

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
        if self.job_dir is None:
            return self._fit(parameters, config)
        from .protocol import reported

        with reported(self.job_dir):
            return self._fit(parameters, config)

    def _fit(self, parameters, config):
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
        self._report({"round": self.rounds_done, "rounds": self.rounds_total, "rows": len(self.texts),
                      "seconds": float(info["train_seconds"]), "loss": float(info["mean_loss"]),
                      "fraction_fit": float(config.get("fraction_fit", 1.0))})
        return weights, len(self.texts), metrics

    def _report(self, progress: dict[str, Any]) -> None:
        """Tell the wrapper process which round this client finished (it prints the progress)."""
        if self.job_dir is not None:
            with atomic_file(self.job_dir / PROGRESS_FILE) as fh:
                json.dump(progress, fh)

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
        if self.state is not None:
            from flwr.app import ArrayRecord

            self.state[CONTROL] = ArrayRecord(new)
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
    """Join the federation at ``address`` (the server's SuperLink) and train until the server ends it.

    Flower's SuperNode runs as a child process; for each round it starts the ClientApp of
    :mod:`lmworks.federated.app`, which trains on these rows, written to this client's private
    directory (mode 0700, removed afterwards). Only weights, the row count and the training
    numbers go to the server. Raises :class:`ServerLost` when the server cannot be reached
    within ``max_wait`` seconds, or goes away before the last round (the client keeps no state
    worth corrupting: the global model lives with the server, which writes it atomically each
    round), and the ClientApp's own error (a refused model, unknown labels) as itself.
    """
    import tempfile

    from .deployment import flower_command, free_port, spawn, stop, write_rows

    client = make_client(texts, labels, source=source, model=model, num_threads=num_threads)
    wait_for_server(address, max_wait)
    with tempfile.TemporaryDirectory(prefix="lmworks-client-") as tmp:
        home = Path(tmp)  # mkdtemp: private to this user
        job = {"data": str(write_rows(home / "data.jsonl", client.texts, client.labels)), "source": source,
               "model": model, "num_threads": num_threads}
        (home / "job.json").write_text(json.dumps(job), encoding="utf-8")
        node = spawn([flower_command("flower-supernode"), "--insecure", "--superlink", address, "--port",
                      str(free_port()), "--node-config", f"job={json.dumps(str(home / 'job.json'))}"],
                     home / "supernode.log", home)
        try:
            _follow(node, home, address, client, progress=progress)
        finally:
            stop(node)
    return {"rounds": client.rounds_done}


def _follow(node, home: Path, address: str, client: LmworksClient, *, progress: bool) -> None:
    """Report each round the ClientApp finishes, until the server goes away; raise what went wrong."""
    import time

    from tqdm.auto import tqdm

    from .deployment import answering, read_json, tail

    gone_since: float | None = None
    fraction = 1.0
    bar = tqdm(unit="round", desc="federated rounds", disable=not progress)
    while True:
        _raise_if_reported(home)
        done = read_json(home / PROGRESS_FILE)
        if done and done["round"] != client.rounds_done:
            client.rounds_done, client.rounds_total, fraction = done["round"], done["rounds"], done["fraction_fit"]
            LOGGER.info("round %d/%d: trained on %d texts in %.0f s, loss %.4f", done["round"], done["rounds"],
                        done["rows"], done["seconds"], done["loss"])
            bar.total = done["rounds"]
            bar.update(done["round"] - bar.n)
        if node.poll() is not None:
            raise LmworksError(f"Flower's SuperNode stopped (status {node.returncode}): "
                               f"{tail(home / 'supernode.log')}")
        if answering(address, timeout=1.0):
            gone_since = None
        elif gone_since is None:
            gone_since = time.monotonic()
        elif time.monotonic() - gone_since > 2.0:
            break
        time.sleep(0.5)
    bar.close()
    _raise_if_reported(home)
    if client.rounds_total is not None and client.rounds_done == client.rounds_total:
        return
    if client.rounds_done and fraction < 1:  # not sampled in the last round(s): Flower does not say goodbye
        LOGGER.warning("the server at %s ended the federation; this client last trained in round %d of %d",
                       address, client.rounds_done, client.rounds_total)
        return
    raise ServerLost(_lost(address, client, "it stopped answering"))


def _raise_if_reported(home: Path) -> None:
    """Raise the error the ClientApp reported, if it reported one."""
    from .protocol import reported_error

    error = reported_error(home)
    if error is not None:
        raise error


def wait_for_server(address: str, max_wait: float, *, exited: Callable[[], int | None] = lambda: None) -> None:
    """Block until the server at ``address`` answers HTTP (a SuperNode would otherwise retry forever).

    ``exited()`` (e.g. a server ``Popen.poll``) returning a status stops the wait early.
    """
    import time

    from .deployment import answering, local_address

    target = local_address(address)
    deadline = time.monotonic() + max_wait
    while True:
        status = exited()
        if status is not None:
            raise ServerLost(f"the federated server at {address} exited with status {status} before "
                             "accepting clients")
        if answering(target):
            return
        if time.monotonic() >= deadline:
            raise ServerLost(f"cannot reach the federated server at {address} within {max_wait:.0f} s; "
                             "is it running?")
        time.sleep(0.5)


def _lost(address: str, client: Any, why: str) -> str:
    done, total = client.rounds_done, client.rounds_total
    where = f"after round {done} of {total}" if total else "before the first round"
    return (f"lost the federated server at {address} {where} ({why}); nothing was written here, and the "
            "server keeps the last complete global model")
