"""The federated server: holds the global model, runs a Flower strategy, keeps checkpoints."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from flwr.common import Parameters, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server.client_manager import ClientManager
from flwr.server.strategy import Strategy

from ..atomic import atomic_file
from ..errors import DataError, LmworksError
from .config import FederatedConfig
from .model import FederatedModel

LOGGER = logging.getLogger("lmworks")
LOG_FILE = "federated_log.jsonl"


class CheckedStrategy(Strategy):
    """A Flower strategy that drops updates from clients running another model, around any base strategy.

    Parameters
    ----------
    strategy:
        The averaging strategy (FedAvg, FedAvgM or FedProx).
    fingerprint:
        The server's model fingerprint; a client's update must carry the same one.
    on_round:
        ``on_round(server_round, accepted, failures)`` after each round's updates arrive (the log).
    scaffold_weights:
        Under SCAFFOLD, the number of weight arrays: the global "parameters" are then
        ``[weights..., server control c...]``, clients return ``[weights..., c_i+ - c_i...]``,
        and the example-weighted mean of the second half is added to ``c``.
    server_step:
        ``server_step(current, averaged) -> new`` (FedAdam) turns the averaged weights
        into the next global ones; without it the average is the next global model.
    """

    def __init__(self, strategy: Strategy, *, fingerprint: str,
                 on_round: Callable[[int, list, list], None] | None = None, scaffold_weights: int = 0,
                 server_step: Callable[[list[np.ndarray], list[np.ndarray]], list[np.ndarray]] | None = None) -> None:
        self.strategy = strategy
        self.fingerprint = fingerprint
        self.on_round = on_round
        self.scaffold_weights = scaffold_weights
        self.server_step = server_step
        self.current: Parameters | None = None

    def __repr__(self) -> str:
        return f"CheckedStrategy({self.strategy!r})"

    def initialize_parameters(self, client_manager: ClientManager) -> Parameters | None:  # noqa: D102
        self.current = self.strategy.initialize_parameters(client_manager)
        return self.current

    def configure_fit(self, server_round: int, parameters: Parameters, client_manager: ClientManager):  # noqa: D102
        return self.strategy.configure_fit(server_round, parameters, client_manager)

    def configure_evaluate(self, server_round: int, parameters: Parameters,  # noqa: D102
                           client_manager: ClientManager):
        return self.strategy.configure_evaluate(server_round, parameters, client_manager)

    def aggregate_evaluate(self, server_round: int, results, failures):  # noqa: D102
        return self.strategy.aggregate_evaluate(server_round, results, failures)

    def evaluate(self, server_round: int, parameters: Parameters):  # noqa: D102
        return self.strategy.evaluate(server_round, parameters)

    def aggregate_fit(self, server_round: int, results, failures):
        """Average the accepted updates (base strategy), then SCAFFOLD's ``c`` and the server step."""
        accepted = self._accepted(server_round, results, failures)
        if self.on_round is not None:
            self.on_round(server_round, accepted, failures)
        if not accepted:
            LOGGER.error("round %d: no usable client update; the global model is unchanged", server_round)
            return None, {}
        params, metrics = self.strategy.aggregate_fit(server_round, accepted, failures)
        if params is not None and self.current is not None:
            arrays = parameters_to_ndarrays(params)
            current = parameters_to_ndarrays(self.current)
            if self.scaffold_weights:
                from .scaffold import split

                weights, mean_delta = split(arrays, self.scaffold_weights)
                arrays = weights + [c + d for c, d in zip(current[self.scaffold_weights:], mean_delta)]
            if self.server_step is not None:
                arrays = self.server_step(current, arrays)
            params = ndarrays_to_parameters(arrays)
        if params is not None:
            self.current = params
        return params, metrics

    def _accepted(self, server_round: int, results, failures) -> list:
        accepted = []
        for proxy, res in results:
            theirs = res.metrics.get("fingerprint")
            if theirs != self.fingerprint:
                LOGGER.error("round %d: refused the update of client %s: its model %s differs from the "
                             "server's %s", server_round, proxy.cid, theirs, self.fingerprint)
                failures.append(RuntimeError("model mismatch"))
                continue
            accepted.append((proxy, res))
        return accepted


