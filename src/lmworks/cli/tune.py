"""``lmworks tune``: search models and hyperparameters within a time budget; ``tune report``: its page."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .common import ListOption, add_data_options, add_json_option, positive_int, read_options, write_json

LOGGER = logging.getLogger("lmworks")

#: ``lmworks tune report DIR`` is dispatched to this parser (DATA would otherwise swallow 'report').
REPORT_COMMAND = "tune-report"


def register(sub) -> None:
    """Add ``tune`` and ``tune report``."""
    from ..search.config import TuneConfig

    d = TuneConfig()
    p = sub.add_parser(
        "tune", help="search models and hyperparameters within a time budget",
        description="Run 'lmworks train' configurations as Optuna trials for --budget: each model's defaults "
        "first, then TPE; unpromising trials are pruned at equal shares of an epoch, the last one stops on time "
        "with its best checkpoint. --output is the best trial's model directory (with trials.csv): evaluate, "
        "predict, export, serve and explain work on it. Then: lmworks tune report OUTPUT --output tune.html",
    )
    p.add_argument("data", metavar="DATA", help="training data: .csv, .jsonl or .parquet")
    p.add_argument("--output", "-o", required=True, metavar="DIR", help="write the best trial's model directory here")
    p.add_argument("--eval", metavar="DATA", help="held-out dev data that scores every trial; never trained on "
                   "(default: 10%% of DATA held out, as train does)")
    p.add_argument("--test", metavar="DATA", help="held-out test data, scored once on the chosen model after the "
                   "search; never used to choose")
    add_data_options(p)
    p.add_argument("--multi-label", action="store_true", help="texts may carry several labels")
    _search_options(p, d)
    st = p.add_argument_group("study storage")
    st.add_argument("--storage", metavar="URL", help="Optuna storage: sqlite:///FILE or postgresql://... "
                    "(default: sqlite:///OUTPUT.tune/study.db); several processes on one PostgreSQL study share it")
    st.add_argument("--study-name", metavar="NAME", default=d.study_name,
                    help=f"the study in the storage (default: {d.study_name})")
    st.add_argument("--resume", action="store_true", help="continue (or join) the existing study")
    add_json_option(p, "write the best trial, its dev (and --test) scores and the trial counts as JSON")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(run=run)

    r = sub.add_parser(REPORT_COMMAND, help="(as 'lmworks tune report') the search's page: history, importances, "
                       "Pareto front", description="Write tune.html for a directory written by 'lmworks tune': the "
                       "optimisation history, parameter importances and, for two objectives, the Pareto front.")
    r.add_argument("model", metavar="DIR", help="a directory written by lmworks tune")
    r.add_argument("--output", "-o", required=True, metavar="FILE", help="the HTML page to write")
    r.set_defaults(run=run_report)


def _search_options(p, d) -> None:
    """The ``search`` group of ``tune``'s options."""
    from ..search.config import MIN_BUDGET_S, Objective, Pruner, Sampler

    s = p.add_argument_group("search")
    s.add_argument("--budget", metavar="TIME", default="30m",
                   help=f"wall-clock time for the whole search, e.g. 10m, 1h, 90s (minimum {MIN_BUDGET_S:g} s) "
                   "(default: 30m)")
    s.add_argument("--n-trials", type=positive_int, metavar="N", help="stop after N trials of this process even "
                   "with budget left")
    s.add_argument("--objective", action=ListOption, default=[Objective.MACRO_F1.value],
                   help="dev metric to maximise (macro_f1 or accuracy), optionally with latency for a Pareto front "
                   "of score against measured CPU ms per text, e.g. accuracy,latency (default: macro_f1)")
    s.add_argument("--sampler", choices=Sampler.choices(), default=Sampler(d.sampler).value,
                   help=f"how the next trial is chosen (default: {Sampler(d.sampler).value})")
    s.add_argument("--pruner", choices=Pruner.choices(), default=Pruner(d.pruner).value,
                   help=f"how unpromising trials stop early (default: {Pruner(d.pruner).value})")
    s.add_argument("--no-warm-start", dest="warm_start", action="store_false",
                   help="do not start from each model's defaults")
    s.add_argument("--models", action=ListOption, metavar="NAME",
                   help="models to choose among: tfidf, minilm, mpnet or checkpoint directories (default: those "
                   "installed of tfidf, minilm, mpnet)")
    s.add_argument("--fix", action=ListOption, metavar="NAME=VALUE",
                   help="fix parameters instead of searching them, e.g. --fix lr=3e-5,model=minilm")
    s.add_argument("--space", metavar="FILE", help="JSON file replacing parameter ranges, e.g. "
                   '{"lr": {"low": 1e-5, "high": 1e-3, "log": true}}')
    s.add_argument("--seed", type=int, default=d.seed, help=f"random seed of the sampler (default: {d.seed})")
    s.add_argument("--evals-per-epoch", metavar="N", type=positive_int, default=d.evals_per_epoch,
                   help=f"dev evaluations per epoch: the points the pruner compares at (default: {d.evals_per_epoch})")


