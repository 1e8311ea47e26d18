"""``lmworks label``: an active-learning labelling page (start), its progress (status), the labels (export)."""

from __future__ import annotations

import argparse
import logging

from .common import LABEL_PORT, STDOUT, ListOption, add_json_option, add_server_options, write_json

LOGGER = logging.getLogger("lmworks")


def register(sub) -> None:
    """Add the subcommand and its actions."""
    p = sub.add_parser(
        "label", help="label a pool of texts on a page that asks for the most informative ones first",
        description="Active learning: a model retrained every few labels picks the text it is least sure about; "
        "a random share of texts (the audit sample) gives an honest accuracy estimate. Every label is an event in "
        "the project's SQLite file, committed before the page moves on.",
    )
    s = p.add_subparsers(dest="label_command", metavar="ACTION", required=True)
    _register_start(s)
    st = s.add_parser("status", help="counts, the accuracy estimate, annotator agreement and conflicts",
                      description="Reads the project file; works while the server runs.")
    st.add_argument("project", metavar="PROJECT", help="the project directory given to 'label start --project'")
    add_json_option(st, "write the status as JSON")
    st.set_defaults(run=run_status)
    e = s.add_parser("export", help="write the agreed labels to a CSV/JSONL/Parquet file for 'lmworks train'",
                     description="One row per text with an agreed label (the majority of its annotators): text, "
                     "label, row (in the pool file), origin (pool or seed), annotators, audit. Ties are left out "
                     "and counted; skipped texts are not labels.")
    e.add_argument("project", metavar="PROJECT", help="the project directory")
    e.add_argument("--output", "-o", required=True, metavar="FILE", help="the file to write (.csv, .jsonl, .parquet)")
    e.set_defaults(run=run_export)


def _register_start(s) -> None:
    from ..label.loop import Strategy

    p = s.add_parser("start", help="create (or reopen) a project and serve its labelling page",
                     description="Keys on the page: 1-9 label, s skip, u undo. Reopening a project with the same "
                     "pool carries on where it stopped; one server per project at a time.")
    p.add_argument("pool", metavar="POOL", help="the unlabelled texts: CSV, JSONL or Parquet with a text column")
    p.add_argument("--labels", action=ListOption, required=True, help="the label set: its names, in key order (1-9)")
    p.add_argument("--project", required=True, metavar="DIR", help="where the project's labels.db lives "
                   "(created if missing)")
    p.add_argument("--seed-labels", metavar="FILE", help="labels you already have (text and label columns); "
                   "texts not in the pool are added")
    p.add_argument("--text-column", action=ListOption, default=["text"], metavar="NAME",
                   help="the pool's column holding the text (one column)")
    p.add_argument("--strategy", choices=[x.value for x in Strategy], default="margin",
                   help="which text comes next: the smallest margin between the two likeliest labels, the highest "
                   "entropy, random, or diverse (uncertain and unlike what is labelled) (default: margin)")
    p.add_argument("--retrain-every", type=int, default=10, metavar="N",
                   help="refit the model in the background after this many new labels")
    p.add_argument("--audit-every", type=int, default=10, metavar="K",
                   help="every K-th text is a random pick kept out of training: the accuracy estimate's sample "
                   "(0: no estimate)")
    p.add_argument("--overlap", type=float, default=0.0, metavar="SHARE",
                   help="share of texts also shown to a second annotator, for agreement (Cohen's kappa)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the audit draws and the cold start")
    add_server_options(p, port=LABEL_PORT)
    p.add_argument("--api-key-env", metavar="VAR", help="require the API key held in this environment variable")
    p.set_defaults(run=run_start)


def run_start(args: argparse.Namespace) -> int:
    """Lock the project, open it (fitting the pool's features), serve until Ctrl-C."""
    from ..errors import ConfigError
    from ..label import LabelConfig, LabelProject
    from ..label.service import ServerLock, create_label_app
    from ..serve.common import api_key_from_env
    from ..serve.runner import run_app

    key = api_key_from_env(args.api_key_env)
    if len(args.text_column) != 1:
        raise ConfigError(f"--text-column: labelling reads one text column, got {','.join(args.text_column)}")
    config = LabelConfig(labels=args.labels, text_column=args.text_column[0], strategy=args.strategy,
                         retrain_every=args.retrain_every, audit_every=args.audit_every, overlap=args.overlap,
                         seed=args.seed)
    lock = ServerLock(args.project).acquire(f"http://{args.host}:{args.port}")
    try:
        LOGGER.info("reading the pool and fitting its features ...")
        project = LabelProject.start(args.project, args.pool, config, seed_labels=args.seed_labels)
        status = project.status()
        LOGGER.info("%d texts, %d labelled; labelling page on http://%s:%d", status["pool"], status["labelled"],
                    args.host, args.port)
        try:
            run_app(create_label_app(project, api_key=key), host=args.host, port=args.port)
        finally:
            project.close()
    finally:
        lock.release()
    return 0


def run_status(args: argparse.Namespace) -> int:
    """Print (or write as JSON) the project's counts and estimate."""
    from ..label import LabelProject

    project = LabelProject(args.project, learn=False)
    status = project.status()
    project.close()
    if args.json:
        write_json(args.json, status)
        if args.json == STDOUT:
            return 0
    print(f"{status['labelled']} of {status['pool']} texts labelled, {status['skipped']} skipped "
          f"(strategy {status['strategy']})")
    print("  " + ", ".join(f"{k}: {v}" for k, v in status["labels"].items()))
    estimate = status["estimate"]
    if estimate and estimate["accuracy"] is not None:
        print(f"  estimated accuracy {estimate['accuracy']:.3f} (95% interval {estimate['low']:.3f}-"
              f"{estimate['high']:.3f}) on {estimate['audited']} random audit texts")
    for pair in status["agreement"]:
        kappa = "-" if pair["kappa"] is None else f"{pair['kappa']:.3f}"
        print(f"  {' & '.join(pair['annotators'])}: {pair['items']} shared, agreement {pair['agreement']:.3f}, "
              f"kappa {kappa}")
    if status["conflicts"]:
        print(f"  {status['conflicts']} conflict(s) to review (GET /api/conflicts on the page's server)")
    return 0


def run_export(args: argparse.Namespace) -> int:
    """Write the agreed labels."""
    from ..label import LabelProject

    project = LabelProject(args.project, learn=False)
    counts = project.export(args.output)
    project.close()
    print(f"wrote {counts['rows']} labelled texts to {args.output}"
          + (f"; {counts['conflicts']} conflict(s) left out" if counts["conflicts"] else ""))
    return 0
