"""Classification networks on top of a pretrained encoder, and their on-disk form.

Two heads are offered:

``mean`` (default)
    Masked mean of the last hidden states, dropout, one linear layer. The shipped
    encoders were trained as sentence embedders with mean pooling, so this head
    starts from a representation that already separates meanings; it beats the CLS
    pooler on every dataset we measured (see docs/research-log/benchmarks-history.md).
``cls``
    The stock ``AutoModelForSequenceClassification`` head. Saved with
    ``save_pretrained`` so that plain transformers gives identical predictions.

:func:`forward_logits` runs either over token ids in length-sorted batches, and
:func:`activate` turns logits into probabilities; the PyTorch backend predicts with
them and the ONNX backend, whose graph returns the same logits, shares ``activate``.

On disk both use ``model.safetensors`` + ``config.json`` (with ``id2label``) +
tokenizer files. The ``mean`` head stores the encoder under its usual key names
(``AutoModel.from_pretrained(dir)`` loads it) and the head as ``head.weight`` /
``head.bias``; ``config.json`` names the plain encoder architecture so that loading
it with a sequence-classification class visibly reports a newly initialised head
instead of silently producing different predictions.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from .errors import ModelDirError
from .modes import Pooling
from .tokens import DEFAULT_MAX_TOKENS, padded_batches

WEIGHTS_FILE = "model.safetensors"
HEAD_PREFIX = "head."


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average ``hidden`` (B, T, H) over the positions where ``mask`` (B, T) is 1."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


def presence_bias(presence: torch.Tensor) -> torch.Tensor:
    """The additive attention mask (B, 1, 1, T) under which token ``j`` is present to the degree ``presence[:, j]``.

    Attention to a token is proportional to ``presence * exp(score)``: weight 1 is the token as
    read, 0 is the token deleted (no other token attends to it) and the values between are the
    straight line that Integrated Gradients over word presence integrates along. ``transformers``
    passes an already-built 4-D mask through to the attention unchanged.
    """
    return torch.log(presence.clamp_min(1e-30))[:, None, None, :]


class MeanPoolingClassifier(nn.Module):
    """Encoder -> masked mean pooling -> dropout -> linear."""

    def __init__(self, encoder: Any, num_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder: Any = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, num_labels)

    @property
    def config(self):
        """The encoder's transformers config (carries ``id2label``)."""
        return self.encoder.config

    def forward(self, input_ids: torch.Tensor | None, attention_mask: torch.Tensor,
                inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """Return logits of shape (batch, num_labels); ``inputs_embeds`` replaces the token lookup."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                              inputs_embeds=inputs_embeds).last_hidden_state
        return self.head(self.dropout(mean_pool(hidden, attention_mask)))

    def weighted(self, input_ids: torch.Tensor, presence: torch.Tensor) -> torch.Tensor:
        """Logits with token ``j`` present to the degree ``presence[:, j]`` in attention and in the pooled mean."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=presence_bias(presence)).last_hidden_state
        return self.head(self.dropout(mean_pool(hidden, presence)))

    def input_embeddings(self) -> nn.Module:
        """The token embedding layer (what adversarial training perturbs)."""
        return self.encoder.get_input_embeddings()


class StockClassifier(nn.Module):
    """Thin wrapper so a transformers sequence classifier returns bare logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model: Any = model

    @property
    def config(self):
        """The model's transformers config."""
        return self.model.config

    def forward(self, input_ids: torch.Tensor | None, attention_mask: torch.Tensor,
                inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """Return logits of shape (batch, num_labels); ``inputs_embeds`` replaces the token lookup."""
        return self.model(input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds).logits

    def weighted(self, input_ids: torch.Tensor, presence: torch.Tensor) -> torch.Tensor:
        """Logits with token ``j`` present to the degree ``presence[:, j]`` in attention (the pooler reads [CLS])."""
        return self.model(input_ids=input_ids, attention_mask=presence_bias(presence)).logits

    def input_embeddings(self) -> nn.Module:
        """The token embedding layer."""
        return self.model.get_input_embeddings()


def _label_config(labels: list[str], multi_label: bool) -> dict:
    return {
        "id2label": dict(enumerate(labels)),
        "label2id": {name: i for i, name in enumerate(labels)},
        "num_labels": len(labels),
        "problem_type": "multi_label_classification" if multi_label else "single_label_classification",
    }


def build_network(
    encoder_dir: Path, labels: list[str], *, pooling: Pooling, multi_label: bool, dropout: float = 0.1
) -> nn.Module:
    """Load a pretrained encoder from a local directory and put a fresh head on it."""
    from transformers import AutoModel, AutoModelForSequenceClassification

    extra = _label_config(labels, multi_label)
    if pooling is Pooling.CLS:
        model = AutoModelForSequenceClassification.from_pretrained(
            encoder_dir, local_files_only=True, **extra
        )
        return StockClassifier(model)
    encoder = AutoModel.from_pretrained(encoder_dir, local_files_only=True, **extra)
    return MeanPoolingClassifier(encoder, len(labels), dropout)


def save_network(network: nn.Module, directory: Path) -> None:
    """Write ``config.json`` and ``model.safetensors`` for ``network`` into ``directory``."""
    from safetensors.torch import save_file

    if isinstance(network, StockClassifier):
        network.model.save_pretrained(directory, safe_serialization=True)
        return
    assert isinstance(network, MeanPoolingClassifier)
    config = network.encoder.config
    config.architectures = [type(network.encoder).__name__]
    config.save_pretrained(directory)
    state = {k: v.detach().contiguous() for k, v in network.encoder.state_dict().items()}
    state.update({HEAD_PREFIX + k: v.detach().contiguous() for k, v in network.head.state_dict().items()})
    save_file(state, str(directory / WEIGHTS_FILE), metadata={"format": "pt"})


def load_network(directory: Path, *, pooling: Pooling, dropout: float = 0.1) -> nn.Module:
    """Rebuild a saved network exactly; raise :class:`ModelDirError` on any mismatch."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

    try:
        config = AutoConfig.from_pretrained(directory, local_files_only=True)
        state = load_file(str(directory / WEIGHTS_FILE))
    except (OSError, ValueError, SafetensorError) as err:
        raise ModelDirError(f"{directory}: cannot read weights ({str(err).splitlines()[0]})") from err
    network: Any
    if pooling is Pooling.CLS:
        network = StockClassifier(AutoModelForSequenceClassification.from_config(config))
        target: Any = network.model
    else:
        network = MeanPoolingClassifier(AutoModel.from_config(config), config.num_labels, dropout)
        head_state = {k[len(HEAD_PREFIX):]: v for k, v in state.items() if k.startswith(HEAD_PREFIX)}
        state = {k: v for k, v in state.items() if not k.startswith(HEAD_PREFIX)}
        try:
            network.head.load_state_dict(head_state, strict=True)
        except RuntimeError as err:
            raise ModelDirError(f"{directory}: head weights do not match config.json ({_first(err)})") from err
        target = network.encoder
    try:
        missing, unexpected = target.load_state_dict(state, strict=False)
    except RuntimeError as err:
        raise ModelDirError(f"{directory}: weights do not match config.json ({_first(err)})") from err
    # Tied or buffer-only keys (position_ids) may be legitimately absent; real weights may not.
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise ModelDirError(
            f"{directory}: weights do not match config.json "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    network.eval()
    return network


def _first(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[1] if len(lines) > 1 else (lines[0] if lines else type(err).__name__)


def forward_logits(network: nn.Module, input_ids: Sequence[Sequence[int]], pad_id: int, *,
                   max_tokens: int = DEFAULT_MAX_TOKENS) -> np.ndarray:
    """Logits ``(n, n_labels)`` for pre-tokenised inputs, in input order (inference mode)."""
    n_labels = int(cast(Any, network).config.num_labels)
    out = np.zeros((len(input_ids), n_labels), dtype=np.float32)
    if not input_ids:
        return out
    was_training = network.training
    network.eval()
    with torch.inference_mode():
        for batch, ids, mask in padded_batches(input_ids, pad_id, max_tokens):
            out[batch] = network(ids, mask).float().numpy()
    network.train(was_training)
    return out


def activate(logits: np.ndarray, *, multi_label: bool) -> np.ndarray:
    """Softmax rows (single-label) or element-wise sigmoid (multi-label)."""
    logits = np.asarray(logits, dtype=np.float64)
    if multi_label:
        return 1.0 / (1.0 + np.exp(-logits))
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)
