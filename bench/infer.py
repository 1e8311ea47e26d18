"""Benchmark: lmworks inference (PyTorch, ONNX fp32, ONNX int8) vs transformers.pipeline.

All paths run the same saved model (MiniLM fine-tuned on Rotten Tomatoes with the
stock CLS head, so ``pipeline("text-classification")`` loads it natively) on the
same 2,000 held-out Rotten Tomatoes texts (the 1,276 test texts, then dev texts),
with the same number of threads. Accuracy is measured on the test texts.

    .venv/bin/python bench/infer.py --json runs/bench_infer.json

Without ``--model-dir`` the script trains that model once (1 epoch, ~4 min) into
``runs/bench-infer-cls`` and exports it next to it; later runs reuse both.
Also printed: tokens/s as a fraction of this CPU's measured fp32 matmul peak.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def load_split(seed: int):
    from lmworks.data import read_dataset
    from lmworks.datasets import export

    folder = Path(tempfile.mkdtemp(prefix="lmworks-bench-infer-"))
    export("rotten_tomatoes", folder, seed=seed)
    return {part: read_dataset(folder / f"{part}.csv") for part in ("train", "dev", "test")}


def ensure_model(model_dir: Path, data, threads: int) -> None:
    from lmworks import TextClassifier

    if (model_dir / "lmworks.json").is_file():
        return
    print(f"training the benchmark model into {model_dir} (1 epoch, CLS head, no blend) ...", flush=True)
    clf = TextClassifier("minilm", head="cls", blend="none", epochs=1.0, num_threads=threads)
    clf.fit(data["train"].texts, data["train"].labels, data["dev"].texts, data["dev"].labels, progress=False)
    clf.save(model_dir)


def ensure_export(model_dir: Path, out: Path, quantize: str | None, dev=None) -> None:
    """Export as a user would: int8 with the dev split, so the export chooses which layers stay fp32."""
    from lmworks.export import ExportOptions, export_onnx

    if not (out / "lmworks.json").is_file():
        export_onnx(model_dir, out, ExportOptions(quantize=quantize), eval_data=dev if quantize else None)


def matmul_peak_gflops(threads: int, n: int = 1024, repeats: int = 30) -> float:
    """Best fp32 GEMM rate torch reaches here, as the yardstick for 'fraction of peak'."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return best


def flops_per_token(config, avg_tokens: float) -> float:
    """Forward FLOPs per token: 2 x weights of the linear layers, plus attention scores."""
    h, layers, inter = config.hidden_size, config.num_hidden_layers, config.intermediate_size
    linear = layers * (4 * h * h + 2 * h * inter)
    attention = layers * 2 * avg_tokens * h  # QK^T and AV, per token
    return 2 * linear + 2 * attention


