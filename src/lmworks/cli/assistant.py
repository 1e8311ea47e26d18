"""``lmworks assistant``: build, ask, chat, tune, evaluate and serve an FAQ assistant."""

from __future__ import annotations

import argparse
import logging
import sys

from .common import (
    ASSISTANT_PORT,
    STDOUT,
    add_json_option,
    add_server_options,
    deprecated_alias,
    positive_int,
    write_json,
)

LOGGER = logging.getLogger("lmworks")


def register(sub) -> None:
    """Add the subcommand and its own subcommands."""
    p = sub.add_parser(
        "assistant", help="customer-service assistant: answer from past Q&A, hand off when unsure",
        description="Answer new questions from historical question/answer pairs by semantic search, "
        "with a confidence threshold and an ambiguity margin chosen for a target precision; below "
        "them the assistant hands off to a person with suggestions.",
    )
    s = p.add_subparsers(dest="assistant_command", metavar="ACTION", required=True)
    _register_build(s)
    _register_use(s)


def _register_build(s) -> None:
    from ..assistant.assistant import AssistantConfig

    d = AssistantConfig()
    b = s.add_parser("build", help="index a knowledge base (CSV/JSONL/YAML, chatterbot layout, or a folder)",
                     description="Embed every question and calibrate the hand-off rule. FAQ_FILE has columns "
                     "question, answer, optional intent (CSV/JSONL/Parquet), a YAML list of such mappings, "
                     "the chatterbot-corpus YAML layout, or a folder of chatterbot .yml files.")
    b.add_argument("faq", metavar="FAQ_FILE", help="question/answer pairs (see above)")
    b.add_argument("--output", "-o", required=True, metavar="DIR", help="assistant directory to write")
    b.add_argument("--model", default=d.model, help=f"encoder name or directory (default: {d.model})")
    b.add_argument("--eval", metavar="QUERIES_FILE",
                   help="held-out queries (query, expected_question; empty = should hand off) to choose the "
                   "threshold on; default: leave-one-out over the knowledge base")
    deprecated_alias(b, "--calibration", "--eval", "eval")
    b.add_argument("--target-precision", type=float, default=d.target_precision,
                   help=f"precision the answered questions should reach (default: {d.target_precision})")
    b.add_argument("--threshold", type=float, help="fixed confidence threshold instead of a calibrated one")
    b.add_argument("--margin", type=float, help="fixed ambiguity margin instead of a calibrated one")
    b.add_argument("--index", choices=["exact", "hnsw"], default=d.index,
                   help="exact numpy cosine (default) or approximate HNSW (extra 'ann') for large bases")
    b.add_argument("--max-length", type=positive_int, default=d.max_length,
                   help="max tokens per question; longer ones are truncated")
    b.add_argument("--intent-model", metavar="MODEL_DIR",
                   help="an intent classifier ('lmworks train' on question/intent): its prediction is returned "
                   "with each answer and re-ranks candidates whose intent it supports")
    b.add_argument("--encoding", default="utf-8", help="text encoding of CSV/JSONL input")
    add_json_option(b, "write the build summary (entries, conflicts, calibration) as JSON (default: -)")
    b.set_defaults(run=run_build, json=STDOUT)


def _register_use(s) -> None:
    a = s.add_parser("ask", help="answer one question (JSON out)")
    a.add_argument("index_dir", metavar="DIR", help="an assistant directory from 'assistant build'")
    a.add_argument("question", help="the question, in quotes")
    add_json_option(a, "write the answer as JSON (default: -)")
    a.set_defaults(run=run_ask, json=STDOUT)

    c = s.add_parser("chat", help="interactive session (one question per line; Ctrl-D ends)")
    c.add_argument("index_dir", metavar="DIR")
    c.set_defaults(run=run_chat)

    t = s.add_parser("tune", help="fine-tune the encoder contrastively on the Q&A pairs and rebuild the index",
                     description="In-batch-negatives (multiple-negatives ranking) fine-tuning on question->answer "
                     "and question->question pairs of one answer. With --dev, the tuned encoder is kept only if "
                     "it ranks those held-out queries better (top-1, then top-3), and the hand-off rule is "
                     "recalibrated on them.")
    t.add_argument("index_dir", metavar="DIR")
    t.add_argument("--output", "-o", required=True, metavar="DIR", help="new index directory to write (may equal DIR)")
    t.add_argument("--eval", metavar="QUERIES_FILE", help="held-out queries to check and calibrate on")
    deprecated_alias(t, "--dev", "--eval", "eval")
    t.add_argument("--epochs", type=float, default=1.0, help="passes over the pairs")
    t.add_argument("--lr", type=float, default=2e-5, help="peak learning rate")
    t.add_argument("--batch-size", type=positive_int, default=32, help="pairs per batch (the in-batch negatives)")
    t.add_argument("--seed", type=int, default=42, help="random seed")
    t.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    add_json_option(t, "write the tuning report as JSON (default: -)")
    t.set_defaults(run=run_tune, json=STDOUT)

    e = s.add_parser("evaluate", help="top-1/top-3, hand-off precision/recall, coverage-accuracy curve",
                     description="QUERIES_FILE (CSV/JSONL) has columns query and expected_question; an empty "
                     "expected_question marks a query the assistant should hand off.")
    e.add_argument("index_dir", metavar="DIR")
    e.add_argument("queries", metavar="QUERIES_FILE")
    add_json_option(e, "also write the metrics as JSON")
    e.set_defaults(run=run_evaluate)

    v = s.add_parser("serve", help="POST /v1/ask and a chat page; exchanges logged to SQLite")
    v.add_argument("index_dir", metavar="DIR")
    add_server_options(v, port=ASSISTANT_PORT)
    v.add_argument("--log-db", default=None, metavar="PATH",
                   help="SQLite file for the exchange log (default: DIR/../assistant_log.sqlite)")
    v.add_argument("--api-key-env", metavar="VAR", help="require the API key held in this environment variable")
    v.add_argument("--max-chars", type=positive_int, default=2000, help="characters per question (default: 2000)")
    v.set_defaults(run=run_serve)


