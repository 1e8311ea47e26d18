"""int8 quantisation that stays inside an accuracy budget.

ONNX Runtime's dynamic quantisation turns every weight matrix (MatMul) and the word
embeddings (Gather) into int8 and quantises each matmul's input activations on the fly,
one scale per tensor. A few nodes are far more sensitive than the rest: an activation
with outliers in a few dimensions (typically a feed-forward block's output, which feeds
the residual stream) loses its small values to the shared scale, and the classification
head's few weights carry the whole decision. Keeping those nodes in fp32 recovers most
of the accuracy at little cost in speed.

:func:`rank_nodes` measures, on the user's own texts, how far quantising each node alone
moves the logits away from fp32's; :func:`choose_variant` then keeps the most sensitive
nodes in fp32, fewest first, and returns the fastest variant within the budget on the
evaluation data (falling back to fp32 when none is).

"Within the budget" is judged by the share of predictions that change, not by the net
accuracy change. A changed prediction moves accuracy by at most one text, so changing at
most x % of them bounds the loss at x points on that data; and the net change is the
difference of two noisy counts (on ~1,300 Rotten Tomatoes dev texts full int8 lost 0.24
points while changing 1.0 % of the predictions, then lost 0.78 on the test split,
changing 1.9 %). The changed count is itself a handful of texts (0.5 % of 1,275 is 6), so
a variant passes only when the count plus one standard error (``√count``, a Poisson
count's) is within the budget: a graph one text under the line by luck does not pass
(:func:`choose_variant`).

Without evaluation data the feed-forward down-projections stay fp32 (:func:`is_ffn_output`):
their inputs, the intermediate activations after GELU, carry the outliers that per-tensor
activation scales handle worst (Bondarenko et al. 2021, "Understanding and overcoming the
challenges of efficient transformer quantization"). Note that dynamic quantisation scales
a matmul's input per batch, so a text's int8 prediction depends slightly on its batch-mates;
searches and checks run with the batches the exported model will use.
"""

from __future__ import annotations

import logging
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .runtime import logging_state

LOGGER = logging.getLogger("lmworks")
#: How many of the most sensitive nodes the search keeps in fp32, in turn.
KEEP_FP32_STEPS = (0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 36)
_FFN_OUTPUT = re.compile(r"/(layer|layers|h|block|blocks)\.\d+/output/dense/MatMul$")


def is_ffn_output(node: str) -> bool:
    """Whether a node is a feed-forward block's down-projection (not the attention output's)."""
    return bool(_FFN_OUTPUT.search(node))


@dataclass
class Variant:
    """One quantised graph: which nodes stayed fp32, its accuracy loss and its speed on the eval data."""

    kept_fp32: list[str]
    accuracy_drop_points: float
    agreement: float
    seconds: float
    texts: int = 0
    path: Path | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def changed_pct(self) -> float:
        """Share of predictions that differ from the source model's, in percent."""
        return 100.0 * (1.0 - self.agreement)

    @property
    def changed_upper_pct(self) -> float:
        """The changed share plus one standard error of its count (:func:`changed_upper_pct`)."""
        return changed_upper_pct(self.changed_pct, self.texts)


def changed_upper_pct(changed_pct: float, texts: int) -> float:
    """``changed_pct`` % of ``texts`` plus one standard error of that count (``√count``), in percent."""
    if texts <= 0:
        raise ValueError("the number of texts compared is needed for the standard error (got 0)")
    count = changed_pct / 100.0 * texts
    return 100.0 * (count + float(np.sqrt(count))) / texts


def quantizable_nodes(model_path: Path) -> list[str]:
    """MatMul and Gather nodes whose second input is a stored weight: what dynamic quantisation touches."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    weights = {init.name for init in model.graph.initializer}
    out = []
    for node in model.graph.node:
        if node.op_type == "MatMul" and len(node.input) > 1 and node.input[1] in weights:
            out.append(node.name)
        elif node.op_type == "Gather" and node.input and node.input[0] in weights:
            out.append(node.name)
    return out


def quantize_int8(source: Path, target: Path, *, include: Sequence[str] | None = None,
                  exclude: Sequence[str] = ()) -> None:
    """Dynamic int8 quantisation with per-channel weight scales; ``exclude`` stays fp32.

    Per-channel weight scales measured closer to fp32 than one scale per tensor (97.8 % vs
    95.5 % argmax agreement on Rotten Tomatoes) and no slower.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # onnxruntime logs its pre-processing hint (noise here) through the root logger.
    with logging_state({"root": logging.ERROR}):
        # Fused ops (com.microsoft domain) defeat ONNX shape inference; their outputs are fp32.
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True,
                         nodes_to_quantize=list(include) if include is not None else None,
                         nodes_to_exclude=list(exclude) or None,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


