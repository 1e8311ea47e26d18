"""``lmworks recommend``: train, evaluate, query and serve the text-aware recommender."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from .common import (
    RECOMMEND_PORT,
    ListOption,
    add_json_option,
    add_server_options,
    deprecated_alias,
    need,
    positional_with_alias,
    positive_int,
    write_json,
)

LOGGER = logging.getLogger("lmworks")


def register(sub) -> None:
    """Add the subcommand and its actions."""
    p = sub.add_parser(
        "recommend", help="rank items for a user from item text and click history",
        description="A two-tower recommender: the shipped encoder reads item text, a user is their recent "
        "positive items. New items with text but no clicks can be recommended.",
    )
    s = p.add_subparsers(dest="recommend_command", metavar="ACTION", required=True)
    _register_train(s)
    _register_use(s)


def _register_train(s) -> None:
    from ..recommend.data import Columns
    from ..recommend.model import RecommenderConfig

    d, c = RecommenderConfig(), Columns()
    t = s.add_parser("train", help="train on interactions and item texts, hold out a test set, report metrics",
                     description="INTERACTIONS has user_id, item_id, timestamp and optional rating or click "
                     "(CSV/JSONL/Parquet or RecBole .inter); ITEMS has item_id and text fields (or RecBole .item). "
                     "A rating >= --positive-threshold, or click=1, is a positive.")
    positional_with_alias(t, "interactions", "INTERACTIONS", "user_id, item_id, timestamp (+ rating or click) "
                          "rows: .csv, .jsonl, .parquet or RecBole .inter", old="--interactions")
    t.add_argument("--items", metavar="FILE", help="item texts (without it the model uses IDs only)")
    t.add_argument("--output", "-o", required=True, metavar="DIR", help="recommender directory to write")
    t.add_argument("--user-column", default=c.user, metavar="NAME", help="column holding the user ID")
    t.add_argument("--item-column", default=c.item, metavar="NAME", help="column holding the item ID")
    t.add_argument("--timestamp-column", default=c.timestamp, help="Unix seconds or ISO 8601")
    t.add_argument("--rating-column", default=c.rating, metavar="NAME", help="column holding an explicit rating")
    t.add_argument("--click-column", default=c.click, metavar="NAME", help="column holding click (1) / no click (0)")
    t.add_argument("--text-fields", action=ListOption, metavar="A,B",
                   help="item columns to read as text (default: all but the id)")
    t.add_argument("--positive-threshold", type=float, default=4.0,
                   help="ratings at or above this are positives (default: 4)")
    t.add_argument("--protocol", choices=["leave-last-out", "cold-start", "none"], default="leave-last-out",
                   help="what to hold out for evaluation; 'none' trains on everything (for production)")
    t.add_argument("--cold-fraction", type=float, default=0.2,
                   help="cold-start: share of items removed from training (half validation, half test)")
    t.add_argument("--model", default=d.model, help=f"text encoder name or directory (default: {d.model})")
    t.add_argument("--epochs", type=positive_int, default=d.epochs,
                   help="passes over the data at most (early stopping on validation)")
    t.add_argument("--dim", type=positive_int, default=d.dim, help="ranking space size")
    t.add_argument("--history-size", dest="history", type=positive_int, default=d.history,
                   help="recent positives that describe a user")
    deprecated_alias(t, "--history", "--history-size", "history", type=positive_int)
    t.add_argument("--batch-size", type=positive_int, default=d.batch_size, help="users per batch")
    t.add_argument("--lr", type=float, default=d.lr, help="peak learning rate")
    t.add_argument("--negatives", type=positive_int, default=d.negatives,
                   help="uniformly sampled negatives per batch, besides in-batch ones")
    t.add_argument("--id-dropout", type=float, default=d.id_dropout,
                   help="share of item-ID parts dropped while training, so text alone must rank")
    t.add_argument("--no-ids", action="store_true", help="text only: no item-ID embeddings")
    t.add_argument("--seed", type=int, default=d.seed, help="random seed")
    t.add_argument("--baselines", action="store_true",
                   help="also evaluate popularity and implicit ALS (tuned on validation) on the same split")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--encoding", default="utf-8", help="text encoding of CSV/JSONL input")
    t.set_defaults(run=run_train)


def _register_use(s) -> None:
    e = s.add_parser("evaluate", help="HR@10, NDCG@10, MRR and coverage on the held-out test set",
                     description="Re-measures the test set saved with the model: full ranking over the candidate "
                     "items, items the user already interacted with excluded.")
    e.add_argument("model_dir", metavar="DIR")
    add_json_option(e, "also write the metrics as JSON")
    e.add_argument("--baselines", action="store_true", help="also evaluate popularity and implicit ALS")
    e.add_argument("-k", type=positive_int, default=10, help="cut-off (default: 10)")
    e.set_defaults(run=run_evaluate)

    f = s.add_parser("for-user", help="top-k items for one user (unknown users get popular items)")
    f.add_argument("model_dir", metavar="DIR")
    f.add_argument("user_id", nargs="?", help="a user ID from the training interactions")
    f.add_argument("-k", type=positive_int, default=10, help="cut-off: how many items to list")
    f.add_argument("--history", action=ListOption, metavar="ID,ID",
                   help="rank for these liked item IDs instead of a known user")
    add_json_option(f, "write the recommendations as JSON instead of printing lines")
    f.set_defaults(run=run_for_user)

    v = s.add_parser("serve", help="HTTP service: POST /v1/recommend",
                     description="Serves POST /v1/recommend, GET /healthz, GET /v1/model, GET /metrics, /docs.")
    v.add_argument("model_dir", metavar="DIR")
    add_server_options(v, port=RECOMMEND_PORT)
    v.add_argument("--api-key-env", metavar="VAR", help="require this environment variable's value as X-API-Key")
    v.add_argument("--max-k", type=positive_int, default=100, help="largest k a request may ask for")
    v.set_defaults(run=run_serve)


def run_train(args: argparse.Namespace) -> int:
    """Train, evaluate on the held-out split, save."""
    from ..recommend import Columns, TextRecommender, align_items, build_dataset, read_interactions, read_items
    from ..recommend.baselines import baseline_metrics
    from ..recommend.model import RecommenderConfig

    columns = Columns(args.user_column, args.item_column, args.timestamp_column, args.rating_column,
                      args.click_column)
    interactions = read_interactions(need(args, "interactions", "INTERACTIONS"), columns=columns,
                                     positive_threshold=args.positive_threshold, encoding=args.encoding)
    if interactions.n_duplicates:
        LOGGER.warning("%d duplicate (user, item) rows: kept the latest of each", interactions.n_duplicates)
    items = None
    if args.items:
        items = read_items(args.items, text_fields=args.text_fields or None, encoding=args.encoding)
    catalogue = align_items(interactions, items)
    missing = sum(1 for t in catalogue.texts if not t)
    if missing:
        LOGGER.warning("%d of %d items have no text: they are ranked from interactions only",
                       missing, len(catalogue))
    data = build_dataset(interactions, catalogue, protocol=args.protocol, cold_fraction=args.cold_fraction,
                         seed=args.seed)
    LOGGER.info("%d users, %d items, %d training interactions (%d positive); protocol %s", data.n_users,
                data.n_items, len(data.train), int(data.train["positive"].sum()), data.protocol)
    config = RecommenderConfig(model=args.model, epochs=args.epochs, dim=args.dim, history=args.history,
                               batch_size=args.batch_size, lr=args.lr, negatives=args.negatives,
                               id_dropout=args.id_dropout, use_ids=not args.no_ids, seed=args.seed)
    rec = TextRecommender(config).fit(data, progress=not args.quiet and sys.stderr.isatty())
    metrics: dict[str, dict[str, Any]] = {}
    if data.test.relevant:
        metrics = {"lmworks": rec.evaluate("test")}
        if args.baselines:
            metrics.update(baseline_metrics(data, k=config.k, seed=args.seed))
        print_table(metrics, f"test ({data.protocol})")
    rec.save(args.output, extra={"metrics": metrics})
    LOGGER.info("trained in %.0f s (best epoch %d); wrote %s", rec.training_["seconds"],
                rec.training_["best_epoch"], args.output)
    return 0


def print_table(metrics: dict[str, dict[str, Any]], title: str) -> None:
    """Models as rows, metrics as columns."""
    names = [m for m in next(iter(metrics.values())) if m not in ("users", "candidates", "params")]
    print(f"{title}: {next(iter(metrics.values()))['users']} users, "
          f"{next(iter(metrics.values()))['candidates']} candidate items")
    print(f"{'model':<14}" + "".join(f"{n:>10}" for n in names))
    for model, row in metrics.items():
        print(f"{model:<14}" + "".join(f"{row[n]:>10.4f}" for n in names))


def run_evaluate(args: argparse.Namespace) -> int:
    """Re-measure the saved test set."""
    from ..recommend import TextRecommender
    from ..recommend.baselines import baseline_metrics

    rec = TextRecommender.load(args.model_dir)
    metrics: dict[str, dict[str, Any]] = {"lmworks": rec.evaluate("test", k=args.k)}
    if args.baselines:
        metrics.update(baseline_metrics(rec.data_, k=args.k, seed=rec.config.seed))
    print_table(metrics, f"test ({rec.data_.protocol})")
    if args.json:
        write_json(args.json, metrics)
    return 0


def run_for_user(args: argparse.Namespace) -> int:
    """Print one user's top-k."""
    from ..errors import ConfigError
    from ..recommend import TextRecommender

    if args.user_id is None and args.history is None:
        raise ConfigError("give USER_ID or --history")
    rec = TextRecommender.load(args.model_dir)
    result = rec.recommend(args.user_id, history=args.history, k=args.k)
    if result.message:
        LOGGER.warning("%s", result.message)
    if result.ignored_history:
        LOGGER.warning("unknown item IDs in --history ignored: %s", ", ".join(result.ignored_history))
    if args.json:
        write_json(args.json, result.to_json())
        return 0
    for rank, item in enumerate(result.items, 1):
        print(f"{rank:>3}  {item['item_id']:<10} {item['score']:>8.3f}  {item['text']}")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    """Serve over HTTP."""
    from ..recommend import TextRecommender
    from ..recommend.service import create_recommender_app
    from ..serve.common import api_key_from_env
    from ..serve.runner import run_app

    key = api_key_from_env(args.api_key_env)
    app = create_recommender_app(TextRecommender.load(args.model_dir), api_key=key, max_k=args.max_k)
    LOGGER.info("recommender on http://%s:%d (docs: /docs)", args.host, args.port)
    run_app(app, host=args.host, port=args.port)
    return 0
