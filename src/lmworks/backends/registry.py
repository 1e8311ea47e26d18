"""Backend classes by the name ``lmworks.json`` stores, and the backend for a ``--model`` value.

Concrete backends are imported only when asked for, so choosing the TF-IDF baseline
never imports torch, and a missing optional dependency (onnxruntime) only matters to
the model directories that need it.
"""

from __future__ import annotations

import importlib

from ..errors import ModelDirError
from ..models import BASELINES
from .base import Backend

#: ``lmworks.json`` ``backend`` value -> (module, class).
BACKENDS: dict[str, tuple[str, str]] = {
    "transformer": ("lmworks.backends.transformer", "TransformerBackend"),
    "tfidf": ("lmworks.backends.tfidf", "TfidfBackend"),
    "onnx": ("lmworks.backends.onnx", "OnnxBackend"),
    "multimodal": ("lmworks.multimodal.backend", "MultimodalBackend"),
}


def backend_class(name: str) -> type[Backend]:
    """Backend class for a name stored in ``lmworks.json``."""
    if name not in BACKENDS:
        raise ModelDirError(f"unknown backend {name!r} in lmworks.json (known: {', '.join(BACKENDS)})")
    module, cls = BACKENDS[name]
    found: type[Backend] = getattr(importlib.import_module(module), cls)
    return found


def backend_for_model(model: str) -> Backend:
    """A fresh backend for the ``--model`` value (baseline name, encoder name or path)."""
    if model in BASELINES:
        return backend_class(model)()
    transformer: type = backend_class("transformer")
    instance: Backend = transformer(model)
    return instance
