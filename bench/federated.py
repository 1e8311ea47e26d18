"""Benchmark: federated vs centralised vs local-only fine-tuning on Rotten Tomatoes.

All three fine-tune the shipped MiniLM with the same batch size, max length and seed and
the same total number of passes over the training split, and are scored on the same
held-out test split (seed-13 80/10/10 split of ``bench/train_rotten_tomatoes.py``), which
none of them trains or selects on. Centralised and local-only training use ``lmworks
train``'s defaults (AdamW); federated clients use the federation's default local SGD:

* **federated**: ``lmworks federated simulate``'s engine: the training split dealt to
  ``--clients`` clients with Dirichlet(``--alpha``) label shares, one process per client
  and one server process (Flower SuperLink and SuperNodes on 127.0.0.1), FedAvg weighted by examples,
  ``--rounds`` rounds of ``--local-epochs`` each;
* **centralised**: one model trained on the whole training split for
  ``rounds x local_epochs`` epochs;
* **local-only**: each client trains alone on its own shard for as many epochs, and
  is scored on the same test split (mean, min and max over clients).

    .venv/bin/python bench/federated.py --json runs/bench_federated.json
    .venv/bin/python bench/federated.py --limit 1500 --rounds 2   # smoke run, a few minutes
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--local-epochs", type=float, default=0.5)
    parser.add_argument("--local-steps", type=int, default=0, help="equal optimiser steps per client per round")
    parser.add_argument("--server-momentum", type=float, default=0.0)
    parser.add_argument("--server-lr", type=float, default=1.0)
    parser.add_argument("--server-adam", type=float, default=0.0, help="FedAdam: server AdamW peak lr")
    parser.add_argument("--scaffold", action="store_true", help="SCAFFOLD control variates")
    parser.add_argument("--centralised-epochs", type=float, help="default: rounds x local epochs")
    parser.add_argument("--proximal-mu", type=float, default=0.0)
    parser.add_argument("--optimizer", default=None, help="local optimiser (default: the federation default)")
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--head-lr-multiplier", type=float, default=None)
    parser.add_argument("--batch-size", type=int, default=None, help="local batch size (default 32)")
    parser.add_argument("--no-logit-adjustment", action="store_true")
    parser.add_argument("--freeze-embeddings", action="store_true",
                        help="keep the word embeddings fixed (they stay home: half the traffic)")
    parser.add_argument("--eval-every", type=int, default=1, help="server scores on dev every N rounds")
    parser.add_argument("--seed", type=int, default=42, help="training seed")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the Dirichlet split")
    parser.add_argument("--limit", type=int, help="use a stratified sample of N texts")
    parser.add_argument("--skip", nargs="*", default=[], choices=["federated", "centralised", "local"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from sklearn.metrics import accuracy_score, f1_score
    from train_rotten_tomatoes import load_split  # same folder: the benchmark's own split

    from lmworks import TextClassifier
    from lmworks.federated import FederatedConfig, dirichlet_split
    from lmworks.federated.config import default_local_training
    from lmworks.federated.simulate import simulate

    data = load_split(args.limit, 13)
    train, dev, test = data["train"], data["dev"], data["test"]
    overrides = {"optimizer": args.optimizer, "lr": args.lr, "head_lr_multiplier": args.head_lr_multiplier,
                 "batch_size": args.batch_size}
    local = default_local_training().replace(seed=args.seed, **{k: v for k, v in overrides.items() if v})
    if args.no_logit_adjustment:
        local = local.replace(logit_adjustment=False)
    if args.freeze_embeddings:
        local = local.replace(freeze_embeddings=True)
    config = FederatedConfig(rounds=args.rounds, local_epochs=args.local_epochs, local_steps=args.local_steps,
                             server_momentum=args.server_momentum, server_lr=args.server_lr,
                             server_adam_lr=args.server_adam, scaffold=args.scaffold,
                             proximal_mu=args.proximal_mu, eval_every=args.eval_every, train=local)
    total_epochs = args.centralised_epochs or args.rounds * args.local_epochs
    plain = dict(epochs=total_epochs, blend="none", eval_fraction=0.0, patience=0, seed=args.seed)
    rows: list[dict] = []

    def score(clf) -> dict:
        pred = clf.predict(test.texts)
        return {"accuracy": accuracy_score(test.labels, pred), "macro_f1": f1_score(test.labels, pred, average="macro")}

    if "federated" not in args.skip:
        start = time.perf_counter()
        out = Path(tempfile.mkdtemp(prefix="lmworks-bench-fed-")) / "global"
        result = simulate(train.texts, train.require_labels(), config, n_clients=args.clients, alpha=args.alpha,
                          eval_texts=dev.texts, eval_labels=dev.require_labels(), output=out,
                          split_seed=args.split_seed)
        wall = time.perf_counter() - start
        sizes = [c["rows"] for c in result["clients"]]
        by_round = {r["round"]: round(r["eval"]["accuracy"], 4) for r in result["rounds"] if "eval" in r}
        shares = [max(c["labels"].values()) / c["rows"] for c in result["clients"]]
        method = "FedAvg" + ("+prox" if args.proximal_mu else "") + ("+SCAFFOLD" if args.scaffold else "") + (
            "+FedAdam" if args.server_adam else "")
        rows.append({"method": f"federated {method}, {args.clients} clients, "
                               f"alpha={args.alpha:g}", **score(TextClassifier.load(out)), "wall_s": wall,
                     "notes": f"{args.rounds} rounds x "
                              + (f"{args.local_steps} local steps" if args.local_steps else
                                 f"{args.local_epochs:g} local epochs")
                              + (f", server momentum {args.server_momentum:g} lr {args.server_lr:g}"
                                 if args.server_momentum or args.server_lr != 1 else "")
                              + (f", server AdamW lr {args.server_adam:g}" if args.server_adam else "")
                              + ("; SCAFFOLD" if args.scaffold else "")
                              + f"; LA {not args.no_logit_adjustment}; shard sizes {sizes}; "
                              f"majority-label share per client {[round(s, 2) for s in shares]}; dev accuracy by "
                              f"round {by_round}"})
        print(json.dumps(rows[-1]), flush=True)
    if "centralised" not in args.skip:
        start = time.perf_counter()
        clf = TextClassifier("minilm", **plain).fit(train.texts, train.require_labels(), progress=False)
        rows.append({"method": "centralised (all training data in one place)", **score(clf),
                     "wall_s": time.perf_counter() - start, "notes": f"{total_epochs:g} epochs, same settings"})
        print(json.dumps(rows[-1]), flush=True)
    if "local" not in args.skip:
        start = time.perf_counter()
        labels = train.require_labels()
        scores = []
        for rows_of_client in dirichlet_split(labels, args.clients, args.alpha, seed=args.split_seed):
            texts = [train.texts[i] for i in rows_of_client]
            own = [labels[i] for i in rows_of_client]
            if len(set(own)) < 2:
                scores.append({"accuracy": accuracy_score(test.labels, [own[0]] * len(test.labels)),
                               "macro_f1": 0.0})
                continue
            scores.append(score(TextClassifier("minilm", **plain).fit(texts, own, progress=False)))
        accs = [s["accuracy"] for s in scores]
        rows.append({"method": "local-only (each client alone, mean over clients)",
                     "accuracy": statistics.mean(accs), "macro_f1": statistics.mean(s["macro_f1"] for s in scores),
                     "wall_s": time.perf_counter() - start,
                     "notes": f"per client {[round(a, 4) for a in accs]} (min {min(accs):.4f}, max {max(accs):.4f})"})
        print(json.dumps(rows[-1]), flush=True)

    print(f"\nRotten Tomatoes test split ({len(test)} texts), MiniLM, seed {args.seed}\n")
    print("| method | test accuracy | test macro-F1 | wall time | notes |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | {r['wall_s'] / 60:.1f} min "
              f"| {r['notes']} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
