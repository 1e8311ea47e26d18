"""Benchmark: which nodes lose accuracy under int8, and what keeping them in fp32 buys.

Exports MODEL_DIR to ONNX (fp32, fused), ranks every quantisable node by how far
quantising it alone moves the logits on the dev texts (as ``lmworks export`` does),
then builds int8 graphs that keep the k most sensitive nodes in fp32 and reports, on
dev and on test, the accuracy change against PyTorch, the share of predictions that
changed, and texts/s (median of 3 runs over the test texts).

    .venv/bin/python bench/int8_sensitivity.py runs/rt-minilm --dev data/rotten_tomatoes/dev.csv \\
        --test data/rotten_tomatoes/test.csv --json runs/bench_int8.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--dev", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--keep", default="0,1,2,3,4,6,8,12", help="numbers of fp32 nodes to try")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import lmworks
    from lmworks.backends.onnx import MAX_TOKENS
    from lmworks.export import ExportOptions, export_onnx
    from lmworks.quantize import changed_upper_pct, is_ffn_output, quantizable_nodes, quantize_int8, rank_nodes
    from lmworks.tokens import tokenize

    work = Path(tempfile.mkdtemp(prefix="lmworks-int8-bench-"))
    export_onnx(args.model_dir, work / "fp32", ExportOptions())
    exported = lmworks.TextClassifier.load(work / "fp32")
    source = lmworks.TextClassifier.load(args.model_dir)
    encoder = getattr(exported.backend_, "primary", exported.backend_)
    sets = {name: lmworks.read_dataset(path) for name, path in (("dev", args.dev), ("test", args.test))}
    reference = {name: source.predict_proba(d.texts) for name, d in sets.items()}
    probe = tokenize(encoder.tokenizer, sets["dev"].texts[:512], encoder.max_length)

    def logits_of(path: Path):
        encoder.use_graph(path)
        start = time.perf_counter()
        return encoder.logits_from_ids(probe), time.perf_counter() - start

    ranked = rank_nodes(work / "fp32" / "model.onnx", logits_of, work)
    encoder.max_tokens = MAX_TOKENS["int8"]  # int8 graphs run with int8's batch budget, as an int8 export does
    variants = [(str(k), [name for name, _ in ranked[:int(k)]]) for k in args.keep.split(",")]
    variants.append(("FFN down-projections", [n for n in quantizable_nodes(work / "fp32" / "model.onnx")
                                              if is_ffn_output(n)]))
    rows = []
    for label, kept in variants:
        graph = work / "variant.onnx"
        quantize_int8(work / "fp32" / "model.onnx", graph, exclude=kept)
        encoder.use_graph(graph)
        row = {"kept_fp32": label, "n_kept": len(kept), "nodes": kept}
        for name, data in sets.items():
            proba = exported.predict_proba(data.texts)
            labels = data.require_labels()
            before = source.metrics_from_proba(labels, reference[name])["accuracy"]
            after = exported.metrics_from_proba(labels, proba)["accuracy"]
            row[f"{name}_drop_points"] = 100 * (before - after)
            row[f"{name}_changed_pct"] = 100 * float(np.mean(proba.argmax(1) != reference[name].argmax(1)))
            row[f"{name}_changed_upper_pct"] = changed_upper_pct(row[f"{name}_changed_pct"], len(labels))
        times = []
        for _ in range(3):
            start = time.perf_counter()
            exported.predict_proba(sets["test"].texts)
            times.append(time.perf_counter() - start)
        row["texts_per_s"] = len(sets["test"].texts) / float(np.median(times))
        rows.append(row)
        print(row, flush=True)
    encoder.use_graph(work / "fp32" / "model.onnx")
    encoder.max_tokens = MAX_TOKENS[None]
    times = []
    for _ in range(3):
        start = time.perf_counter()
        exported.predict_proba(sets["test"].texts)
        times.append(time.perf_counter() - start)
    fp32_speed = len(sets["test"].texts) / float(np.median(times))
    print("\nmost sensitive nodes (mean |logit change| when quantised alone, 512 dev texts):")
    for name, score in ranked[:12]:
        print(f"  {score:.4f}  {name}")
    print(f"\nONNX fp32: {fp32_speed:.1f} texts/s")
    print("| nodes kept fp32 | dev Δacc (points) | dev predictions changed | dev changed + its standard error "
          "(the search's criterion) | test Δacc (points) | test predictions changed | texts/s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['kept_fp32']} ({r['n_kept']}) | {-r['dev_drop_points']:+.2f} | {r['dev_changed_pct']:.2f}% | "
              f"{r['dev_changed_upper_pct']:.2f}% | {-r['test_drop_points']:+.2f} | {r['test_changed_pct']:.2f}% | "
              f"{r['texts_per_s']:.1f} |")
    if args.json:
        args.json.write_text(json.dumps({"ranked": ranked, "rows": rows, "fp32_texts_per_s": fp32_speed}, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