def run_build(args: argparse.Namespace) -> int:
    """Build and save."""
    from pathlib import Path

    from ..assistant import Assistant, AssistantConfig, read_faq, read_queries

    entries, conflicts = read_faq(args.faq, encoding=args.encoding)
    config = AssistantConfig(model=args.model, max_length=args.max_length, index=args.index,
                             target_precision=args.target_precision, threshold=args.threshold, margin=args.margin,
                             intent_model=str(Path(args.intent_model).resolve()) if args.intent_model else None)
    calibration = read_queries(args.eval) if args.eval else None
    assistant = Assistant.build(entries, config, calibration)
    assistant.save(args.output)
    for c in conflicts[:10]:
        LOGGER.warning("question %r has %d different answers (%s)", c["question"], len(c["answers"]),
                       "; ".join(c["where"][:3]))
    write_json(args.json, {"entries": len(entries), "conflicting_questions": len(conflicts),
                           "calibration": assistant.calibration})
    LOGGER.info("wrote %s", args.output)
    return 0


def run_ask(args: argparse.Namespace) -> int:
    """One question, JSON answer."""
    from ..assistant import Assistant

    write_json(args.json, Assistant.load(args.index_dir).ask(args.question))
    return 0


def run_chat(args: argparse.Namespace) -> int:
    """A read-eval-print loop."""
    from ..assistant import Assistant

    assistant = Assistant.load(args.index_dir)
    interactive = sys.stdin.isatty()
    if interactive:
        print("Ask a question (Ctrl-D to quit).")
    while True:
        try:
            line = input("> " if interactive else "")
        except EOFError:
            return 0
        if not line.strip():
            continue
        r = assistant.ask(line)
        if r["handoff"]:
            print(f"[hand-off: {r['reason']}] I'm not sure; a colleague will follow up. Did you mean:")
            for s in r["suggestions"]:
                print(f"  - {s['question']} ({s['score']:.2f})")
        else:
            print(f"{r['answer']}  [matched: {r['matched_question']!r}, confidence {r['confidence']:.2f}]")


def run_tune(args: argparse.Namespace) -> int:
    """Tune, rebuild, save."""
    from ..assistant import Assistant, read_queries
    from ..assistant.tune import TuneConfig, tune

    assistant = Assistant.load(args.index_dir)
    dev = read_queries(args.eval) if args.eval else None
    report = tune(assistant, TuneConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, seed=args.seed),
                  dev, progress=not args.quiet)
    if not report["kept"]:
        assistant.tuning = None
    assistant.save(args.output)
    write_json(args.json, {"tuning": report, "calibration": assistant.calibration})
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    """Evaluate on labelled queries."""
    from ..assistant import Assistant, read_queries

    assistant = Assistant.load(args.index_dir)
    metrics = assistant.evaluate(read_queries(args.queries))
    print(format_assistant_report(metrics))
    if args.json:
        write_json(args.json, metrics)
    return 0


def format_assistant_report(m: dict) -> str:
    """Plain-text summary of :meth:`Assistant.evaluate`."""

    def pct(x):
        return "-" if x is None else f"{100 * x:.1f}%"

    lines = [
        f"queries: {m['n']} ({m['answerable']} answerable, {m['out_of_scope']} out of scope)",
        f"top-1 accuracy (answerable): {pct(m['top1_accuracy'])}",
        f"top-3 accuracy (answerable): {pct(m['top3_accuracy'])}",
        f"answered (answerable):       {pct(m['answered_fraction_of_answerable'])}",
        f"accuracy when answered:      {pct(m['accuracy_when_answered'])}",
        f"hand-off recall (out of scope):  {pct(m['handoff_recall_out_of_scope'])}",
        f"hand-off precision:              {pct(m['handoff_precision'])}",
        f"threshold {m['threshold']:.4f}, margin {m['margin']:.2f}",
        "coverage-accuracy curve (threshold: coverage -> accuracy):",
    ]
    lines += [f"  {c['threshold']:.3f}: {pct(c['coverage'])} -> {pct(c['accuracy'])}"
              for c in m["coverage_accuracy_curve"]]
    return "\n".join(lines)


def run_serve(args: argparse.Namespace) -> int:
    """Serve over HTTP."""
    from pathlib import Path

    from ..assistant import Assistant
    from ..assistant.service import create_assistant_app
    from ..serve.common import api_key_from_env
    from ..serve.runner import run_app

    key = api_key_from_env(args.api_key_env)
    assistant = Assistant.load(args.index_dir)
    log_db = args.log_db or str(Path(args.index_dir).resolve().parent / "assistant_log.sqlite")
    app = create_assistant_app(assistant, log_db=log_db, api_key=key, max_chars=args.max_chars)
    LOGGER.info("assistant on http://%s:%d (chat page: /, log: %s)", args.host, args.port, log_db)
    run_app(app, host=args.host, port=args.port)
    return 0
