"""``lmworks federated server|client|simulate``: federated fine-tuning on Flower."""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from .common import (
    ListOption,
    add_data_options,
    add_json_option,
    config_option,
    deprecated_alias,
    fields_from,
    need,
    positional_with_alias,
    positive_int,
    read_options,
    write_json,
)

LOGGER = logging.getLogger("lmworks")


#: ``lmworks federated`` flags for :class:`FederatedConfig` fields: (flag, field, type, help, extra
#: add_argument keywords). Defaults and mode choices come from the config (``config_option``).
FEDERATION: tuple[tuple[str, str, Any, str, dict[str, Any]], ...] = (
    ("--rounds", "rounds", positive_int, "federated rounds", {}),
    ("--local-epochs", "local_epochs", float, "passes over its own data each client makes per round", {}),
    ("--local-steps", "local_steps", int, "instead of --local-epochs, every client takes exactly this many "
     "optimiser steps per round: equal work per client keeps a large one-sided client from dominating (0: "
     "--local-epochs)", {}),
    ("--server-momentum", "server_momentum", float, "FedAvgM: momentum the server applies to the averaged update "
     "across rounds", {}),
    ("--server-lr", "server_lr", float, "FedAvgM: server learning rate on the averaged update", {}),
    ("--server-adam", "server_adam_lr", float, "FedAdam: the server applies lmworks train's AdamW (this peak lr, "
     "warm-up and linear decay over the rounds) to the averaged update; pair with --local-steps 1 and "
     "--no-logit-adjustment, so that it trains like centralised fine-tuning; 0 is off", {"metavar": "LR"}),
    ("--scaffold", "scaffold", bool, "SCAFFOLD control variates: correct each client's local steps towards the "
     "federation's gradient, against label-skew drift (local SGD only; doubles traffic)", {}),
    ("--fraction-fit", "fraction_fit", float, "share of connected clients trained each round", {}),
    ("--proximal-mu", "proximal_mu", float, "FedProx proximal term; 0 is plain FedAvg", {}),
    ("--no-lr-decay", "lr_decay", bool, "keep the learning rate of round 1 in every round (default: decay "
     "linearly over rounds)", {}),
    ("--dp-noise-multiplier", "dp_noise_multiplier", float, "Flower server-side differential privacy: Gaussian "
     "noise multiplier; 0 is off", {}),
    ("--dp-clipping-norm", "dp_clipping_norm", float, "clip each client update to this L2 norm under DP", {}),
    ("--round-timeout", "round_timeout", float, "seconds a round waits for clients (default: no limit)", {}),
    ("--eval-every", "eval_every", positive_int, "score the global model on the held-out data every N rounds and "
     "after the last", {}),
)
#: The local-training flags (:class:`TrainConfig` fields) the server sends to every client.
LOCAL_TRAINING: tuple[tuple[str, str, Any, str, dict[str, Any]], ...] = (
    ("--model", "model", str, "encoder name or directory", {}),
    ("--head", "head", str, "classification head", {}),
    ("--optimizer", "optimizer", str, "local optimiser (AdamW lets one-class clients pull too hard)", {}),
    ("--lr", "lr", float, "peak local learning rate", {}),
    ("--head-lr-multiplier", "head_lr_multiplier", float, "the new head learns this many times faster", {}),
    ("--batch-size", "batch_size", positive_int, "texts per batch", {}),
    ("--max-length", "max_length", positive_int, "max tokens per text; longer ones are truncated", {}),
    ("--no-logit-adjustment", "logit_adjustment", bool, "train clients without logit adjustment (for clients "
     "whose label mixes are alike)", {}),
    ("--freeze-embeddings", "freeze_embeddings", bool, "keep the word embeddings fixed: they are never sent, which "
     "halves MiniLM's traffic", {}),
    ("--seed", "seed", int, "random seed", {}),
)


