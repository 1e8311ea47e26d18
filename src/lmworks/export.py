"""Export a fine-tuned model directory to ONNX (optionally int8) for ONNX Runtime.

The exported directory is a normal lmworks model directory (``lmworks.json`` with
checksums, tokenizer files, ``config.json``, the TF-IDF blend if any) whose
``backend`` is ``onnx``: ``lmworks.load``, ``evaluate`` and ``predict`` use it
unchanged. Export is checked twice: the fp32 graph must reproduce the PyTorch
logits on probe inputs (a broken export fails), and with ``eval_data`` both models
are scored on the same held-out texts and the accuracy difference is recorded and
shouted about when it exceeds ``max_accuracy_drop``. Dynamic int8 quantisation
(ONNX Runtime's ``quantize_dynamic``) needs no calibration data, which is why it is
the default for CPU serving of BERT-family models.
"""

from __future__ import annotations

import logging
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_dir
from .backends.onnx import ONNX_FILE, require_onnxruntime
from .data import TextDataset
from .errors import ConfigError
from .model_dir import META_FILE, check_output_dir, read_meta, write_meta
from .quantize import default_keep_fp32, quantize_int8
from .runtime import logging_state

LOGGER = logging.getLogger("lmworks")

FP32_FILE = "model.fp32.onnx"
#: Keys of the source ``lmworks.json`` that ``write_meta`` regenerates.
_REGENERATED = ("format", "format_version", "created", "versions", "files")


@dataclass
class ExportOptions:
    """How to export.

    Attributes
    ----------
    quantize:
        ``None`` (fp32) or ``"int8"`` (dynamic quantisation of weights, int8 matmuls).
    optimize:
        Fuse LayerNorm, GELU and bias additions with ONNX Runtime's offline transformer
        optimiser first. Attention is left unfused: on an AVX2 CPU with MiniLM the fused
        attention op measured slower, while the other fusions cut the fixed cost of a
        small batch by a third (single text: 4.2 vs 6.1 ms int8; docs/research-log/benchmarks-history.md).
    opset:
        ONNX opset of the exported graph.
    max_accuracy_drop:
        Accuracy points the export may lose on ``eval_data`` before it warns loudly.
    search:
        With ``int8`` and ``eval_data``: rank the quantisable nodes by how much
        quantising each alone moves the logits, and keep the most sensitive ones in fp32,
        fewest first, until the predictions changed on ``eval_data``, plus one standard
        error of their count, are at most ``max_accuracy_drop`` % of the texts
        (:mod:`lmworks.quantize`). The fastest variant within the budget is kept and the
        choice recorded; ``False`` quantises every node.
    keep_fp32:
        Node names to keep in fp32 instead of a search (as recorded by an earlier
        export; empty: every node in int8). ``None`` (default): the search with
        ``eval_data``, else the feed-forward down-projections
        (:func:`lmworks.quantize.default_keep_fp32`).
    """

    quantize: str | None = None
    optimize: bool = True
    opset: int = 17
    max_accuracy_drop: float = 0.5
    search: bool = True
    keep_fp32: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.quantize not in (None, "int8"):
            raise ConfigError(f"--quantize must be int8 (got {self.quantize!r})")


def export_onnx(
    model_dir: str | Path,
    output: str | Path,
    options: ExportOptions | None = None,
    eval_data: TextDataset | None = None,
) -> dict[str, Any]:
    """Write an ONNX model directory for ``model_dir``; return the export report.

    The report (also stored as ``export_check`` in the new ``lmworks.json``) holds the
    fp32 probe difference and, with ``eval_data``, both accuracies and their difference.
    """
    from .classifier import TextClassifier

    options = options or ExportOptions()
    model_dir, output = Path(model_dir), Path(output)
    meta = _exportable_meta(model_dir)
    require_onnxruntime()
    check_output_dir(output)
    source = TextClassifier.load(model_dir)
    primary: Any = getattr(source.backend_, "primary", source.backend_)
    network, tokenizer = primary.network.eval(), primary.tokenizer

    with atomic_dir(output) as tmp:
        report = _write_graph(network, tmp, options)
        tokenizer.save_pretrained(tmp)
        shutil.copy2(model_dir / "config.json", tmp / "config.json")
        blend = meta.get("blend")
        if blend:
            path = blend.get("path", "blend/")
            shutil.copytree(model_dir / path, tmp / path)
        new_meta = {k: v for k, v in meta.items() if k not in _REGENERATED}
        new_meta["backend"] = "onnx"
        new_meta["onnx"] = {
            "file": ONNX_FILE, "opset": options.opset, "quantize": options.quantize,
            "exported_from": str(model_dir.resolve()),
            "source_files_sha256": meta.get("files", {}).get("model.safetensors"),
            "inputs": ["input_ids", "attention_mask"], "outputs": ["logits"],
        }
        new_meta["export_check"] = report
        new_meta["onnx"]["kept_fp32"] = _finish_graph(source, tmp, new_meta, report, options, eval_data)
        _rewrite_meta(tmp, new_meta)
        if eval_data is not None:
            # the comparison needs the exported directory loadable, then joins the report
            report.update(_compare(source, TextClassifier.load(tmp), eval_data, options.max_accuracy_drop))
            _rewrite_meta(tmp, new_meta)
    return report


