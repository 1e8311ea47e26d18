"""Sentence embeddings from a BERT-family encoder: mean pooling, unit length.

all-MiniLM-L6-v2 (the shipped encoder) was trained exactly this way for semantic
similarity, so cosine similarity of these vectors is a meaningful match score
without any fine-tuning. The FAQ assistant retrieves with it (and adapts it with
contrastive tuning), the recommender reads item texts with it: it is core, not an
application's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .heads import mean_pool
from .models import resolve_encoder
from .runtime import quiet_transformers, torch_threads
from .tokens import padded_batches, tokenize


class SentenceEncoder:
    """Texts to L2-normalised mean-pooled vectors.

    Parameters
    ----------
    model:
        Encoder name (``lmworks models``) or a checkpoint directory.
    max_length:
        Tokens read per text; longer texts are truncated (and counted in a warning).
    num_threads:
        Intra-op threads (default: the usable CPUs).
    """

    def __init__(self, model: str | Path = "minilm", *, max_length: int = 128, num_threads: int | None = None) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.path = resolve_encoder(str(model))
        self.max_length = max_length
        self.num_threads = num_threads
        with quiet_transformers():
            self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
            self.model: Any = AutoModel.from_pretrained(self.path, local_files_only=True)
        self.model.eval()

    @property
    def dim(self) -> int:
        """Vector size."""
        return int(self.model.config.hidden_size)

    @property
    def pad_id(self) -> int:
        """The tokenizer's padding id."""
        return int(self.tokenizer.pad_token_id)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Normalised embeddings of a padded batch, with gradients (used by tuning)."""
        hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        return torch.nn.functional.normalize(mean_pool(hidden, mask), dim=-1)

    def encode(self, texts: Sequence[str], *, what: str = "texts") -> np.ndarray:
        """``(n, dim)`` float32 unit vectors, in input order."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not len(texts):
            return out
        ids = tokenize(self.tokenizer, texts, self.max_length, what=what)
        was_training = self.model.training
        self.model.eval()
        with torch_threads(self.num_threads), torch.inference_mode():
            for batch, padded, mask in padded_batches(ids, self.pad_id):
                out[batch] = self.forward(padded, mask).float().numpy()
        self.model.train(was_training)
        return out

    def save(self, directory: Path) -> None:
        """Write the encoder in the transformers layout (after tuning)."""
        with quiet_transformers():
            self.model.save_pretrained(directory)
            self.tokenizer.save_pretrained(directory)