def _training_options(p: argparse.ArgumentParser) -> None:
    from ..federated.config import FederatedConfig, default_local_training

    g = p.add_argument_group("federation")
    for flag, field, kind, text, kw in FEDERATION:
        config_option(g, FederatedConfig(), flag, field, kind, text, **kw)
    m = p.add_argument_group("model and local training (sent to every client)")
    for flag, field, kind, text, kw in LOCAL_TRAINING:
        config_option(m, default_local_training(), flag, field, kind, text, **kw)
    p.add_argument("--config-json", metavar="FILE",
                   help="take every federation and training setting from this JSON file (as written by simulate)")


def _config(args: argparse.Namespace):
    from pathlib import Path

    from ..errors import ConfigError
    from ..federated.config import FederatedConfig, default_local_training

    if args.config_json:
        try:
            return FederatedConfig.from_dict(json.loads(Path(args.config_json).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as err:
            raise ConfigError(f"{args.config_json}: not a federation config ({err})") from err
    train = default_local_training().replace(**fields_from(args, LOCAL_TRAINING))
    return FederatedConfig(**fields_from(args, FEDERATION), min_clients=args.min_clients, train=train)


def register(sub) -> None:
    """Add ``federated`` and its three subcommands."""
    p = sub.add_parser(
        "federated", help="federated fine-tuning on Flower (data stays with its owners)",
        description="Fine-tune one classifier across data owners who never share their rows: a server holds the "
        "global model, clients train it on their own data and send back only weights (Flower, FedAvg/FedProx).",
    )
    fed = p.add_subparsers(dest="federated_command", metavar="ROLE", required=True)

    s = fed.add_parser("server", help="run the federation's server",
                       description="Wait for --min-clients clients, run --rounds rounds, score the global model on "
                       "--eval after each and write it to --output (an ordinary lmworks model directory).")
    s.add_argument("--address", default="0.0.0.0:8080", help="host:port to listen on (default: 0.0.0.0:8080)")
    s.add_argument("--labels", action=ListOption, metavar="LABEL,LABEL", help="the label set (default: the labels of "
                   "--eval)")
    s.add_argument("--eval", metavar="DATA", help="held-out data the server scores the global model on")
    s.add_argument("--output", "-o", metavar="DIR", help="global model directory to write, rewritten after each round")
    s.add_argument("--min-clients", type=positive_int, default=2, help="clients to wait for (default: 2)")
    add_data_options(s)
    _training_options(s)
    s.set_defaults(run=run_server)

    c = fed.add_parser("client", help="join a federation with your own data",
                       description="Connect to a federated server and train its model on --data each round. Only "
                       "weights, the row count, the training loss and the model fingerprint are sent.")
    c.add_argument("--server", default="127.0.0.1:8080", help="server host:port (default: 127.0.0.1:8080)")
    positional_with_alias(c, "data", "DATA", "this client's labelled data: .csv, .jsonl, .parquet", old="--data")
    c.add_argument("--model", help="local encoder (default: the one the server names); must match the server's")
    c.add_argument("--threads", type=positive_int, help="torch threads (default: all usable CPUs)")
    c.add_argument("--max-wait", type=float, default=60.0,
                   help="give up after the server has been unreachable this many seconds (default: 60)")
    c.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    add_data_options(c)
    c.set_defaults(run=run_client)

    m = fed.add_parser("simulate", help="split one dataset over N local clients and federate it",
                       description="Split DATA over --clients clients with Dirichlet(--dirichlet-alpha) label shares "
                       "(non-IID), start a server and one process per client on 127.0.0.1, and report the global "
                       "model on the held-out data each round.")
    m.add_argument("data", metavar="DATA", help="labelled data to split over the clients")
    m.add_argument("--clients", type=positive_int, default=4, help="number of clients (default: 4)")
    m.add_argument("--dirichlet-alpha", type=float, default=1.0,
                   help="Dirichlet concentration of the clients' label shares: 0.1 very skewed, 100 nearly IID "
                   "(default: 1.0)")
    deprecated_alias(m, "--alpha", "--dirichlet-alpha", "dirichlet_alpha", type=float)
    m.add_argument("--split-seed", type=int, default=0, help="seed of the split (default: 0)")
    ev = m.add_mutually_exclusive_group()
    ev.add_argument("--eval", metavar="DATA", help="held-out data the server scores on")
    ev.add_argument("--eval-fraction", type=float, default=0.1,
                    help="hold out this share of DATA when --eval is not given (default: 0.1)")
    m.add_argument("--output", "-o", required=True, metavar="DIR", help="global model directory to write")
    m.add_argument("--client-threads", type=positive_int, help="torch threads per client (default: CPUs / clients)")
    m.add_argument("--workdir", metavar="DIR", help="where shards and process logs go (default: a temp dir)")
    add_json_option(m, "write the per-round log and final metrics as JSON")
    add_data_options(m)
    _training_options(m)
    m.set_defaults(run=run_simulate, min_clients=2)


def run_server(args: argparse.Namespace) -> int:
    """Serve the rounds."""
    from ..data import read_dataset
    from ..errors import ConfigError
    from ..federated.server import run_server as serve

    config = _config(args)
    if args.output:
        from ..model_dir import check_output_dir

        check_output_dir(args.output)
    read = read_options(args)
    ev = read_dataset(args.eval, **read) if args.eval else None
    labels = args.labels or (sorted(set(ev.require_labels())) if ev else None)
    if not labels:
        raise ConfigError("the server needs the label set: pass --labels or --eval")
    result = serve(labels, config, address=args.address, eval_texts=ev.texts if ev else None,
                   eval_labels=ev.require_labels() if ev else None, output=args.output)
    final = result["final"]
    LOGGER.info("federation finished: %d round(s) in %.0f s%s", result["rounds"], result["seconds"],
                f", held-out accuracy {final['accuracy']:.4f}" if final else "")
    if args.output:
        print(f"global model written to {args.output}")
    return 0


def run_client(args: argparse.Namespace) -> int:
    """Train with the server until it ends the federation."""
    from ..data import read_dataset
    from ..federated.client import run_client as join

    path = need(args, "data", "DATA")
    data = read_dataset(path, **read_options(args))
    LOGGER.info("joining the federation at %s with %d rows from %s", args.server, len(data), path)
    result = join(data.texts, data.require_labels(), address=args.server, source=path, model=args.model,
                  num_threads=args.threads, max_wait=args.max_wait, progress=not args.quiet)
    LOGGER.info("federation finished; this client last trained in round %d", result["rounds"])
    return 0


def run_simulate(args: argparse.Namespace) -> int:
    """Split, federate, report."""
    from ..classifier import TextClassifier
    from ..data import read_dataset, split_dataset
    from ..evaluation import format_report
    from ..federated.simulate import simulate
    from ..model_dir import check_output_dir

    check_output_dir(args.output)
    read = read_options(args)
    data = read_dataset(args.data, **read)
    texts, labels = data.texts, data.require_labels()
    if args.eval:
        ev = read_dataset(args.eval, **read)
        eval_texts, eval_labels = ev.texts, ev.require_labels()
    else:
        texts, labels, eval_texts, eval_labels = split_dataset(texts, labels, fraction=args.eval_fraction,
                                                               seed=args.split_seed)
    config = _config(args)
    result = simulate(texts, labels, config, n_clients=args.clients, alpha=args.dirichlet_alpha, eval_texts=eval_texts,
                      eval_labels=eval_labels, output=args.output, split_seed=args.split_seed,
                      client_threads=args.client_threads, workdir=args.workdir)
    metrics = TextClassifier.load(args.output).evaluate(eval_texts, eval_labels)
    print(f"global model after {len(result['rounds'])} round(s), held-out data ({metrics['n']} texts):")
    print(format_report(metrics))
    if args.json:
        write_json(args.json, {**result, "eval": metrics})
    print(f"\nglobal model written to {args.output}")
    return 0