def _exportable_meta(model_dir: Path) -> dict[str, Any]:
    """The model directory's metadata, or a clear error when its kind has no ONNX export."""
    meta = read_meta(model_dir)
    if meta.get("backend") == "multimodal":
        raise ConfigError(f"{model_dir}: multimodal models are not exported to ONNX: their cost is reading and "
                          "encoding images (the frozen backbone's features are cached), not the fusion layers, "
                          "which ONNX Runtime would not speed up; serve the model directory itself")
    if meta.get("backend") != "transformer":
        raise ConfigError(
            f"{model_dir}: backend {meta.get('backend')!r} cannot be exported to ONNX "
            "(only fine-tuned encoders; TF-IDF models are already fast)"
        )
    return meta


def _finish_graph(source: Any, tmp: Path, new_meta: dict[str, Any], report: dict[str, Any],
                  options: ExportOptions, eval_data: TextDataset | None) -> list[str]:
    """Turn ``model.fp32.onnx`` into the final ``model.onnx`` (int8: searched or with a fixed fp32 list).

    Returns the node names left in fp32; the search's record joins ``report``.
    """
    from .classifier import TextClassifier

    searching = options.quantize == "int8" and options.search and eval_data is not None \
        and options.keep_fp32 is None
    kept = list(options.keep_fp32) if options.keep_fp32 is not None else default_keep_fp32(tmp / FP32_FILE)
    if searching:
        assert eval_data is not None
        shutil.copy2(tmp / FP32_FILE, tmp / ONNX_FILE)  # a loadable directory for the search
        write_meta(tmp, new_meta)
        kept, report["int8_search"] = _search(source, TextClassifier.load(tmp), eval_data, tmp, options)
    elif options.quantize == "int8":
        if options.keep_fp32 is None and eval_data is None:
            # the fixed default is the one measured least dependable (docs/research-log/benchmarks-history.md, issue 21)
            LOGGER.warning("int8 without --eval (eval_data): the FFN down-projections stay fp32 unchecked; pass "
                           "held-out data to choose the fp32 layers on it and measure the accuracy change")
        quantize_int8(tmp / FP32_FILE, tmp / ONNX_FILE, exclude=kept)
    if options.quantize == "int8" and (tmp / FP32_FILE).exists():
        (tmp / FP32_FILE).unlink()
    elif (tmp / FP32_FILE).exists():
        (tmp / FP32_FILE).replace(tmp / ONNX_FILE)
    return kept


def _rewrite_meta(tmp: Path, meta: dict[str, Any]) -> None:
    (tmp / META_FILE).unlink(missing_ok=True)
    write_meta(tmp, meta)


def _search(source: Any, exported: Any, data: TextDataset, tmp: Path, options: ExportOptions
            ) -> tuple[list[str], dict[str, Any]]:
    """Rank nodes on (up to 512 of) the eval texts, then keep the fewest fp32 nodes within the budget.

    The chosen graph is copied to ``model.onnx``; returns the kept node names and the search's record.
    """
    from .quantize import Variant, choose_variant, rank_nodes, scratch_dir, timed
    from .tokens import tokenize

    labels = data.require_labels()
    reference = source.predict_proba(data.texts)
    reference_accuracy = source.metrics_from_proba(labels, reference)["accuracy"]
    encoder: Any = getattr(exported.backend_, "primary", exported.backend_)
    probe = tokenize(encoder.tokenizer, data.texts[:512], encoder.max_length)

    def logits_of(path: Path) -> tuple[np.ndarray, float]:
        encoder.use_graph(path)
        return timed(lambda: encoder.logits_from_ids(probe))

    def evaluate(path: Path) -> Variant:
        encoder.use_graph(path)
        proba, seconds = timed(lambda: exported.predict_proba(data.texts))
        accuracy = exported.metrics_from_proba(labels, proba)["accuracy"]
        return Variant([], 100.0 * (reference_accuracy - accuracy),
                       float(np.mean(proba.argmax(1) == reference.argmax(1))), seconds, texts=len(labels))

    with scratch_dir() as work:
        ranked = rank_nodes(tmp / FP32_FILE, logits_of, Path(work))
        chosen = choose_variant(tmp / FP32_FILE, ranked, evaluate, max_drop=options.max_accuracy_drop,
                                work=Path(work))
        assert chosen.path is not None
        shutil.copy2(chosen.path, tmp / ONNX_FILE)
    record = {"eval_source": data.source, "ranked_by": "mean |logit change| when quantised alone, first 512 texts",
              "most_sensitive": [[n, round(score, 5)] for n, score in ranked[:8]],
              "criterion": "changed predictions plus one standard error (sqrt of their count) at most "
                           "max_accuracy_drop % of the texts",
              "kept_fp32": len(chosen.kept_fp32), "accuracy_drop_points": round(chosen.accuracy_drop_points, 4),
              "changed_pct": round(chosen.changed_pct, 4), "changed_upper_pct": round(chosen.changed_upper_pct, 4),
              "tried": chosen.notes.get("tried", [])}
    return chosen.kept_fp32, record


