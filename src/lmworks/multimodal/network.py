"""Late fusion: each modality encoded on its own, their vectors joined, a small MLP decides.

This is the default of AutoGluon's MultiModalPredictor: per-modality backbones, pooled,
concatenated, then a fusion MLP. Text goes through the fine-tuned encoder with mean
pooling (as the text classifier's default head); each image is its frozen backbone's
pooled features plus a missing flag, projected; numbers (standardised, with missing
flags) and categories (one embedding per column) are projected too. Every new layer
lives under ``head`` so the training engine gives it the head's learning rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..heads import mean_pool
from ..images import FEATURE_DIM

IMAGE_WIDTH = 256
NUMERIC_WIDTH = 32


@dataclass
class NetworkShape:
    """What the fusion network is built for (saved with the model, to rebuild it exactly)."""

    n_labels: int
    image_columns: int = 0
    numeric_inputs: int = 0
    category_sizes: tuple[int, ...] = ()
    hidden: int = 256
    dropout: float = 0.1
    modality_dropout: float = 0.1


class _Config:
    """What the training engine reads from a network's ``config`` when there is no text encoder."""

    def __init__(self, n_labels: int) -> None:
        self.num_labels, self.num_hidden_layers = n_labels, 0


class FusionNetwork(nn.Module):
    """``forward(batch) -> logits`` over a dict of tensors (see :meth:`forward`)."""

    def __init__(self, encoder: Any, shape: NetworkShape) -> None:
        super().__init__()
        self.encoder: Any = encoder
        self.shape = shape
        parts: dict[str, nn.Module] = {}
        width = int(encoder.config.hidden_size) if encoder is not None else 0
        if shape.image_columns:
            parts["image"] = nn.Linear(FEATURE_DIM + 1, IMAGE_WIDTH)
            width += IMAGE_WIDTH * shape.image_columns
        if shape.numeric_inputs:
            parts["numeric"] = nn.Linear(shape.numeric_inputs, NUMERIC_WIDTH)
            width += NUMERIC_WIDTH
        embeddings = [nn.Embedding(size + 1, min(16, (size + 2) // 2)) for size in shape.category_sizes]
        if embeddings:
            parts["categories"] = nn.ModuleList(embeddings)
            width += sum(e.embedding_dim for e in embeddings)
        parts["mlp"] = nn.Sequential(nn.Dropout(shape.dropout), nn.Linear(width, shape.hidden), nn.GELU(),
                                     nn.Dropout(shape.dropout), nn.Linear(shape.hidden, shape.n_labels))
        self.head = nn.ModuleDict(parts)
        self._config = encoder.config if encoder is not None else _Config(shape.n_labels)

    @property
    def config(self) -> Any:
        """The text encoder's transformers config, or a stand-in with ``num_labels``."""
        return self._config

    def _gate(self, vector: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        """Zero this modality's vector where the row lacks it, and (training only) for a random share of rows.

        A missing modality and a dropped one reach the MLP as the same zero vector, so
        modality dropout is exactly what teaches the model to answer without that input.
        """
        keep = torch.ones(vector.shape[0], 1, dtype=vector.dtype) if present is None else present[:, None]
        if self.training and self.shape.modality_dropout > 0:
            keep = keep * (torch.rand(vector.shape[0], 1) >= self.shape.modality_dropout)
        return vector * keep

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits from the batch's tensors, whichever the network reads.

        ``input_ids``/``attention_mask`` (text), ``images`` ``(B, columns, 1281)`` (the last
        feature flags a missing image), ``numeric`` ``(B, 2k)`` (values, then missing flags),
        ``categories`` ``(B, c)`` (0 = unseen or missing).
        """
        vectors = []
        if self.encoder is not None:
            hidden = self.encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            vectors.append(self._gate(mean_pool(hidden.last_hidden_state, batch["attention_mask"])))
        if "image" in self.head:
            images = batch["images"]
            projected = torch.relu(self.head["image"](images))
            vectors.extend(self._gate(projected[:, i], 1 - images[:, i, -1]) for i in range(projected.shape[1]))
        if "numeric" in self.head:
            numeric = batch["numeric"]
            all_missing = numeric[:, numeric.shape[1] // 2:].prod(dim=1)
            vectors.append(self._gate(torch.relu(self.head["numeric"](numeric)), 1 - all_missing))
        if "categories" in self.head:
            tables: Any = self.head["categories"]
            codes = batch["categories"]
            embedded = torch.cat([emb(codes[:, i]) for i, emb in enumerate(tables)], dim=1)
            vectors.append(self._gate(embedded, (codes > 0).any(dim=1).to(embedded.dtype)))
        return self.head["mlp"](torch.cat(vectors, dim=1))
