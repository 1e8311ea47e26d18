"""The model every party of a federation holds, and the arrays they exchange."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..training.config import TrainConfig
from .protocol import PROTOCOL, FederationError

__all__ = ["PROTOCOL", "FederatedModel", "FederationError"]


class FederatedModel:
    """An encoder with a head for the federation's labels (built like ``lmworks train`` builds it).

    Parties exchange the trainable tensors in :attr:`names` order. Frozen word
    embeddings (``freeze_embeddings``) stay home: every party loads the same ones from
    its local encoder files, which the :attr:`fingerprint` checks.
    """

    def __init__(self, labels: Sequence[str], config: TrainConfig) -> None:
        from ..backends.transformer import TransformerBackend

        self.labels = list(labels)
        self.config = config
        self.backend = TransformerBackend(config.model)
        self.backend.prepare(self.labels, config)
        network = self.backend.network
        frozen = network.input_embeddings().weight if config.freeze_embeddings else None
        self._params = [(n, p) for n, p in network.named_parameters() if p is not frozen]
        self.names = [n for n, _ in self._params]

    # -- identity -------------------------------------------------------------------
    @functools.cached_property
    def fingerprint(self) -> str:
        """Hash of what must agree between server and client for averaging to make sense.

        Protocol version, the encoder's config and weight files, the head, the label
        order and every exchanged tensor's name and shape.
        """
        encoder = Path(self.backend.encoder_path or "")
        config = json.loads((encoder / "config.json").read_text(encoding="utf-8"))
        for volatile in ("_name_or_path", "transformers_version", "architectures"):
            config.pop(volatile, None)
        payload = {
            "protocol": PROTOCOL,
            "encoder_config": config,
            "encoder_weights": _weights_digest(encoder),
            "head": self.backend.pooling,
            "labels": self.labels,
            "tensors": [[n, list(p.shape)] for n, p in self._params],
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    # -- weights --------------------------------------------------------------------
    @property
    def parameters(self) -> list:
        """The exchanged tensors themselves (torch parameters, in :attr:`names` order)."""
        return [p for _, p in self._params]

    def get_arrays(self) -> list[np.ndarray]:
        """The exchanged tensors as NumPy arrays (copies)."""
        return [p.detach().cpu().numpy().copy() for _, p in self._params]

    def set_arrays(self, arrays: Sequence[np.ndarray]) -> None:
        """Load exchanged tensors; refuse a list that does not fit this model."""
        import torch

        if len(arrays) != len(self._params):
            raise FederationError(f"received {len(arrays)} weight arrays, this model has {len(self._params)}: "
                                  "server and client run different models")
        with torch.no_grad():
            for (name, param), array in zip(self._params, arrays):
                if tuple(array.shape) != tuple(param.shape):
                    raise FederationError(f"weight {name} has shape {tuple(array.shape)}, expected "
                                          f"{tuple(param.shape)}: server and client run different models")
                param.copy_(torch.from_numpy(np.asarray(array, dtype=np.float32)))

    # -- local work -----------------------------------------------------------------
    def train(self, texts: Sequence[str], targets: np.ndarray, config: TrainConfig, *,
              proximal_mu: float = 0.0, correction: Sequence[np.ndarray] | None = None,
              progress: bool = False) -> dict[str, Any]:
        """Train the current weights on local data.

        FedProx's proximal term when ``mu > 0``; with ``correction`` (SCAFFOLD's ``c - c_i``,
        one array per exchanged tensor) the loss gains ``<w, correction>``, whose gradient
        is the correction itself.
        """
        import torch

        regulariser = None
        if correction is not None:
            params = self.parameters
            shifts = [torch.from_numpy(np.asarray(a, dtype=np.float32)) for a in correction]

            def regulariser():
                return sum((p * s).sum() for p, s in zip(params, shifts))
        elif proximal_mu > 0:
            params = self.parameters
            anchors = [p.detach().clone() for p in params]

            def regulariser():
                return 0.5 * proximal_mu * sum(((p - a) ** 2).sum() for p, a in zip(params, anchors))

        from ..backends import FitRun

        return self.backend.train_network(texts, targets, FitRun(self.labels, config, progress=progress),
                                          regulariser=regulariser)

    def step_coefficients(self, config: TrainConfig, steps: int) -> list[float]:
        """SCAFFOLD's per-tensor distance of a unit gradient over ``steps`` (exchanged order)."""
        from .scaffold import step_coefficients

        by_name = step_coefficients(self.backend.network, config, steps)
        return [by_name.get(name, 0.0) for name in self.names]

    def classifier(self, *, dev_metrics: dict | None = None, info: dict | None = None):
        """A :class:`TextClassifier` over the current weights (to evaluate and save)."""
        from ..classifier import TextClassifier

        return TextClassifier.from_fitted(self.backend, self.labels, config=self.config.replace(blend="none"),
                                          dev_metrics=dev_metrics, train_info=info)


_DIGESTS: dict[tuple[str, int, int], str] = {}


def _weights_digest(encoder: Path) -> str:
    """SHA-256 of the encoder's weight files (cached per path, size and mtime)."""
    from ..model_dir import sha256_file

    parts = []
    for path in sorted(encoder.glob("*.safetensors")) + sorted(encoder.glob("*.bin")):
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if key not in _DIGESTS:
            _DIGESTS[key] = sha256_file(path)
        parts.append(f"{path.name}:{_DIGESTS[key]}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()