#: ``logits_of(graph_path) -> (logits, seconds)`` on the evaluation texts.
LogitsFn = Callable[[Path], tuple[np.ndarray, float]]


def rank_nodes(fp32: Path, logits_of: LogitsFn, work: Path) -> list[tuple[str, float]]:
    """Nodes by how far quantising each one alone moves the logits from fp32's (mean absolute change)."""
    reference, _ = logits_of(fp32)
    scores = []
    for node in quantizable_nodes(fp32):
        single = work / "single.onnx"
        quantize_int8(fp32, single, include=[node])
        logits, _ = logits_of(single)
        scores.append((node, float(np.abs(logits - reference).mean())))
    return sorted(scores, key=lambda x: -x[1])


def choose_variant(fp32: Path, ranked: Sequence[tuple[str, float]], evaluate: Callable[[Path], Variant], *,
                   max_drop: float, work: Path) -> Variant:
    """The fastest variant whose changed predictions, plus one standard error, are at most ``max_drop`` %.

    ``evaluate(graph_path)`` scores a graph on the evaluation data; each step keeps more
    nodes in fp32. Why the standard error: the changed count on ~1,300 texts is a few texts,
    and without the margin a search on the Rotten Tomatoes dev split stopped at 3 fp32
    nodes (6 texts, 0.47 %, one under the line) which changed 1.10 % of the test split's
    predictions and lost 0.63 points there; with it the search goes on to 8 nodes (3 texts;
    test -0.31). The margin is about the square root of the budget's count: 40 % of the
    budget on 1,300 texts, 14 % on 10,000 (``docs/research-log/benchmarks-history.md``, issue 21). The last
    resort is the fp32 graph itself.
    """
    tried: list[Variant] = []
    for keep in KEEP_FP32_STEPS:
        if keep > len(ranked):
            break
        kept = [name for name, _ in ranked[:keep]]
        path = work / f"int8-keep{keep}.onnx"
        quantize_int8(fp32, path, exclude=kept)
        variant = evaluate(path)
        variant.kept_fp32, variant.path = kept, path
        tried.append(variant)
        LOGGER.info("int8 with %d node(s) in fp32: %.2f %% of predictions changed (%.2f %% with its standard "
                    "error), accuracy %+.2f points", keep, variant.changed_pct, variant.changed_upper_pct,
                    -variant.accuracy_drop_points)
        if variant.changed_upper_pct <= max_drop:
            variant.notes["tried"] = [_summary(v) for v in tried]
            return variant
    fallback = evaluate(fp32)
    fallback.path, fallback.kept_fp32 = fp32, ["(all: no int8 variant was within the budget)"]
    fallback.notes["tried"] = [_summary(v) for v in tried]
    return fallback


def _summary(v: Variant) -> dict[str, Any]:
    return {"kept_fp32": len(v.kept_fp32), "accuracy_drop_points": round(v.accuracy_drop_points, 4),
            "changed_pct": round(v.changed_pct, 4), "changed_upper_pct": round(v.changed_upper_pct, 4),
            "seconds": round(v.seconds, 3)}


def default_keep_fp32(model_path: Path) -> list[str]:
    """Without evaluation data: the feed-forward down-projections stay fp32 (see the module docstring)."""
    return [node for node in quantizable_nodes(model_path) if is_ffn_output(node)]


def scratch_dir() -> tempfile.TemporaryDirectory:
    """A temporary folder for the search's graphs (removed when closed)."""
    return tempfile.TemporaryDirectory(prefix="lmworks-quantize-")


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """``fn()`` and its wall time in seconds."""
    started = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - started
