"""Integrated Gradients on a transformer's embedding layer (Captum).

IG (Sundararajan et al., 2017) integrates the gradient of the explained score along the
straight line from a *baseline* input to the text, in embedding space. Its attributions add
up to ``f(text) - f(baseline)`` (completeness); what they miss of that sum, the
*convergence delta*, measures the integration error and is reported with every explanation.

* The explained score is the class's centred logit (``z_c - mean_k z_k``; a multi-label
  model's own logit for the label), the same quantity the TF-IDF explanation and the blend
  use, so the three add up in one space.
* The baseline keeps ``[CLS]`` and ``[SEP]`` and replaces every other token by ``[PAD]``
  (``baseline="pad"``, default) or ``[MASK]``; the attention mask is the text's.
* The straight line runs between the embedding layer's *outputs* (``layer="embeddings"``,
  default: token + position embeddings after their LayerNorm) or between the token
  embeddings alone (``layer="tokens"``). ``bench/explain.py`` chose the default, the
  baseline and the steps by ERASER faithfulness.
* The interpolation steps of several texts run as one batch under a token budget
  (Gauss-Legendre points, Captum's default, which converge with fewer steps than a
  Riemann sum); only the embeddings need gradients, the weights are frozen meanwhile.
  Captum's ``IntegratedGradients`` runs on the layer's output (see
  :func:`integrated_gradients` for why not ``LayerIntegratedGradients``).
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
LAYERS = ("embeddings", "tokens")
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
        from captum.attr import IntegratedGradients
    except ImportError as err:  # pragma: no cover - depends on the installation
        raise ConfigError("explaining a transformer model needs captum: pip install 'lmworks[explain]'") from err
    return IntegratedGradients


def _baseline_ids(ids: Any, mask: Any, special: Any, token_id: int) -> Any:
    baseline = ids.clone()
    replace = (mask == 1) & ~special
    baseline[replace] = token_id
    return baseline


def integrated_gradients(backend: Any, words: Sequence[Words], columns: Sequence[int], *, steps: int = 8,
                         baseline: str = "pad", layer: str = "embeddings") -> list[Attribution]:
    """Word attributions of ``backend`` (a transformer backend) for class ``columns[i]`` of text ``i``.

    One pass without gradients over the texts and their baselines records the layer's two
    end points and the two scores the delta needs; Captum then integrates between them.
    Captum's ``LayerIntegratedGradients`` gives the same numbers but runs the network four
    times for what that one pass does (a tenth of a 128-token explanation).
    """
    if baseline not in BASELINES:
        raise ConfigError(f"unknown IG baseline {baseline!r}: choose {', '.join(BASELINES)}")
    if layer not in LAYERS:
        raise ConfigError(f"unknown IG layer {layer!r}: choose {', '.join(LAYERS)}")
    tokenizer, network = backend.tokenizer, backend.network
    token_id = tokenizer.pad_token_id if baseline == "pad" else tokenizer.mask_token_id
    encoded = tokenizer([w.text for w in words], truncation=True, max_length=backend.max_length,
                        return_offsets_mapping=True, return_special_tokens_mask=True, verbose=False)
    score = _LayerScore(network, embedding_layer(network, layer), backend.multi_label)
    explainer = _require_captum()(score)
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
                target = [int(columns[i]) for i in batch]
                text, base, gap = score.ends(ids, _baseline_ids(ids, mask, special.bool(), token_id), mask, target)
                attributions = explainer.attribute(
                    text, baselines=base, additional_forward_args=(ids, mask), target=target, n_steps=steps,
                    internal_batch_size=max(steps, TOKEN_BUDGET // ids.shape[1]))
                token_scores = attributions.sum(dim=-1).detach()
                delta = (token_scores.sum(dim=1) - gap).numpy()  # completeness: sum = f(text) - f(baseline)
                for row, i in enumerate(batch):
                    out[i] = _to_words(words[i], encoded["offset_mapping"][i], encoded["special_tokens_mask"][i],
                                       token_scores[row].numpy(), float(delta[row]))
    finally:
        for p in frozen:
            p.requires_grad_(True)
        network.train(was_training)
    return [a for a in out if a is not None]


def embedding_layer(network: Any, layer: str = "embeddings") -> Any:
    """The module whose output IG interpolates: the token embedding, or the embedding block holding it.

    The block is the token embedding's parent when it is an ``*Embeddings`` module, as in every
    BERT-family model of ``transformers`` (``BertEmbeddings``, ``MPNetEmbeddings``, DistilBERT's
    ``Embeddings``...); a model built otherwise falls back to the token embeddings.
    """
    tokens = network.input_embeddings()
    if layer == "embeddings":
        for module in network.modules():
            if any(child is tokens for child in module.children()) and type(module).__name__.endswith("Embeddings"):
                return module
    return tokens


class _LayerScore:
    """``f(values, ids, mask)``: the explained scores with ``layer``'s output set to ``values``."""

    def __init__(self, network: Any, layer: Any, multi_label: bool) -> None:
        self.network, self.layer, self.multi_label = network, layer, multi_label

    def _scores(self, logits: Any) -> Any:
        return logits if self.multi_label else logits - logits.mean(dim=1, keepdim=True)

    def __call__(self, values: Any, input_ids: Any, attention_mask: Any) -> Any:
        handle = self.layer.register_forward_hook(lambda module, args, output: values)
        try:
            return self._scores(self.network(input_ids, attention_mask))
        finally:
            handle.remove()

    def ends(self, ids: Any, base_ids: Any, mask: Any, target: Sequence[int]) -> tuple[Any, Any, Any]:
        """The layer's output for the texts and their baselines, and ``f(text) - f(baseline)`` per row."""
        import torch

        seen: list[Any] = []
        handle = self.layer.register_forward_hook(lambda module, args, output: seen.append(output))
        try:
            with torch.no_grad():
                scores = self._scores(self.network(torch.cat([ids, base_ids]), torch.cat([mask, mask])))
        finally:
            handle.remove()
        n, rows = len(ids), torch.arange(len(ids))
        target_t = torch.as_tensor(target)
        return seen[0][:n], seen[0][n:], scores[rows, target_t] - scores[rows + n, target_t]


def _to_words(words: Words, offsets: Sequence[tuple[int, int]], special: Sequence[int], token_scores: np.ndarray,
              delta: float) -> Attribution:
    spans = [(int(s), int(e)) for (s, e), sp in zip(offsets, special) if not sp]
    values = [float(v) for v, sp in zip(token_scores, special) if not sp]
    end = max((e for _, e in spans), default=0)
    return Attribution(words.spread(spans, values), delta, int(np.sum(words.starts < end)))
