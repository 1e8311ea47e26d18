"""``lmworks audit``: likely label errors, duplicates, train/test leakage and text problems, before training."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_data_options, add_json_option, positive_int, write_json


def register(sub) -> None:
    """Add the subcommand."""
    p = sub.add_parser(
        "audit", help="find likely label errors, duplicates, train/test leakage and odd texts in a data file",
        description="Audit DATA (and --test against it) without changing either: label errors from out-of-fold "
        "predictions ranked by cleanlab, exact and near-duplicates inside a file and from --test into DATA "
        "(leakage) with conflicting labels flagged, class balance, empty, very short and too long texts, rows "
        "in another script or language. The terminal gets a summary; --output writes audit.html and, beside "
        "it, suspects.csv (one finding per row, with a 'drop' column to fill); --write-clean then writes a "
        "copy of DATA without the rows marked to drop.",
    )
    p.add_argument("data", metavar="DATA", help="the labelled data to audit (.csv, .jsonl, .parquet)")
    p.add_argument("--test", metavar="DATA", help="held-out test data checked for copies of DATA's rows (leakage)")
    p.add_argument("--output", "-o", metavar="FILE.html",
                   help="write the audit page here, and suspects.csv beside it (default: print the summary only)")
    add_json_option(p, "write the findings as JSON (summary, label_issues, duplicates, texts)")
    p.add_argument("--suspects", metavar="FILE.csv",
                   help="the suspects table: written by the audit (default: suspects.csv beside --output), read "
                   "by --write-clean")
    p.add_argument("--write-clean", metavar="FILE",
                   help="instead of auditing, write DATA less the rows marked in the suspects' 'drop' column "
                   "(yes, x or 1) to FILE; DATA stays as it is")
    p.add_argument("--model", default="tfidf",
                   help="what scores every row out of fold: tfidf (seconds), or an encoder (minilm, mpnet, a "
                   "directory) whose frozen sentence embeddings are added to TF-IDF's view (default: tfidf)")
    p.add_argument("--folds", type=positive_int, default=5,
                   help="cross-validation folds for the label check; lowered when a class has fewer rows (default: 5)")
    p.add_argument("--near-duplicate", type=float, default=0.8, metavar="SIMILARITY",
                   help="TF-IDF cosine similarity from which two texts count as near-duplicates (default: 0.8)")
    p.add_argument("--max-length", type=positive_int, default=128,
                   help="max tokens per text a model reads; longer texts are listed (default: 128)")
    p.add_argument("--multi-label", action="store_true", help="rows may carry several labels")
    p.add_argument("--no-labels", action="store_true", help="audit unlabelled data: duplicates and texts only")
    p.add_argument("--seed", type=int, default=0, help="random seed of the folds (default: 0)")
    p.add_argument("--top", type=positive_int, default=10, help="suspects to print per finding (default: 10)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    add_data_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Audit, print the summary, write what was asked for; or write the clean copy."""
    from ..atomic import write_text_atomic
    from ..audit import AuditConfig, audit, audit_html, suspects, write_clean
    from ..errors import ConfigError
    from .common import one_text_column

    config = AuditConfig(text_column=one_text_column(args),
                         label_column=None if args.no_labels else (args.label_column or "label"),
                         multi_label=args.multi_label, label_separator=args.label_separator, encoding=args.encoding,
                         delimiter=args.delimiter, model=args.model, folds=args.folds,
                         near_duplicate=args.near_duplicate, max_length=args.max_length, seed=args.seed)
    suspects_file = args.suspects or (str(Path(args.output).with_name("suspects.csv")) if args.output else None)
    if args.write_clean:
        if not suspects_file:
            raise ConfigError("--write-clean needs the suspects table: pass --suspects FILE (or the --output used)")
        dropped = write_clean(args.data, suspects_file, args.write_clean, config)
        print(f"wrote {args.write_clean}: {args.data} less {dropped} row(s) marked to drop in {suspects_file}")
        return 0
    report = audit(args.data, test=args.test, config=config, progress=not args.quiet)
    table = suspects(report)
    _print(report, table, args.top)
    if suspects_file:
        from ..inference.files import write_frame

        write_frame(suspects_file, table)
        print(f"wrote {suspects_file} ({len(table)} findings; mark rows to drop in its 'drop' column)")
    if args.output:
        write_text_atomic(args.output, audit_html(report, table))
        print(f"wrote {args.output}")
    if args.json:
        write_json(args.json, report.to_json())
    return 0


def _print(report, table, top: int) -> None:
    summary = report.summary()
    rows = ", ".join(f"{k}: {v:,} rows" for k, v in summary["rows"].items())
    print(f"audit of {rows} ({summary['seconds']} s)")
    checked = summary["label_checked"]
    lines = [
        ("likely label errors", summary["label_issues"], f"of {checked:,} checked" if checked else "not checked"),
        ("duplicates inside a file", summary["duplicates"], ""),
        ("test rows copying training rows (leakage)", summary["leakage"], ""),
        ("duplicates with conflicting labels", summary["conflicting_labels"], ""),
        ("empty texts / labels", f"{summary['empty_text']} / {summary['empty_label']}", ""),
        ("very short / too long texts", f"{summary['very_short']} / {summary['too_long']}", ""),
        ("another script / language", f"{summary['other_script']} / {summary['other_language']}", ""),
    ]
    for name, value, note in lines:
        print(f"  {name:<44} {value!s:>8}  {note}")
    classes = report.classes()
    if classes:
        print("  classes: " + ", ".join(f"{k} {v}" for k, v in classes.items())
              + f" (largest/smallest {summary['imbalance']})")
    for note in report.notes:
        print(f"  note: {note}")
    if table.empty:
        return
    for issue, group in table.groupby("issue", sort=False):
        print(f"\n{issue} (showing {min(top, len(group))} of {len(group)}):")
        for item in group.head(top).itertuples():
            extra = f" -> {item.suggested}" if isinstance(item.suggested, str) and item.suggested else ""
            text = item.text if len(item.text) <= 70 else item.text[:67] + "..."
            print(f"  {item.file} row {item.row}: [{item.label}{extra}] {text!r}  {item.detail}")