def timed(fn, texts, repeats: int, warmup: int = 32):
    """Output and median wall time of ``repeats`` runs (this VM's timings vary by ~10 %)."""
    fn(texts[:warmup])
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn(texts)
        times.append(time.perf_counter() - start)
    return out, float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=Path("runs/bench-infer-cls"),
                        help="a --head cls model dir (trained here if missing)")
    parser.add_argument("--n", type=int, default=2000, help="number of texts (default: 2000)")
    parser.add_argument("--split-seed", type=int, default=13)
    parser.add_argument("--threads", type=int, default=None, help="threads for every path (default: usable CPUs)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per path; the median is reported")
    parser.add_argument("--skip-default-pipeline", action="store_true", help="skip the slow batch_size=1 baseline")
    parser.add_argument("--also", type=Path, action="append", default=[], metavar="MODEL_DIR",
                        help="also time this lmworks model dir on the same texts (repeatable; e.g. an int8 export of "
                        "your own model: its accuracy column is on the same test texts, its delta is against this "
                        "benchmark's PyTorch model)")
    parser.add_argument("--json", type=Path, help="write the rows as JSON")
    parser.add_argument("--results", action="store_true",
                        help="also write docs/results/inference.json, the table the docs render")
    args = parser.parse_args()

    import torch

    import lmworks
    from lmworks.runtime import usable_cpus

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    threads = args.threads or usable_cpus()
    torch.set_num_threads(threads)
    data = load_split(args.split_seed)
    ensure_model(args.model_dir, data, threads)
    fp32_dir = args.model_dir.with_name(args.model_dir.name + "-onnx-fp32")
    int8_dir = args.model_dir.with_name(args.model_dir.name + "-onnx-int8")
    ensure_export(args.model_dir, fp32_dir, None)
    ensure_export(args.model_dir, int8_dir, "int8", data["dev"])

    texts = (list(data["test"].texts) + list(data["dev"].texts))[: args.n]
    n_test = min(len(data["test"].texts), len(texts))
    gold = list(data["test"].labels)[:n_test]
    predictor = lmworks.load(args.model_dir, num_threads=threads)
    tokens = sum(min(n, predictor.max_length) for n in predictor.token_counts(texts))
    config = predictor.classifier.backend_.network.config
    flops_tok = flops_per_token(config, tokens / len(texts))
    peak = matmul_peak_gflops(threads)
    rows = []

    def record(name: str, labels: list[str], seconds: float, notes: str = "") -> None:
        acc = float(np.mean([p == g for p, g in zip(labels[:n_test], gold)]))
        rows.append({"path": name, "texts_per_s": len(texts) / seconds, "ms_per_text": 1000 * seconds / len(texts),
                     "tokens_per_s": tokens / seconds, "peak_fraction": tokens / seconds * flops_tok / (peak * 1e9),
                     "accuracy": acc, "seconds": seconds, "notes": notes})
        print(f"  {name}: {len(texts) / seconds:.1f} texts/s, accuracy {acc:.4f}", flush=True)

    from transformers import pipeline

    pipe = pipeline("text-classification", model=str(args.model_dir), device="cpu")
    if not args.skip_default_pipeline:
        out, sec = timed(lambda t: pipe(t, truncation=True, max_length=128), texts, args.repeats)
        record("transformers pipeline (default batch size)", [o["label"] for o in out], sec, "batch_size unset (1)")
    out, sec = timed(lambda t: pipe(t, batch_size=32, truncation=True, max_length=128), texts, args.repeats)
    record("transformers pipeline (batch_size=32)", [o["label"] for o in out], sec)
    pipe = None  # free the baseline's model before loading ours

    for name, directory in (("lmworks PyTorch", args.model_dir), ("lmworks ONNX fp32", fp32_dir),
                            ("lmworks ONNX int8", int8_dir), *((f"lmworks {d}", d) for d in args.also)):
        model = lmworks.load(directory, num_threads=threads)
        labels, sec = timed(model.predict, texts, args.repeats)
        record(name, labels, sec, "length-sorted batches under a token budget")

    base32 = next(r for r in rows if "batch_size=32" in r["path"])
    base1 = next((r for r in rows if "default" in r["path"]), None)
    print()
    print(f"machine: {platform.processor() or platform.machine()}, {threads} threads, median of {args.repeats} runs, "
          f"fp32 matmul peak {peak:.1f} GFLOP/s; {len(texts)} texts, {tokens} tokens "
          f"(avg {tokens / len(texts):.1f}); model {flops_tok / 1e6:.1f} MFLOP/token; accuracy on {n_test} test texts")
    print("| path | texts/s | ms/text | tokens/s | % of fp32 peak | vs pipeline bs=32 | vs pipeline default | "
          "accuracy | Δ acc vs PyTorch (points) |")
    print("|---|---|---|---|---|---|---|---|---|")
    ref_acc = next(r for r in rows if r["path"] == "lmworks PyTorch")["accuracy"]
    for r in rows:
        r["speedup_vs_pipeline_bs32"] = r["texts_per_s"] / base32["texts_per_s"]
        r["speedup_vs_pipeline_default"] = r["texts_per_s"] / base1["texts_per_s"] if base1 else None
        r["accuracy_delta_points"] = 100 * (r["accuracy"] - ref_acc)
        default = f"{r['speedup_vs_pipeline_default']:.2f}x" if base1 else "-"
        print(f"| {r['path']} | {r['texts_per_s']:.1f} | {r['ms_per_text']:.2f} | {r['tokens_per_s']:.0f} | "
              f"{100 * r['peak_fraction']:.1f}% | {r['speedup_vs_pipeline_bs32']:.2f}x | {default} | "
              f"{r['accuracy']:.4f} | {r['accuracy_delta_points']:+.2f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rows": rows, "peak_gflops": peak, "threads": threads,
                                         "n_texts": len(texts), "tokens": tokens}, indent=2))
    if args.results:
        write_results(rows, base32, threads, len(texts), args)


def write_results(rows, base32, threads, n_texts, args) -> None:
    from results import record

    int8 = next(r for r in rows if r["path"] == "lmworks ONNX int8")
    record("inference", title="Inference speed",
           what=f"Texts per second on {n_texts} held-out Rotten Tomatoes texts, {threads} threads, median of "
                f"{args.repeats} runs; accuracy on the test texts. Same saved MiniLM model (CLS head) for every path.",
           baseline="transformers pipeline('text-classification'), batch_size=32 (and its default batch size)",
           columns=["path", "texts/s", "vs pipeline bs=32", "Δ accuracy vs PyTorch (points)"],
           rows=[[r["path"], round(r["texts_per_s"], 1), f"{r['speedup_vs_pipeline_bs32']:.2f}x",
                  round(r["accuracy_delta_points"], 2)] for r in rows],
           values={"int8_speedup": round(int8["speedup_vs_pipeline_bs32"], 2),
                   "int8_texts_s": round(int8["texts_per_s"], 1), "pipeline_texts_s": round(base32["texts_per_s"], 1)},
           headline={"task": "Inference with the int8 export (texts/s, 2 cores)",
                     "lmworks": round(int8["texts_per_s"], 1),
                     "baseline": f"transformers pipeline {base32['texts_per_s']:.1f}"},
           packages=("onnxruntime",))


if __name__ == "__main__":
    main()
