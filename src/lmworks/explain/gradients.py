"""Integrated Gradients on a transformer's token embeddings (Captum).

IG (Sundararajan et al., 2017) integrates the gradient of the explained score along the
straight line from a *baseline* input to the text, in embedding space. Its attributions add
up to ``f(text) - f(baseline)`` (completeness); what they miss of that sum, the
*convergence delta*, measures the integration error and is reported with every explanation.

* The explained score is the class's centred logit (``z_c - mean_k z_k``; a multi-label
  model's own logit for the label), the same quantity the TF-IDF explanation and the blend
  use, so the three add up in one space.
* The baseline keeps ``[CLS]`` and ``[SEP]`` and replaces every other token by ``[PAD]``
  (``baseline="pad"``, default) or ``[MASK]``; position embeddings and the attention mask
  are the text's. ``bench/explain.py`` compares the two by ERASER faithfulness.
* The interpolation steps of several texts run as one batch under a token budget
  (Gauss-Legendre points, Captum's default, which converge with fewer steps than a
  Riemann sum); only the embeddings need gradients, the weights are frozen meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..runtime import torch_threads
from ..tokens import pad_batch, sorted_batches
from .words import Words

BASELINES = ("pad", "mask")
#: Interpolated tokens per forward/backward pass: 2 cores ran 1024-4096 at the same speed.
TOKEN_BUDGET = 2048


@dataclass
class Attribution:
    """One text's word scores and what the reader should know about them."""

    scores: np.ndarray
    delta: float
    words_read: int


def _require_captum() -> Any:
    try:
        from captum.attr import LayerIntegratedGradients
    except ImportError as err:  # pragma: no cover - depends on the installation
        raise ConfigError("explaining a transformer model needs captum: pip install 'lmworks[explain]'") from err
    return LayerIntegratedGradients


def _baseline_ids(ids: Any, mask: Any, special: Any, token_id: int) -> Any:
    baseline = ids.clone()
    replace = (mask == 1) & ~special
    baseline[replace] = token_id
    return baseline


def integrated_gradients(backend: Any, words: Sequence[Words], columns: Sequence[int], *, steps: int = 8,
                         baseline: str = "pad") -> list[Attribution]:
    """Word attributions of ``backend`` (a transformer backend) for class ``columns[i]`` of text ``i``."""
    if baseline not in BASELINES:
        raise ConfigError(f"unknown IG baseline {baseline!r}: choose {', '.join(BASELINES)}")
    layer_ig = _require_captum()
    tokenizer, network = backend.tokenizer, backend.network
    token_id = tokenizer.pad_token_id if baseline == "pad" else tokenizer.mask_token_id
    encoded = tokenizer([w.text for w in words], truncation=True, max_length=backend.max_length,
                        return_offsets_mapping=True, return_special_tokens_mask=True, verbose=False)
    multi_label = backend.multi_label

    def score(input_ids: Any, attention_mask: Any) -> Any:
        logits = network(input_ids, attention_mask)
        return logits if multi_label else logits - logits.mean(dim=1, keepdim=True)

    explainer = layer_ig(score, network.input_embeddings())
    out: list[Attribution | None] = [None] * len(words)
    lengths = [len(ids) for ids in encoded["input_ids"]]
    was_training = network.training
    network.eval()
    frozen = [p for p in network.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        with torch_threads(backend.num_threads):
            for batch in sorted_batches(lengths, max_tokens=max(TOKEN_BUDGET // steps, max(lengths))):
                ids, mask = pad_batch([encoded["input_ids"][i] for i in batch], tokenizer.pad_token_id)
                special, _ = pad_batch([encoded["special_tokens_mask"][i] for i in batch], 1)
                attributions, delta = explainer.attribute(
                    ids, baselines=_baseline_ids(ids, mask, special.bool(), token_id),
                    additional_forward_args=(mask,), target=[int(columns[i]) for i in batch], n_steps=steps,
                    internal_batch_size=max(steps, TOKEN_BUDGET // ids.shape[1]), return_convergence_delta=True)
                token_scores = attributions.sum(dim=-1).detach().numpy()
                for row, i in enumerate(batch):
                    out[i] = _to_words(words[i], encoded["offset_mapping"][i], encoded["special_tokens_mask"][i],
                                       token_scores[row], float(delta[row]))
    finally:
        for p in frozen:
            p.requires_grad_(True)
        network.train(was_training)
    return [a for a in out if a is not None]


def _to_words(words: Words, offsets: Sequence[tuple[int, int]], special: Sequence[int], token_scores: np.ndarray,
              delta: float) -> Attribution:
    spans = [(int(s), int(e)) for (s, e), sp in zip(offsets, special) if not sp]
    values = [float(v) for v, sp in zip(token_scores, special) if not sp]
    end = max((e for _, e in spans), default=0)
    return Attribution(words.spread(spans, values), delta, int(np.sum(words.starts < end)))
