"""Token ids for training and inference alike: tokenise once, pad dynamically, sort by length.

Padding every text to ``max_length`` (as most tutorials do) makes a CPU spend most of
its time on pad tokens: review snippets average ~27 tokens against a typical 128.
Training pads each length-grouped batch to its own longest text
(:mod:`lmworks.training.batching`); inference sorts texts by length and cuts batches
under a token budget, so one long text never inflates a large batch. Both start
from :func:`tokenize` and :func:`pad_batch`, which is why they live here, in a module
that belongs to neither.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ModelDirError
from .runtime import quiet_transformers

if TYPE_CHECKING:
    import torch

LOGGER = logging.getLogger("lmworks")
#: The truncation warning's format (a search, where max_length is a choice, filters it out by it).
TRUNCATED = "%d of %d %s were longer than %s and were truncated"

#: Padded tokens per inference batch. Smaller batches keep activations in cache: on
#: 2 AVX2 cores MiniLM ran 20 % faster at 2048 than at 8192 (docs/research-log/benchmarks-history.md).
DEFAULT_MAX_TOKENS = 2048


def tokenize(tokenizer: Any, texts: Sequence[str], max_length: int, *, what: str = "texts") -> list[list[int]]:
    """Token ids per text, truncated to ``max_length``; logs how many were truncated."""
    ids, truncated = tokenize_counted(tokenizer, texts, max_length)
    warn_truncated(truncated, len(ids), max_length, what=what)
    return ids


def tokenize_counted(tokenizer: Any, texts: Sequence[str], max_length: int) -> tuple[list[list[int]], int]:
    """Token ids per text, truncated to ``max_length``, and how many texts were truncated (nothing logged).

    Tokenising without truncation first costs little with a fast tokenizer and is
    the only way to know how many texts lost their tail. Callers that predict a file
    chunk by chunk add the counts up and report once (:func:`warn_truncated`).
    """
    if not texts:
        return [], 0
    full = tokenizer(list(texts), add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
    long_rows = [i for i, ids in enumerate(full) if len(ids) > max_length]
    if long_rows:
        cut = tokenizer(
            [texts[i] for i in long_rows], add_special_tokens=True, truncation=True, max_length=max_length
        )["input_ids"]
        for i, ids in zip(long_rows, cut):
            full[i] = ids
    return full, len(long_rows)


def warn_truncated(truncated: int, total: int, max_length: int | None, *, what: str = "texts") -> None:
    """The one warning line for texts cut at the model's token limit (nothing when none were)."""
    if truncated:
        limit = f"max_length={max_length} tokens" if max_length is not None else "the model's max_length"
        LOGGER.warning(TRUNCATED, truncated, total, what, limit)


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad to the longest sequence in the batch; return ``(input_ids, attention_mask)``."""
    import torch

    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids, mask


def sorted_batches(lengths: Sequence[int], max_tokens: int, max_batch: int = 256) -> Iterator[list[int]]:
    """Deterministic inference batches: indices sorted by length, bounded by a token budget.

    Each batch holds at most ``max_batch`` texts and at most ``max_tokens`` padded
    tokens, so one long text is batched with few others instead of inflating a big
    batch. Callers restore the input order from the yielded indices.
    """
    order = np.argsort(np.asarray(lengths), kind="stable")[::-1]
    batch: list[int] = []
    width = 0
    for i in order.tolist():
        new_width = max(width, lengths[i])
        if batch and (len(batch) >= max_batch or new_width * (len(batch) + 1) > max_tokens):
            yield batch
            batch, new_width = [], lengths[i]
        batch.append(i)
        width = new_width
    if batch:
        yield batch


def padded_batches(input_ids: Sequence[Sequence[int]], pad_id: int, max_tokens: int = DEFAULT_MAX_TOKENS
                   ) -> Iterator[tuple[list[int], torch.Tensor, torch.Tensor]]:
    """``(indices, ids, mask)`` over :func:`sorted_batches`: what every batched forward pass loops over."""
    for batch in sorted_batches([len(x) for x in input_ids], max_tokens):
        ids, mask = pad_batch([input_ids[i] for i in batch], pad_id)
        yield batch, ids, mask


def load_tokenizer(directory: str | Path) -> Any:
    """The tokenizer saved in a model directory, or a one-line :class:`ModelDirError`."""
    from transformers import AutoTokenizer

    try:
        with quiet_transformers():
            return AutoTokenizer.from_pretrained(directory, local_files_only=True)
    except (OSError, ValueError, TypeError) as err:
        raise ModelDirError(f"{directory}: cannot load tokenizer ({str(err).splitlines()[0]})") from err