def _write_graph(network: Any, tmp: Path, options: ExportOptions) -> dict[str, Any]:
    """``model.fp32.onnx`` in ``tmp``: traced, checked against PyTorch on probes, fused (quantised later)."""
    fp32 = tmp / FP32_FILE
    _torch_export(network, fp32, options.opset)
    report: dict[str, Any] = {"probe_max_abs_logit_diff_fp32": _probe_difference(network, fp32)}
    if report["probe_max_abs_logit_diff_fp32"] > 1e-3:
        raise ConfigError(
            f"ONNX export does not reproduce the PyTorch logits (max difference "
            f"{report['probe_max_abs_logit_diff_fp32']:.3g}); please report this with your model's config.json"
        )
    if options.optimize:
        report["optimized"] = _optimize(fp32, network.config)
    return report


def _torch_export(network, path: Path, opset: int) -> None:
    """Trace the network (encoder + head) to ONNX with dynamic batch and sequence axes."""
    import torch

    ids = torch.tensor([[101, 2023, 2003, 1037, 7099, 102], [101, 2178, 102, 0, 0, 0]], dtype=torch.long)
    mask = (ids != 0).long()
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
            "logits": {0: "batch"}}
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter is deprecated in favour of dynamo, but it is the one
        # that handles BERT-family encoders with dynamic shapes without onnxscript rewrites.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            network, (ids, mask), str(path), input_names=["input_ids", "attention_mask"],
            output_names=["logits"], dynamic_axes=axes, opset_version=opset, dynamo=False,
        )


def _probe_difference(network, path: Path) -> float:
    """Max |logit difference| between PyTorch and ONNX Runtime on random padded inputs."""
    import torch

    ort = require_onnxruntime()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    vocab = int(network.config.vocab_size)
    worst = 0.0
    for batch, width in ((1, 5), (3, 17), (4, 64)):
        ids = rng.integers(1000, min(vocab, 20000), size=(batch, width))
        mask = np.ones_like(ids)
        mask[0, width // 2:] = 0
        with torch.no_grad():
            expected = network(torch.as_tensor(ids), torch.as_tensor(mask)).numpy()
        got = session.run(["logits"], {"input_ids": ids.astype(np.int64), "attention_mask": mask.astype(np.int64)})[0]
        worst = max(worst, float(np.abs(expected - got).max()))
    return worst


def _optimize(path: Path, config) -> bool:
    """Fuse transformer subgraphs in place; keep the plain graph if the optimiser declines."""
    try:
        from onnxruntime.transformers.fusion_options import FusionOptions
        from onnxruntime.transformers.optimizer import optimize_model
    except ImportError:  # pragma: no cover - part of onnxruntime, but kept optional
        return False
    fusion = FusionOptions("bert")
    fusion.enable_attention = False
    try:
        with logging_state({"onnxruntime": logging.ERROR}):
            model = optimize_model(
                str(path), model_type="bert", num_heads=int(config.num_attention_heads),
                hidden_size=int(config.hidden_size), opt_level=0, optimization_options=fusion,
            )
            model.save_model_to_file(str(path))
    except Exception as err:  # noqa: BLE001 - an optimisation is never worth failing the export
        LOGGER.warning("ONNX graph optimisation skipped (%s)", str(err).splitlines()[0])
        return False
    return True


def _compare(source, exported, data: TextDataset, max_drop: float) -> dict[str, Any]:
    """Accuracy of both models on the same labelled texts, and how often they agree."""
    labels = data.require_labels()
    before = source.predict_proba(data.texts)
    after = exported.predict_proba(data.texts)
    m_before = source.metrics_from_proba(labels, before)
    m_after = exported.metrics_from_proba(labels, after)
    drop = 100.0 * (m_before["accuracy"] - m_after["accuracy"])
    check = {
        "eval_source": data.source,
        "n": len(data.texts),
        "accuracy_pytorch": m_before["accuracy"],
        "accuracy_onnx": m_after["accuracy"],
        "accuracy_drop_points": round(drop, 4),
        "prediction_agreement": float(np.mean(np.argmax(before, 1) == np.argmax(after, 1))),
        "max_abs_proba_diff": float(np.abs(before - after).max()),
        "max_accuracy_drop": max_drop,
        "within_tolerance": drop <= max_drop,
    }
    if drop > max_drop:
        LOGGER.warning(
            "!!! EXPORT LOSES ACCURACY: %.2f points on %s (%.4f -> %.4f), more than the allowed %.2f; "
            "use the fp32 export or the PyTorch model for this data !!!",
            drop, data.source, m_before["accuracy"], m_after["accuracy"], max_drop,
        )
    return check