def build_strategy(config: FederatedConfig, model: FederatedModel, *, on_round=None, evaluate_fn=None,
                   fit_config=None) -> Strategy:
    """The strategy ``config`` asks for: FedAvg/FedAvgM/FedProx, checked, with SCAFFOLD, FedAdam or DP."""
    from flwr.server.strategy import FedAvg, FedAvgM, FedProx

    base: type = FedAvg
    extra: dict[str, float] = {}
    if config.proximal_mu > 0:
        base, extra = FedProx, {"proximal_mu": config.proximal_mu}
    elif config.fedavgm:
        base, extra = FedAvgM, {"server_momentum": config.server_momentum, "server_learning_rate": config.server_lr}
    initial = model.get_arrays()
    if config.scaffold:
        initial += [np.zeros_like(a) for a in initial]
    averaging = base(
        fraction_fit=config.fraction_fit, fraction_evaluate=0.0,
        min_fit_clients=config.min_clients, min_evaluate_clients=0, min_available_clients=config.min_clients,
        evaluate_fn=evaluate_fn, on_fit_config_fn=fit_config, initial_parameters=ndarrays_to_parameters(initial),
        fit_metrics_aggregation_fn=_weighted_loss, **extra,
    )
    server_step = None
    if config.server_adam_lr:
        from .server_adam import ServerAdam

        server_step = ServerAdam(model, lr=config.server_adam_lr, rounds=config.rounds, local_lr=config.train.lr,
                                 max_grad_norm=config.train.max_grad_norm).step
    strategy: Strategy = CheckedStrategy(averaging, fingerprint=model.fingerprint, on_round=on_round,
                                         scaffold_weights=len(model.names) if config.scaffold else 0,
                                         server_step=server_step)
    if config.dp_noise_multiplier > 0:
        from flwr.server.strategy import DifferentialPrivacyServerSideFixedClipping

        strategy = DifferentialPrivacyServerSideFixedClipping(
            strategy, noise_multiplier=config.dp_noise_multiplier, clipping_norm=config.dp_clipping_norm,
            num_sampled_clients=config.min_clients,
        )
    return strategy


def _weighted_loss(metrics: list[tuple[int, dict]]) -> dict:
    total = sum(n for n, _ in metrics)
    losses = [(n, m["loss"]) for n, m in metrics if isinstance(m.get("loss"), (int, float))]
    if not losses or total == 0:
        return {}
    return {"train_loss": sum(n * loss for n, loss in losses) / sum(n for n, _ in losses)}


class RoundRecorder:
    """The server's per-round bookkeeping: what each client sent, held-out metrics, the model on disk.

    After every round the global model is scored on the server's held-out data (when
    given, every ``config.eval_every`` rounds and after the last) and written to
    ``output`` as an ordinary lmworks model directory, atomically, with
    ``federated_log.jsonl`` beside it.
    """

    def __init__(self, model: FederatedModel, config: FederatedConfig, *, eval_texts: Sequence[str] | None,
                 eval_labels: Sequence[str] | None, output: Path | None, log_file: Path | None = None) -> None:
        self.model, self.config, self.output = model, config, output
        self.log_file = log_file if log_file is not None else (output / LOG_FILE if output is not None else None)
        self.eval_texts = list(eval_texts) if eval_texts is not None else None
        self.eval_labels = [str(y) for y in eval_labels] if eval_labels is not None else None
        self.log: list[dict[str, Any]] = []
        self.started = time.perf_counter()

    def record(self, server_round: int, accepted, failures) -> None:
        """Log what every accepted client sent: row count, metric values, array dtypes and shapes."""
        from flwr.common import parameters_to_ndarrays

        self.log.append({
            "round": server_round,
            "clients": [
                {"num_examples": int(res.num_examples), "metrics": dict(res.metrics),
                 "arrays": [[str(a.dtype), list(a.shape)] for a in parameters_to_ndarrays(res.parameters)]}
                for _, res in accepted
            ],
            "failures": len(failures),
        })

    def evaluate(self, server_round: int, arrays: list[np.ndarray], _cfg: dict) -> tuple[float, dict] | None:
        """Flower's ``evaluate_fn``: score the global weights, write the model and the log."""
        self.model.set_arrays(arrays[:len(self.model.names)] if self.config.scaffold else arrays)
        metrics = None
        due = server_round % self.config.eval_every == 0 or server_round == self.config.rounds
        if self.eval_texts is not None and self.eval_labels is not None and due:
            metrics = self.model.classifier().evaluate(self.eval_texts, self.eval_labels)
            LOGGER.info("round %d/%d: held-out accuracy %.4f, macro-F1 %.4f", server_round, self.config.rounds,
                        metrics["accuracy"], metrics["macro_f1"])
        if server_round > 0:
            self._write(server_round, metrics)
        if metrics is None:
            return None
        return 1 - metrics["accuracy"], {"accuracy": metrics["accuracy"]}

    def _write(self, server_round: int, metrics: dict[str, Any] | None) -> None:
        log = self.log
        entry: dict[str, Any] = (log[-1] if log and log[-1]["round"] == server_round
                                 else {"round": server_round, "clients": []})
        if metrics is not None:
            entry["eval"] = {k: metrics[k] for k in ("accuracy", "macro_f1", "weighted_f1", "n")}
        entry["seconds"] = round(time.perf_counter() - self.started, 2)
        if self.output is not None:
            info = {"federated": {**self.config.to_dict(), "rounds_done": server_round,
                                  "fingerprint": self.model.fingerprint},
                    "clients_last_round": len(entry["clients"])}
            self.model.classifier(dev_metrics=metrics, info=info).save(self.output)
        if self.log_file is not None:
            with atomic_file(self.log_file) as fh:
                fh.writelines(json.dumps(r) + "\n" for r in log)


