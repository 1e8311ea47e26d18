"""Integrated Gradients for transformer classifiers (Captum), over word presence or over embeddings.

IG (Sundararajan et al., 2017) integrates the gradient of the explained score along the
straight line from a *baseline* input to the text. Its attributions add up to
``f(text) - f(baseline)`` (completeness); what they miss of that sum, the *convergence
delta*, measures the integration error and is reported with every explanation.

* The explained score is the class's centred logit (``z_c - mean_k z_k``; a multi-label
  model's own logit for the label), the same quantity the TF-IDF explanation and the blend
  use, so the three add up in one space.
* ``baseline="absent"`` (default) integrates over word *presence*: every token carries a
  weight in [0, 1] that scales the attention paid to it and its share of the pooled vector
  (:func:`lmworks.heads.presence_bias`); the baseline is every word deleted ([CLS] and [SEP]
  stay), the text is every weight at 1. A word's score is then its share of the change from
  "no words" to "the text" along the path where all words fade in together (the Aumann-Shapley
  value of the deletion game), which is what removing or keeping words, as a reader or
  ERASER does, tests. It was more faithful than the embedding baselines on both sets
  ``bench/explain.py`` measures, at the same cost.
* ``baseline="pad"`` or ``"mask"`` integrates between embeddings instead: the text and the
  text with every token but ``[CLS]``/``[SEP]`` replaced by ``[PAD]`` or ``[MASK]``, on the
  embedding layer's *outputs* (``layer="embeddings"``: token + position embeddings after
  their LayerNorm) or on the token embeddings alone (``layer="tokens"``).
* The interpolation steps of several texts run as one batch under a token budget
  (Gauss-Legendre points, Captum's default, which converge with fewer steps than a
  Riemann sum); only the interpolated input needs gradients, the weights are frozen meanwhile.
  The embedding path runs Captum's ``IntegratedGradients`` on the layer's output (see
  :func:`integrated_gradients` for why not ``LayerIntegratedGradients``).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..runtime import torch_threads
from ..tokens import pad_batch, sorted_batches
from .words import Words

LOGGER = logging.getLogger("lmworks")

#: ``absent``: IG over word presence (default); ``pad`` / ``mask``: IG between embeddings.
BASELINES = ("absent", "pad", "mask")
LAYERS = ("embeddings", "tokens")
#: The presence path is walked as ``presence = u ** 3`` with Captum's nodes on ``u``: the same straight
#: line (every word shares one weight), so the same attributions in the limit, but with the nodes
#: crowded near "no words", where the words' share of attention rises steeply (a word's weight is
#: compared with the [CLS]/[SEP] that stay). At 8 steps the delta fell by a third on 2 sets (bench/explain.py).
PRESENCE_POWER = 3
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
                         baseline: str = "absent", layer: str = "embeddings") -> list[Attribution]:
    """Word attributions of ``backend`` (a transformer backend) for class ``columns[i]`` of text ``i``.

    One pass without gradients over the texts and their baselines records the path's two end
    points and the two scores the delta needs; Captum then integrates between them. On the
    embedding path, Captum's ``LayerIntegratedGradients`` gives the same numbers but runs the
    network four times for what that one pass does (a tenth of a 128-token explanation).
    """
    if baseline not in BASELINES:
        raise ConfigError(f"unknown IG baseline {baseline!r}: choose {', '.join(BASELINES)}")
    if layer not in LAYERS:
        raise ConfigError(f"unknown IG layer {layer!r}: choose {', '.join(LAYERS)}")
    tokenizer, network = backend.tokenizer, backend.network
    encoded = tokenizer([w.text for w in words], truncation=True, max_length=backend.max_length,
                        return_offsets_mapping=True, return_special_tokens_mask=True, verbose=False)
    out: list[Attribution | None] = [None] * len(words)
    lengths = [len(ids) for ids in encoded["input_ids"]]
    was_training = network.training
    network.eval()
    frozen = [p for p in network.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        score = _score(backend, baseline, layer, encoded)
        explainer = _require_captum()(score)
        with torch_threads(backend.num_threads):
            for batch in sorted_batches(lengths, max_tokens=max(TOKEN_BUDGET // steps, max(lengths))):
                ids, mask = pad_batch([encoded["input_ids"][i] for i in batch], tokenizer.pad_token_id)
                special, _ = pad_batch([encoded["special_tokens_mask"][i] for i in batch], 1)
                target = [int(columns[i]) for i in batch]
                text, base, gap = score.ends(ids, mask, special.bool(), target)
                attributions = explainer.attribute(
                    text, baselines=base, additional_forward_args=(ids, mask), target=target, n_steps=steps,
                    internal_batch_size=max(steps, TOKEN_BUDGET // ids.shape[1]))
                token_scores = (attributions.sum(dim=-1) if attributions.dim() == 3 else attributions).detach()
                delta = (token_scores.sum(dim=1) - gap).numpy()  # completeness: sum = f(text) - f(baseline)
                for row, i in enumerate(batch):
                    out[i] = _to_words(words[i], encoded["offset_mapping"][i], encoded["special_tokens_mask"][i],
                                       token_scores[row].numpy(), float(delta[row]))
    finally:
        for p in frozen:
            p.requires_grad_(True)
        network.train(was_training)
    return [a for a in out if a is not None]


#: Whether a network reads presence weights (see :func:`_score`), by network, for the network's lifetime.
_HONOURED: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def _score(backend: Any, baseline: str, layer: str, encoded: Any) -> _PresenceScore | _LayerScore:
    """The function IG integrates; presence falls back to ``[PAD]`` embeddings where the model ignores it.

    The presence path needs the encoder to add a 4-D float attention mask to its attention
    scores, as every ``transformers`` encoder built on ``create_bidirectional_mask`` does (BERT,
    RoBERTa, MPNet, DistilBERT...). One that reads the mask otherwise (DeBERTa-v2 turns it into a
    boolean) would silently explain something else, so the first text a network explains is
    checked: its "no words" end must score as the model scores the text with every word masked
    out. The answer depends on the architecture only, so it is kept per network.
    """
    tokenizer, network, multi_label = backend.tokenizer, backend.network, backend.multi_label
    if baseline == "absent":
        presence = _PresenceScore(network, multi_label)
        if network not in _HONOURED:
            ids, mask = pad_batch(encoded["input_ids"][:1], tokenizer.pad_token_id)
            special, _ = pad_batch(encoded["special_tokens_mask"][:1], 1)
            _HONOURED[network] = presence.honoured(ids, mask, special.bool())
        if _HONOURED[network]:
            return presence
        LOGGER.warning("%s ignores presence weights in its attention mask: Integrated Gradients uses the [PAD] "
                       "baseline instead", type(network.config).__name__.replace("Config", ""))
        baseline = "pad"
    token_id = tokenizer.pad_token_id if baseline == "pad" else tokenizer.mask_token_id
    return _LayerScore(network, embedding_layer(network, layer), multi_label, token_id)


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


class _Score:
    """The explained score: centred logits (a multi-label model's own logits)."""

    def __init__(self, network: Any, multi_label: bool) -> None:
        self.network, self.multi_label = network, multi_label

    def _scores(self, logits: Any) -> Any:
        return logits if self.multi_label else logits - logits.mean(dim=1, keepdim=True)

    @staticmethod
    def _gap(scores: Any, target: Sequence[int]) -> Any:
        """``f(text) - f(baseline)`` per row, from the scores of texts and baselines stacked."""
        import torch

        n = len(target)
        rows, target_t = torch.arange(n), torch.as_tensor(target)
        return scores[rows, target_t] - scores[rows + n, target_t]


class _PresenceScore(_Score):
    """``f(presence, ids, mask)``: the explained scores with token ``j`` present to the degree ``presence[:, j]``."""

    def __call__(self, presence: Any, input_ids: Any, attention_mask: Any) -> Any:
        return self._scores(self.network.weighted(input_ids, presence ** PRESENCE_POWER))

    def ends(self, ids: Any, mask: Any, special: Any, target: Sequence[int]) -> tuple[Any, Any, Any]:
        """Presence of the text (every token) and of the baseline ([CLS]/[SEP] only), and the score gap."""
        import torch

        text = mask.to(torch.float32)
        base = text * special.to(torch.float32)
        with torch.no_grad():
            scores = self._scores(self.network.weighted(torch.cat([ids, ids]), torch.cat([text, base])))
        return text, base, self._gap(scores, target)

    def honoured(self, ids: Any, mask: Any, special: Any) -> bool:
        """Whether presence 0 scores as a zero in the attention mask (the model reads the weights)."""
        import torch

        kept = mask * special.to(mask.dtype)
        with torch.no_grad():
            weighted = self.network.weighted(ids, kept.to(torch.float32))
            masked = self.network(ids, kept)
        return bool(torch.allclose(weighted, masked, atol=1e-4, rtol=1e-3))


class _LayerScore(_Score):
    """``f(values, ids, mask)``: the explained scores with ``layer``'s output set to ``values``."""

    def __init__(self, network: Any, layer: Any, multi_label: bool, token_id: int) -> None:
        super().__init__(network, multi_label)
        self.layer, self.token_id = layer, token_id

    def __call__(self, values: Any, input_ids: Any, attention_mask: Any) -> Any:
        handle = self.layer.register_forward_hook(lambda module, args, output: values)
        try:
            return self._scores(self.network(input_ids, attention_mask))
        finally:
            handle.remove()

    def ends(self, ids: Any, mask: Any, special: Any, target: Sequence[int]) -> tuple[Any, Any, Any]:
        """The layer's output for the texts and their baselines, and ``f(text) - f(baseline)`` per row."""
        import torch

        seen: list[Any] = []
        base_ids = _baseline_ids(ids, mask, special, self.token_id)
        handle = self.layer.register_forward_hook(lambda module, args, output: seen.append(output))
        try:
            with torch.no_grad():
                scores = self._scores(self.network(torch.cat([ids, base_ids]), torch.cat([mask, mask])))
        finally:
            handle.remove()
        n = len(ids)
        return seen[0][:n], seen[0][n:], self._gap(scores, target)


def _to_words(words: Words, offsets: Sequence[tuple[int, int]], special: Sequence[int], token_scores: np.ndarray,
              delta: float) -> Attribution:
    spans = [(int(s), int(e)) for (s, e), sp in zip(offsets, special) if not sp]
    values = [float(v) for v, sp in zip(token_scores, special) if not sp]
    end = max((e for _, e in spans), default=0)
    return Attribution(words.spread(spans, values), delta, int(np.sum(words.starts < end)))
