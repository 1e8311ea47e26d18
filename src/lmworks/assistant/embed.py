"""Sentence embeddings from a BERT-family encoder: mean pooling, unit length.

all-MiniLM-L6-v2 (the shipped encoder) was trained exactly this way for semantic
similarity, so cosine similarity of these vectors is a meaningful match score
without any fine-tuning; :mod:`.tune` adapts it to a knowledge base.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..heads import mean_pool
from ..inference.runner import DEFAULT_MAX_TOKENS
from ..training.batching import pad_batch, sorted_batches, tokenize


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

        from ..backends.transformer import _quiet_transformers
        from ..models import resolve_encoder

        self.path = resolve_encoder(str(model))
        self.max_length = max_length
        self.num_threads = num_threads
        with _quiet_transformers():
            self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
            self.model: Any = AutoModel.from_pretrained(self.path, local_files_only=True)
        self.model.eval()

    @property
    def dim(self) -> int:
        """Vector size."""
        return int(self.model.config.hidden_size)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Normalised embeddings of a padded batch, with gradients (used by tuning)."""
        hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        return torch.nn.functional.normalize(mean_pool(hidden, mask), dim=-1)

    def encode(self, texts: Sequence[str], *, what: str = "texts") -> np.ndarray:
        """``(n, dim)`` float32 unit vectors, in input order."""
        from ..training.trainer import torch_threads

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not len(texts):
            return out
        ids = tokenize(self.tokenizer, texts, self.max_length, what=what)
        was_training = self.model.training
        self.model.eval()
        with torch_threads(self.num_threads), torch.inference_mode():
            for batch in sorted_batches([len(x) for x in ids], DEFAULT_MAX_TOKENS):
                padded, mask = pad_batch([ids[i] for i in batch], self.tokenizer.pad_token_id)
                out[batch] = self.forward(padded, mask).float().numpy()
        self.model.train(was_training)
        return out

    def save(self, directory: Path) -> None:
        """Write the encoder in the transformers layout (after tuning)."""
        from ..backends.transformer import _quiet_transformers

        with _quiet_transformers():
            self.model.save_pretrained(directory)
            self.tokenizer.save_pretrained(directory)
