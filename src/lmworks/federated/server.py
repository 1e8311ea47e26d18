"""The federated server: holds the global model, runs a Flower strategy, keeps checkpoints."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_file
from .config import FederatedConfig
from .model import PROTOCOL, FederatedModel

LOGGER = logging.getLogger("lmworks")
LOG_FILE = "federated_log.jsonl"


def _strategy_class(base: type) -> type:
    """``base`` (FedAvg, FedAvgM or FedProx) that drops results from clients running another model.

    ``server_step(current, averaged) -> new`` (FedAdam) turns the averaged weights into the
    next global ones; without it the average is the next global model.
    """

    class Checked(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, fingerprint: str, on_round: Any, scaffold_weights: int = 0,
                     server_step: Any = None, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.fingerprint = fingerprint
            self.on_round = on_round
            # SCAFFOLD: the global "parameters" are [weights..., server control c...]; clients
            # return [weights..., c_i+ - c_i...], whose example-weighted mean is added to c.
            self.scaffold_weights = scaffold_weights
            self.server_step = server_step

        def aggregate_fit(self, server_round, results, failures):
            from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays

            accepted = []
            for proxy, res in results:
                theirs = res.metrics.get("fingerprint")
                if theirs != self.fingerprint:
                    LOGGER.error("round %d: refused the update of client %s: its model %s differs from the "
                                 "server's %s", server_round, proxy.cid, theirs, self.fingerprint)
                    failures.append(RuntimeError("model mismatch"))
                    continue
                accepted.append((proxy, res))
            self.on_round(server_round, accepted, failures)
            if not accepted:
                LOGGER.error("round %d: no usable client update; the global model is unchanged", server_round)
                return None, {}
            params, metrics = super().aggregate_fit(server_round, accepted, failures)
            if self.scaffold_weights and params is not None:
                from .scaffold import split

                weights, mean_delta = split(parameters_to_ndarrays(params), self.scaffold_weights)
                old = parameters_to_ndarrays(self.current)[self.scaffold_weights:]
                params = ndarrays_to_parameters(weights + [c + d for c, d in zip(old, mean_delta)])
            if self.server_step is not None and params is not None:
                params = ndarrays_to_parameters(self.server_step(parameters_to_ndarrays(self.current),
                                                                 parameters_to_ndarrays(params)))
            if params is not None:
                self.current = params
            return params, metrics

        def initialize_parameters(self, client_manager):
            self.current = self.initial_parameters
            return super().initialize_parameters(client_manager)

    return Checked


def _weighted_loss(metrics: list[tuple[int, dict]]) -> dict:
    total = sum(n for n, _ in metrics)
    losses = [(n, m["loss"]) for n, m in metrics if isinstance(m.get("loss"), (int, float))]
    if not losses or total == 0:
        return {}
    return {"train_loss": sum(n * loss for n, loss in losses) / sum(n for n, _ in losses)}


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

    After every round the global model is scored on the server's held-out data (when
    given) and written to ``output`` as an ordinary lmworks model directory (atomically:
    a crash mid-round leaves the previous round's model intact). ``output/federated_log.jsonl``
    records per round which clients sent what (example counts, array shapes, metric
    names) and the held-out metrics. Returns the final metrics and the log.
    """
    import flwr
    from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays
    from flwr.server import ServerConfig
    from flwr.server.strategy import FedAvg, FedAvgM, FedProx

    from ..errors import DataError

    labels = [str(x) for x in labels]
    if len(set(labels)) < 2:
        raise DataError(f"a federation needs at least two labels, got {labels}")
    if eval_texts is not None:
        unknown = sorted({str(y) for y in eval_labels or []} - set(labels))
        if unknown:
            raise DataError(f"eval data has label(s) {unknown} that are not among the federation's labels {labels}")
    out_dir = Path(output) if output is not None else None
    model = FederatedModel(labels, config.train)
    fingerprint = model.fingerprint
    LOGGER.info("federated server on %s: %s with labels %s, %d round(s), model %s", address, config.train.model,
                labels, config.rounds, fingerprint)
    log: list[dict[str, Any]] = []
    started = time.perf_counter()

    def record(server_round: int, accepted, failures) -> None:
        log.append({
            "round": server_round,
            "clients": [
                {"num_examples": int(res.num_examples), "metrics": dict(res.metrics),
                 "arrays": [[str(a.dtype), list(a.shape)] for a in parameters_to_ndarrays(res.parameters)]}
                for _, res in accepted
            ],
            "failures": len(failures),
        })

    def evaluate(server_round: int, arrays: list[np.ndarray], _cfg: dict) -> tuple[float, dict] | None:
        model.set_arrays(arrays[:len(model.names)] if config.scaffold else arrays)
        metrics = None
        due = server_round % config.eval_every == 0 or server_round == config.rounds
        if eval_texts is not None and eval_labels is not None and due:
            metrics = model.classifier().evaluate(list(eval_texts), [str(y) for y in eval_labels])
            LOGGER.info("round %d/%d: held-out accuracy %.4f, macro-F1 %.4f", server_round, config.rounds,
                        metrics["accuracy"], metrics["macro_f1"])
        if server_round == 0:
            return None if metrics is None else (1 - metrics["accuracy"], {"accuracy": metrics["accuracy"]})
        entry = log[-1] if log and log[-1]["round"] == server_round else {"round": server_round, "clients": []}
        if metrics is not None:
            entry["eval"] = {k: metrics[k] for k in ("accuracy", "macro_f1", "weighted_f1", "n")}
        entry["seconds"] = round(time.perf_counter() - started, 2)
        if out_dir is not None:
            info = {"federated": {**config.to_dict(), "rounds_done": server_round, "fingerprint": fingerprint},
                    "clients_last_round": len(entry["clients"])}
            model.classifier(dev_metrics=metrics, info=info).save(out_dir)
            with atomic_file(out_dir / LOG_FILE) as fh:
                fh.writelines(json.dumps(r) + "\n" for r in log)
        if metrics is None:
            return None
        return 1 - metrics["accuracy"], {"accuracy": metrics["accuracy"]}

    def fit_config(server_round: int) -> dict:
        return {"round": server_round, "rounds": config.rounds, "protocol": PROTOCOL, "fingerprint": fingerprint,
                "labels": json.dumps(labels), "train_config": json.dumps(config.round_training(server_round).to_dict()),
                "scaffold": config.scaffold}

    base: type = FedAvg
    extra: dict[str, float] = {}
    if config.proximal_mu > 0:
        base, extra = FedProx, {"proximal_mu": config.proximal_mu}
    elif config.fedavgm:
        base, extra = FedAvgM, {"server_momentum": config.server_momentum, "server_learning_rate": config.server_lr}
    initial = model.get_arrays()
    server_step = None
    if config.server_adam_lr:
        from .server_adam import ServerAdam

        server_step = ServerAdam(model, lr=config.server_adam_lr, rounds=config.rounds, local_lr=config.train.lr,
                                 max_grad_norm=config.train.max_grad_norm).step
    if config.scaffold:
        initial += [np.zeros_like(a) for a in initial]
    strategy: Any = _strategy_class(base)(
        fingerprint=fingerprint, on_round=record, scaffold_weights=len(model.names) if config.scaffold else 0,
        server_step=server_step,
        fraction_fit=config.fraction_fit, fraction_evaluate=0.0,
        min_fit_clients=config.min_clients, min_evaluate_clients=0, min_available_clients=config.min_clients,
        evaluate_fn=evaluate, on_fit_config_fn=fit_config,
        initial_parameters=ndarrays_to_parameters(initial),
        fit_metrics_aggregation_fn=_weighted_loss, **extra,
    )
    if config.dp_noise_multiplier > 0:
        from flwr.server.strategy import DifferentialPrivacyServerSideFixedClipping

        strategy = DifferentialPrivacyServerSideFixedClipping(
            strategy, noise_multiplier=config.dp_noise_multiplier, clipping_norm=config.dp_clipping_norm,
            num_sampled_clients=config.min_clients,
        )
    with quiet_flower():
        flwr.server.start_server(server_address=address, strategy=strategy,
                                 config=ServerConfig(num_rounds=config.rounds, round_timeout=config.round_timeout))
    final = log[-1].get("eval") if log else None
    return {"rounds": len(log), "final": final, "log": log, "fingerprint": fingerprint,
            "seconds": round(time.perf_counter() - started, 2)}


class quiet_flower:
    """Keep Flower's warnings and errors, drop its per-message INFO chatter.

    Flower also warns about its deprecated gRPC entry points on every start, and logs a
    traceback for any exception a client raises; an lmworks error is printed by the CLI
    as one line instead.
    """

    def __enter__(self) -> quiet_flower:
        import warnings

        from ..errors import LmworksError

        self._logger = logging.getLogger("flwr")
        self._level = self._logger.level
        self._logger.setLevel(logging.WARNING)

        def strip_own_errors(record: logging.LogRecord) -> bool:
            if record.exc_info and isinstance(record.exc_info[1], LmworksError):
                return False
            return "deprecated" not in record.getMessage().lower()

        self._filter = strip_own_errors
        self._logger.addFilter(self._filter)
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._warnings.__exit__(*exc)
        self._logger.removeFilter(self._filter)
        self._logger.setLevel(self._level)
