"""The Flower app: the ServerApp and ClientApp that Flower's runtime runs for lmworks.

This is the glue of Flower's task/glue split: the task (model, local training, strategy,
bookkeeping) lives in :mod:`.model`, :mod:`.client` and :mod:`.server`; here Flower's
runtime is handed the two entry points named in ``flower_app/pyproject.toml``.

Each party's wrapper process (:func:`lmworks.federated.run_server`,
:func:`lmworks.federated.run_client`) writes a *job file* into its private Flower home and
passes its path: the server through the run config (``job``), a client through its
SuperNode's node config (``job``). The job file says where the data, the log and the
output live on that party's disk; nothing in it travels to the other side.
"""

from __future__ import annotations

import json
from pathlib import Path

from flwr.app import Context
from flwr.client import ClientApp
from flwr.compat.server import ServerAppComponents
from flwr.server import ServerApp, ServerConfig

from .config import FederatedConfig
from .deployment import die_with_parent, read_json, read_rows
from .protocol import PROTOCOL, reported


def server_components(context: Context) -> ServerAppComponents:
    """Flower's ``server_fn``: the checked strategy and the round count, from the server's job file."""
    from .model import FederatedModel
    from .server import RoundRecorder, build_strategy

    die_with_parent()
    job_file = str(context.run_config["job"])
    job = read_json(Path(job_file))
    with reported(Path(job_file).parent):
        config = FederatedConfig.from_dict(job["config"])
        labels = [str(x) for x in job["labels"]]
        model = FederatedModel(labels, config.train)
        eval_texts, eval_labels = read_rows(job["eval"]) if job.get("eval") else (None, None)
        recorder = RoundRecorder(model, config, eval_texts=eval_texts, eval_labels=eval_labels,
                                 output=Path(job["output"]) if job.get("output") else None, log_file=Path(job["log"]))

        def fit_config(server_round: int) -> dict:
            return {"round": server_round, "rounds": config.rounds, "protocol": PROTOCOL,
                    "fingerprint": model.fingerprint, "labels": json.dumps(labels),
                    "train_config": json.dumps(config.round_training(server_round).to_dict()),
                    "scaffold": config.scaffold, "fraction_fit": config.fraction_fit}

        strategy = build_strategy(config, model, on_round=recorder.record, evaluate_fn=recorder.evaluate,
                                  fit_config=fit_config)
    return ServerAppComponents(strategy=strategy,
                               config=ServerConfig(num_rounds=config.rounds, round_timeout=config.round_timeout))


def client(context: Context):
    """Flower's ``client_fn``: this owner's :class:`LmworksClient` over the rows its job file names."""
    from .client import LmworksClient

    die_with_parent()
    job_file = str(context.node_config["job"])
    job = read_json(Path(job_file))
    texts, labels = read_rows(job["data"])
    own = LmworksClient(texts, labels, source=job["source"],
                        model=job.get("model"), num_threads=job.get("num_threads"), state=context.state,
                        job_dir=Path(job_file).parent)
    return own.to_client()


server_app = ServerApp(server_fn=server_components)
client_app = ClientApp(client_fn=client)
