"""``lmworks explain``: which words made each decision, as highlighted HTML, JSON lines or a summary."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .common import STDOUT, add_column_options, add_data_options, positive_int

#: Rows explained per call (one progress-bar step).
CHUNK = 32


def register(sub) -> None:
    """Add the subcommand."""
    from ..explain import METHODS
    from ..explain.gradients import BASELINES

    p = sub.add_parser(
        "explain", help="which words made each decision (HTML, JSON lines, or top words per class)",
        description="Explain MODEL_DIR's decision on every row of DATA (or on --text): one score per word, "
        "positive where the word supports the class. The method follows the model: Integrated Gradients for "
        "a transformer, exact contributions for TF-IDF, both weighted for a blend, occlusion for ONNX exports; "
        "it is named in the output. --output .html highlights the texts, .jsonl writes one object per row "
        "(label, words, scores, method...); without --output the top words are printed. --global lists the "
        "words that push each class over the whole file.",
    )
    p.add_argument("model_dir", metavar="MODEL_DIR")
    p.add_argument("data", metavar="DATA", nargs="?", help=".csv, .jsonl, .parquet, or - for JSONL on stdin")
    p.add_argument("--text", action="append", metavar="TEXT", help="a text to explain instead of DATA; repeat for more")
    p.add_argument("--output", "-o", metavar="FILE",
                   help="file to write: .html (highlighted report) or .jsonl (one object per row; .json with "
                   "--global), or - for JSON lines on standard output (default: print the top words)")
    p.add_argument("--class", dest="target", metavar="NAME",
                   help="explain this class instead of the predicted one (default: the predicted class)")
    p.add_argument("--global", dest="summary", action="store_true",
                   help="aggregate over the file: the words that push each class, with counts and mean scores")
    p.add_argument("--method", choices=METHODS, default="auto",
                   help="auto picks by model kind (default: auto); occlusion works for every model")
    p.add_argument("--steps", type=positive_int, default=8,
                   help="Integrated Gradients interpolation steps: more is closer, slower (default: 8)")
    p.add_argument("--baseline", choices=BASELINES, default="absent",
                   help="Integrated Gradients baseline: absent = every word deleted, integrating over word presence; "
                   "pad / mask = every token but [CLS]/[SEP] replaced by [PAD] or [MASK], integrating over "
                   "embeddings (default: absent)")
    p.add_argument("--limit", type=positive_int, metavar="N",
                   help="explain at most this many rows, the first N (default: all)")
    p.add_argument("--top", type=positive_int, default=5, help="words to print per text, or per class with "
                   "--global (default: 5; the --global files list 20)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    add_data_options(p, labels=False)
    add_column_options(p)
    p.set_defaults(run=run)


def _inputs(args: argparse.Namespace, clf: Any) -> tuple[list[Any], list[int] | None]:
    """What to explain, and the data rows they came from (1-based, header excluded)."""
    from ..errors import ConfigError
    from .common import model_inputs

    if args.text and args.data:
        raise ConfigError("give DATA or --text, not both")
    if args.text:
        return list(args.text), None
    if not args.data:
        raise ConfigError("nothing to explain: give DATA or --text TEXT")
    data = model_inputs(args, clf.meta_).read(args.data, labels=False, label_separator=args.label_separator,
                                              encoding=args.encoding, delimiter=args.delimiter)
    inputs = list(data.inputs)[: args.limit]
    return inputs, list(range(1, len(inputs) + 1))


def _explain_all(clf: Any, inputs: list[Any], args: argparse.Namespace, *, all_classes: bool) -> list[Any]:
    from tqdm.auto import tqdm

    from ..explain import explain

    out: list[Any] = []
    bar = tqdm(total=len(inputs), unit="text", desc="explaining", disable=args.quiet or len(inputs) <= CHUNK,
               file=sys.stderr)
    for at in range(0, len(inputs), CHUNK):
        out.extend(explain(clf, inputs[at:at + CHUNK], target=args.target, all_classes=all_classes,
                           method=args.method, steps=args.steps, baseline=args.baseline))
        bar.update(len(inputs[at:at + CHUNK]))
    bar.close()
    return out


def _check_output(args: argparse.Namespace) -> str:
    from ..errors import ConfigError

    if args.output in (None, STDOUT):
        return "print" if args.output is None else "stdout"
    suffix = Path(args.output).suffix.lower()
    allowed = (".html", ".json") if args.summary else (".html", ".jsonl")
    if suffix not in allowed:
        raise ConfigError(f"--output {args.output}: write {' or '.join(allowed)}"
                          f"{' with --global' if args.summary else ''}")
    return suffix


def run(args: argparse.Namespace) -> int:
    """Explain and write."""
    from ..classifier import TextClassifier

    kind = _check_output(args)
    clf = TextClassifier.load(args.model_dir)
    inputs, rows = _inputs(args, clf)
    found = _explain_all(clf, inputs, args, all_classes=kind == ".html" and not args.summary)
    truncated = sum(e.truncated for e in found)
    if truncated:
        print(f"lmworks: {truncated} of {len(found)} texts were longer than the model reads; words past its "
              "limit score 0 ('truncated' in the output)", file=sys.stderr)
    model = Path(args.model_dir).name
    if args.summary:
        return _write_summary(found, args, kind, model)
    if kind == "print":
        for i, e in enumerate(found):
            where = f"row {rows[i]}: " if rows else ""
            top = ", ".join(f"{w} {s:+.3f}" for w, s in e.top(args.top))
            print(f"{where}{e.label} (p={e.probability:.3f}, {e.method}): {top}")
        return 0
    if kind == ".html":
        from ..atomic import write_text_atomic
        from ..explain.report import explanations_html

        write_text_atomic(args.output, explanations_html(found, model=model, rows=rows))
    else:
        _write_lines(args.output, [{**({"row": rows[i]} if rows else {}), **e.to_dict()} for i, e in enumerate(found)])
    if args.output != STDOUT:
        print(f"explained {len(found)} texts ({found[0].method if found else 'nothing'}) -> {args.output}",
              file=sys.stderr)
    return 0


def _write_lines(path: str, objects: list[dict[str, Any]]) -> None:
    from ..atomic import atomic_file

    lines = "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objects)
    if path == STDOUT:
        sys.stdout.write(lines)
        return
    with atomic_file(path) as fh:
        fh.write(lines)


def _write_summary(found: list[Any], args: argparse.Namespace, kind: str, model: str) -> int:
    from ..atomic import write_text_atomic
    from ..explain import global_words
    from ..explain.report import global_html

    summary = global_words(found, top=20)
    if kind == ".html":
        write_text_atomic(args.output, global_html(summary, model=model, n_texts=len(found)))
    elif kind in (".json", "stdout"):
        text = json.dumps({"texts": len(found), "method": found[0].method if found else None, "classes": summary},
                          ensure_ascii=False, indent=2) + "\n"
        if args.output == STDOUT:
            sys.stdout.write(text)
        else:
            write_text_atomic(args.output, text)
    else:
        for label, words in summary.items():
            print(f"{label}: " + ", ".join(f"{r['word']} ({r['count']}, {r['mean_score']:+.3f})"
                                            for r in words[: args.top]))
    return 0
