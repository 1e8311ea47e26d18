"""``lmworks export``: an ONNX (optionally int8) copy of a model directory."""

from __future__ import annotations

import argparse
import logging

from .common import (
    STDOUT,
    ListOption,
    add_data_options,
    add_json_option,
    model_inputs,
    write_json,
)

LOGGER = logging.getLogger("lmworks")


def register(sub) -> None:
    """Add the subcommand."""
    p = sub.add_parser(
        "export", help="export a model to ONNX Runtime (fp32 or int8)",
        description="Write an ONNX model directory that 'lmworks predict/evaluate/serve' and "
        "lmworks.load() run with ONNX Runtime. With --eval, both models are scored on the same "
        "held-out data and the accuracy difference is printed and stored in lmworks.json.",
    )
    p.add_argument("model_dir", metavar="MODEL_DIR", help="a directory written by 'lmworks train'")
    p.add_argument("--format", choices=["onnx"], default="onnx", help="export format (default: onnx)")
    p.add_argument("--quantize", choices=["int8"], help="dynamic int8 quantisation (smaller, faster on CPU)")
    p.add_argument("--output", "-o", required=True, metavar="DIR", help="new model directory to write")
    p.add_argument("--eval", metavar="DATA", help="held-out labelled data to compare accuracy before/after export")
    p.add_argument("--max-accuracy-drop", type=float, default=0.5, metavar="POINTS",
                   help="warn loudly when the export loses more accuracy points than this on --eval (default: 0.5)")
    p.add_argument("--no-search", action="store_true",
                   help="with --quantize int8 and --eval: skip the search that keeps the most sensitive nodes in "
                   "fp32 until at most --max-accuracy-drop %% of the --eval predictions change (counting one standard "
                   "error of that count as changed too: sqrt(count)); keep the "
                   "feed-forward down-projections in fp32 instead (the default without --eval)")
    p.add_argument("--keep-fp32", action=ListOption, metavar="NODE[,NODE]",
                   help="keep these graph nodes in fp32 instead of searching (as listed in an earlier "
                   "export's lmworks.json); '--keep-fp32 none' quantises every node")
    p.add_argument("--strict", action="store_true",
                   help="fail (exit 2, nothing written) instead of warning when the accuracy drop is too large")
    p.add_argument("--no-optimize", action="store_true",
                   help="skip the offline LayerNorm/GELU fusions (ONNX Runtime's transformer optimiser)")
    add_data_options(p)
    add_json_option(p, "write the export report as JSON (default: -)")
    p.set_defaults(run=run, json=STDOUT)


def run(args: argparse.Namespace) -> int:
    """Export, then print the check."""
    import shutil
    from pathlib import Path

    from ..export import ExportOptions, export_onnx
    from ..model_dir import read_meta

    eval_data = None
    if args.eval:
        meta = read_meta(args.model_dir, verify=False)
        eval_data = model_inputs(args, meta).read(
            args.eval, multi_label=meta.get("task") == "multi_label", label_separator=args.label_separator,
            encoding=args.encoding, delimiter=args.delimiter)
    options = ExportOptions(quantize=args.quantize, optimize=not args.no_optimize,
                            max_accuracy_drop=args.max_accuracy_drop, search=not args.no_search,
                            keep_fp32=None if args.keep_fp32 is None else tuple(n for n in args.keep_fp32
                                                                              if n != "none"))
    report = export_onnx(args.model_dir, args.output, options, eval_data)
    write_json(args.json, report)
    if eval_data is None:
        LOGGER.info("no --eval data given: the accuracy difference to the PyTorch model was not measured")
    elif not report["within_tolerance"]:
        if args.strict:
            shutil.rmtree(Path(args.output))
            LOGGER.error("export removed (--strict): accuracy drop %.2f points > %.2f",
                         report["accuracy_drop_points"], args.max_accuracy_drop)
            return 2
    else:
        LOGGER.info("export keeps accuracy: %.4f -> %.4f (%.2f points) on %d texts",
                    report["accuracy_pytorch"], report["accuracy_onnx"], report["accuracy_drop_points"], report["n"])
    LOGGER.info("wrote %s", args.output)
    return 0
