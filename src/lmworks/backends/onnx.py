"""A fine-tuned encoder exported to ONNX and run with ONNX Runtime.

Written by ``lmworks export`` (see :mod:`lmworks.export`). The graph takes
``input_ids`` and ``attention_mask`` and returns the same logits as the PyTorch
network (head included), so everything around it — tokenisation, length-sorted
batches, activation, blend, thresholds — is shared with the PyTorch backend.
ONNX Runtime is an optional dependency (extra ``onnx``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, ModelDirError
from ..heads import activate
from ..runtime import usable_cpus
from ..tokens import load_tokenizer, pad_batch, sorted_batches, tokenize_counted
from .base import FitRun, TokenLimitedBackend

ONNX_FILE = "model.onnx"
#: Padded tokens per batch, measured best on 2 AVX2 cores with MiniLM: int8 GEMMs gain
#: most from cache-sized batches (327 texts/s at 512 vs 259 at 8192), fp32 peaks near 1024.
MAX_TOKENS = {"int8": 512, None: 1024}


def require_onnxruntime():
    """Import ``onnxruntime`` or explain which extra provides it."""
    try:
        import onnxruntime
    except ImportError as err:  # pragma: no cover - depends on the installation
        raise ConfigError("ONNX support needs onnxruntime: pip install 'lmworks[onnx]'") from err
    return onnxruntime


class OnnxBackend(TokenLimitedBackend):
    """Inference-only backend over an exported ``model.onnx``."""

    name = "onnx"

    def __init__(self) -> None:
        self.session: Any = None
        self.tokenizer: Any = None
        self.max_length = 128
        self.multi_label = False
        self.file = ONNX_FILE
        self.n_labels = 0
        self.max_tokens = MAX_TOKENS[None]
        self.pool: Any = None
        self.workers = 1
        self.record: dict[str, Any] = {}

    def fit(self, texts: Sequence[str], targets: np.ndarray, run: FitRun) -> dict[str, Any]:  # noqa: D102
        raise ConfigError("an exported ONNX model cannot be trained; fine-tune the PyTorch model and export again")

    def logits_from_ids(self, input_ids: list[list[int]], max_tokens: int | None = None) -> np.ndarray:
        """Logits in input order, computed in length-sorted batches under a token budget.

        Batches run concurrently on a pool of single-threaded runs (one per CPU): on
        small matrices that beats splitting every op across threads (measured 333-359
        vs 286-313 texts/s for MiniLM int8 on 2 cores).
        """
        out = np.zeros((len(input_ids), self.n_labels), dtype=np.float32)
        if not input_ids:
            return out
        lengths = [len(x) for x in input_ids]
        batches = list(sorted_batches(lengths, max_tokens or self.max_tokens))
        while len(batches) < self.workers and max(len(b) for b in batches) > 1:
            # a small request still uses every core: halve the largest batch
            largest = max(range(len(batches)), key=lambda i: len(batches[i]))
            batch = batches.pop(largest)
            batches += [batch[: len(batch) // 2], batch[len(batch) // 2:]]

        def run(batch: list[int]) -> None:
            ids, mask = pad_batch([input_ids[i] for i in batch], self.tokenizer.pad_token_id)
            out[batch] = self.session.run(["logits"], {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]

        if self.pool is not None and len(batches) > 1:
            list(self.pool.map(run, batches))
        else:
            for batch in batches:
                run(batch)
        return out

    def predict_proba_counted(self, texts: Sequence[str]) -> tuple[np.ndarray, int]:
        """Class probabilities from ONNX Runtime, and the count of truncated texts."""
        if self.session is None:
            raise RuntimeError("backend is not loaded")
        ids, truncated = tokenize_counted(self.tokenizer, texts, self.max_length)
        return activate(self.logits_from_ids(ids), multi_label=self.multi_label), truncated

    def describe(self) -> dict[str, Any]:
        """The export's own record (graph file, opset, quantisation), as loaded."""
        if self.session is None:
            raise RuntimeError("backend is not loaded")
        return {"max_length": self.max_length, **self.record}

    def save(self, directory: Path) -> None:
        """Exported directories are written by :func:`lmworks.export.export_onnx`, not re-saved."""
        raise ConfigError("an exported ONNX model is saved by `lmworks export`; copy the directory instead")

    def use_graph(self, path: Path) -> None:
        """Run ``path`` from now on (one single-threaded ONNX Runtime session; the pool runs several)."""
        ort = require_onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ModelDirError(f"{path}: cannot load ONNX graph ({first})") from err

    @classmethod
    def load(cls, directory: Path, meta: dict[str, Any]) -> OnnxBackend:
        """Open an ONNX Runtime session over the exported graph."""
        require_onnxruntime()
        backend = cls()
        backend.record = {k: meta[k] for k in ("onnx", "export_check", "head", "base_model") if k in meta}
        info = meta.get("onnx", {})
        backend.file = info.get("file", ONNX_FILE)
        backend.max_tokens = MAX_TOKENS.get(info.get("quantize"), MAX_TOKENS[None])
        backend.max_length = int(meta.get("max_length", 128))
        backend.multi_label = meta.get("task") == "multi_label"
        backend.n_labels = len(meta["labels"])
        # One thread per run, one run per usable core (see logits_from_ids). ORT's own
        # default counts host cores, which oversubscribes a container limited to fewer.
        threads = int(meta.get("num_threads") or usable_cpus())
        if threads > 1:
            from concurrent.futures import ThreadPoolExecutor

            backend.pool = ThreadPoolExecutor(threads, thread_name_prefix="lmworks-onnx")
            backend.workers = threads
        backend.use_graph(directory / backend.file)
        backend.tokenizer = load_tokenizer(directory)
        return backend