def route(argv: list[str]) -> list[str]:
    """``tune report ...`` -> ``tune-report ...`` (the rest of argv is untouched)."""
    for i, arg in enumerate(argv):
        if not arg.startswith("-"):
            if arg == "tune" and argv[i + 1:i + 2] == ["report"]:
                return [*argv[:i], REPORT_COMMAND, *argv[i + 2:]]
            break
    return argv


def run(args: argparse.Namespace) -> int:
    """Read the data, search, write the best model, report."""
    from ..data import read_dataset
    from ..model_dir import check_output_dir
    from ..search import TuneConfig, tune
    from ..search.space import parse_fixed

    output = Path(args.output)
    check_output_dir(output)
    workdir = output.with_name(output.name + ".tune")
    storage = args.storage or f"sqlite:///{(workdir / 'study.db').resolve()}"
    config = TuneConfig(budget_s=args.budget, n_trials=args.n_trials, objectives=args.objective,
                        sampler=args.sampler, pruner=args.pruner, warm_start=args.warm_start, storage=storage,
                        study_name=args.study_name, resume=args.resume, seed=args.seed,
                        evals_per_epoch=args.evals_per_epoch, fixed=parse_fixed(args.fix or []), space_file=args.space,
                        models=tuple(args.models) if args.models else None)
    read = dict(read_options(args), multi_label=args.multi_label)
    train = read_dataset(args.data, **read)
    dev = read_dataset(args.eval, **read) if args.eval else None
    test = read_dataset(args.test, **read) if args.test else None
    if storage.startswith("sqlite:///"):
        workdir.mkdir(parents=True, exist_ok=True)
    LOGGER.info("searching for %s on %d rows from %s (study in %s)", args.budget, len(train), args.data,
                config.to_dict()["storage"])
    result = tune(train.texts, train.require_labels(), dev.texts if dev else None,
                  dev.require_labels() if dev else None, config=config, multi_label=args.multi_label,
                  output=output, workdir=workdir, test_texts=test.texts if test else None,
                  test_labels=test.require_labels() if test else None,
                  columns={"text": [read["text_column"]], "label": read["label_column"]}, progress=not args.quiet)
    record = result.record
    metric = record["objectives"][0]
    print(f"\nbest trial {record['best_trial']}: dev {metric} {record['best_values'][0]:.4f} "
          f"({', '.join(f'{k}={v}' for k, v in record['best_params'].items())})")
    print("trials: " + ", ".join(f"{n} {s}" for s, n in record["trials"].items())
          + f" in {record['elapsed_s']:.0f} s")
    if result.test_metrics:
        print(f"test {metric}: {result.test_metrics[metric]:.4f} ({result.test_metrics['n']} texts)")
    print(f"model written to {output} (trials.csv inside; report: lmworks tune report {output} --output tune.html)")
    if args.json:
        write_json(args.json, {"best": record, "test": result.test_metrics})
    return 0


def run_report(args: argparse.Namespace) -> int:
    """Write the page."""
    from ..atomic import write_text_atomic
    from ..search.report import render_report

    write_text_atomic(args.output, render_report(args.model))
    print(f"report written to {args.output}")
    return 0