def run_server(
    labels: Sequence[str],
    config: FederatedConfig,
    *,
    address: str = "127.0.0.1:8080",
    eval_texts: Sequence[str] | None = None,
    eval_labels: Sequence[str] | None = None,
    output: str | Path | None = None,
) -> dict[str, Any]:
    """Serve ``config.rounds`` rounds of federated training to clients connecting at ``address``.

    Starts Flower's SuperLink on ``address`` as a child process and submits the lmworks
    Flower app (:mod:`lmworks.federated.app`) to it; Flower runs the ServerApp in its own
    process. After every round the global model is scored on the server's held-out data (when
    given) and written to ``output`` as an ordinary lmworks model directory (atomically:
    a crash mid-round leaves the previous round's model intact). ``output/federated_log.jsonl``
    records per round which clients sent what (example counts, array shapes, metric
    names) and the held-out metrics. Returns the final metrics and the log.
    """
    import tempfile

    from .deployment import FlowerCLI, read_log, split_address, stop, write_rows

    labels = _check_labels(labels, eval_texts, eval_labels)
    split_address(address)  # a malformed address fails before anything starts
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lmworks-server-") as tmp:
        home = Path(tmp)
        log_file = Path(output).resolve() / LOG_FILE if output is not None else home / LOG_FILE
        job = {"config": config.to_dict(), "labels": labels, "log": str(log_file),
               "output": str(Path(output).resolve()) if output is not None else None,
               "eval": None if eval_texts is None or eval_labels is None
               else str(write_rows(home / "eval.jsonl", eval_texts, eval_labels))}
        (home / "job.json").write_text(json.dumps(job), encoding="utf-8")
        link = _start_superlink(home, address)
        try:
            LOGGER.info("federated server on %s: %s with labels %s, %d round(s)", address, config.train.model,
                        labels, config.rounds)
            cli = FlowerCLI(home, address)
            _await_run(cli, cli.submit({"job": str(home / "job.json")}), link, home, log_file, config.rounds)
        finally:
            stop(link)
        log = read_log(log_file)
    final = log[-1].get("eval") if log else None
    return {"rounds": len(log), "final": final, "log": log, "seconds": round(time.perf_counter() - started, 2)}


def _check_labels(labels: Sequence[str], eval_texts, eval_labels) -> list[str]:
    labels = [str(x) for x in labels]
    if len(set(labels)) < 2:
        raise DataError(f"a federation needs at least two labels, got {labels}")
    unknown = sorted({str(y) for y in eval_labels or []} - set(labels))
    if eval_texts is not None and unknown:
        raise DataError(f"eval data has label(s) {unknown} that are not among the federation's labels {labels}")
    return labels


def _start_superlink(home: Path, address: str):
    """Flower's SuperLink on ``address`` (Fleet and Control API), its ServerApps run as its subprocesses."""
    from .deployment import answering, flower_command, local_address, spawn, split_address, stop, tail, wait_until

    host, port = split_address(address)
    link = spawn([flower_command("flower-superlink"), "--insecure", "--disable-runtime-dependency-installation",
                  "--host", host, "--port", str(port)], home / "superlink.log", home)
    ready = wait_until(lambda: link.poll() is not None or answering(local_address(address), timeout=1.0), 120)
    if link.poll() is not None or not ready:
        stop(link)
        raise LmworksError(f"Flower's SuperLink did not start on {address}: {tail(home / 'superlink.log')}")
    return link


def _await_run(cli, run_id: int, link, home: Path, log_file: Path, rounds: int) -> None:
    """Until Flower reports the run finished: log each round, fail on the app's error or a dead SuperLink."""
    from .deployment import tail
    from .protocol import reported_error

    shown = 0
    while True:
        shown = show_progress(log_file, shown, rounds)
        if link.poll() is not None:
            raise LmworksError(f"Flower's SuperLink stopped (status {link.returncode}): "
                               f"{tail(home / 'superlink.log')}")
        status = cli.status(run_id)
        if status.startswith("finished"):
            break
        time.sleep(1.0)
    show_progress(log_file, shown, rounds)
    if status != "finished:completed":
        error = reported_error(home)
        raise LmworksError(f"the federated run failed: {error if error is not None else status}")


def show_progress(log_file: Path, shown: int, total: int) -> int:
    """Log the rounds the ServerApp has finished since the last call; return how many are shown."""
    from .deployment import read_log

    rounds = read_log(log_file)
    for entry in rounds[shown:]:
        ev = entry.get("eval") or {}
        LOGGER.info("round %d/%d done after %.0f s: %d client update(s), held-out accuracy %s", entry["round"], total,
                    entry.get("seconds", 0), len(entry.get("clients", [])),
                    f"{ev['accuracy']:.4f}" if "accuracy" in ev else "-")
    return len(rounds)
