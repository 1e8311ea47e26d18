"""Fine-tuned transformer encoder with a classification head."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..heads import activate, forward_logits
from ..models import resolve_encoder
from ..modes import Adversarial, ClassWeighting, Pooling
from ..runtime import quiet_transformers, seed_everything, torch_threads
from ..tokens import load_tokenizer, tokenize, tokenize_counted
from ..training.config import TrainConfig
from ..training.losses import Loss
from ..training.objectives import ClassificationObjective
from .base import FitRun, SoftTargets, TokenLimitedBackend

LOGGER = logging.getLogger("lmworks")


class TransformerBackend(TokenLimitedBackend):
    """A pretrained encoder (BERT family) fine-tuned end to end.

    Parameters
    ----------
    model:
        Encoder name (see ``lmworks models``) or checkpoint directory.
    """

    name = "transformer"

    def __init__(self, model: str = "minilm") -> None:
        self.model = model
        self.network: Any = None
        self.tokenizer: Any = None
        self.max_length = 128
        self.multi_label = False
        self.pooling = Pooling.MEAN
        self.num_threads: int | None = None
        self.encoder_path: str | None = None

    def fit(self, texts: Sequence[str], targets: np.ndarray, run: FitRun) -> dict[str, Any]:
        """Fine-tune the encoder; the best dev checkpoint is kept (see :class:`Trainer`)."""
        self.prepare(run.labels, run.config)
        return self.train_network(texts, targets, run)

    def prepare(self, labels: list[str], config: TrainConfig) -> None:
        """Load the tokenizer and the encoder with a fresh head for ``labels`` (seeded)."""
        from transformers import AutoTokenizer

        from ..heads import build_network

        encoder_dir = resolve_encoder(self.model)
        self.encoder_path = str(encoder_dir)
        self.max_length = config.max_length
        self.multi_label = config.multi_label
        self.pooling = Pooling.parse(config.head)
        self.num_threads = config.num_threads
        with torch_threads(config.num_threads), quiet_transformers():
            self.tokenizer = AutoTokenizer.from_pretrained(encoder_dir, local_files_only=True)
            seed_everything(config.seed)  # the new head's initialisation depends on it
            self.network = build_network(
                encoder_dir, labels, pooling=self.pooling, multi_label=config.multi_label, dropout=config.dropout,
            )

    def train_network(self, texts: Sequence[str], targets: np.ndarray, run: FitRun, *,
                      regulariser: Callable[[], Any] | None = None) -> dict[str, Any]:
        """Train the prepared network further (federated rounds call this once per round).

        ``regulariser()``, when given, is added to every batch's loss (FedProx's proximal term).
        """
        from ..training.engine import Trainer

        if self.network is None:
            raise RuntimeError("call prepare() before train_network()")
        config, score_fn = run.config, run.score_fn
        objective = self.objective(texts, targets, config, regulariser=regulariser, soft_targets=run.soft_targets)
        eval_fn = None
        if run.eval_texts and score_fn is not None:
            eval_ids = tokenize(self.tokenizer, run.eval_texts, config.max_length, what="eval texts")
            eval_fn = lambda net: score_fn(self._proba(eval_ids))  # noqa: E731
        trainer = Trainer(self.network, config, objective, eval_fn=eval_fn, checkpoint_dir=run.checkpoint_dir,
                          progress=run.progress, monitor=run.monitor)
        with torch_threads(config.num_threads):
            return trainer.train(resume=run.resume).info()

    def objective(self, texts: Sequence[str], targets: np.ndarray, config: TrainConfig, *,
                  regulariser: Callable[[], Any] | None = None,
                  soft_targets: SoftTargets | None = None) -> ClassificationObjective:
        """The classification objective of ``config``: loss, class weights, logit adjustment, adversary.

        With ``soft_targets`` the loss is knowledge distillation: the true labels' loss
        (where a row has one; target ``-1`` where not) mixed with matching the teacher.
        """
        import torch

        from ..training.adversarial import EmbeddingAdversary, perturbed_loss
        from ..training.losses import distillation_loss, logit_adjusted, make_loss, pack_targets

        n_labels = int(self.network.config.num_labels)
        labelled = targets[targets >= 0] if soft_targets is not None else targets
        loss_fn: Loss = make_loss(
            labelled, n_labels, multi_label=config.multi_label,
            balanced=config.class_weights is ClassWeighting.BALANCED, label_smoothing=config.label_smoothing,
        )
        if config.logit_adjustment:
            loss_fn = logit_adjusted(loss_fn, labelled, n_labels)
        packed = None
        if soft_targets is not None:
            loss_fn = distillation_loss(loss_fn, alpha=soft_targets.alpha, temperature=soft_targets.temperature)
            packed = pack_targets(targets, soft_targets.proba)
        if regulariser is not None:
            inner = loss_fn
            loss_fn = lambda logits, y: inner(logits, y) + regulariser()  # noqa: E731
        adversary = None
        if config.adversarial is not Adversarial.NONE:
            adversary = EmbeddingAdversary(self.network, self.network.input_embeddings(), method=config.adversarial,
                                           epsilon=config.adv_epsilon, steps=config.adv_steps, norm=config.adv_norm)
        dtype = torch.float32 if config.multi_label else torch.long
        return ClassificationObjective(
            tokenize(self.tokenizer, texts, config.max_length, what="training texts"),
            packed if packed is not None else torch.as_tensor(targets, dtype=dtype),
            pad_id=self.tokenizer.pad_token_id, loss_fn=loss_fn,
            batch_size=config.batch_size, seed=config.seed, adversary=adversary,
            adversarial_loss=perturbed_loss(config.adv_loss, loss_fn, multi_label=config.multi_label),
        )

    def _proba(self, input_ids: list[list[int]]) -> np.ndarray:
        logits = forward_logits(self.network, input_ids, self.tokenizer.pad_token_id)
        return activate(logits, multi_label=self.multi_label)

    def predict_proba_counted(self, texts: Sequence[str]) -> tuple[np.ndarray, int]:
        """Class probabilities, computed in length-sorted batches, and the count of truncated texts."""
        if self.network is None:
            raise RuntimeError("backend is not fitted")
        ids, truncated = tokenize_counted(self.tokenizer, texts, self.max_length)
        with torch_threads(self.num_threads):
            return self._proba(ids), truncated

    def save(self, directory: Path) -> None:
        """Write transformers-layout files: config.json, model.safetensors, tokenizer."""
        from ..heads import save_network

        with quiet_transformers():  # no "Writing model shards" bar for one small file
            save_network(self.network, directory)
            self.tokenizer.save_pretrained(directory)

    def describe(self) -> dict[str, Any]:
        """The head (and how to run it with plain transformers), max length and base encoder."""
        head: dict[str, Any] = {"pooling": self.pooling.value}
        if self.pooling is Pooling.MEAN:
            head.update(
                {
                    "weights": "head.weight and head.bias in model.safetensors",
                    "formula": "logits = head.weight @ mean(last_hidden_state over attention_mask) + head.bias",
                    "how_to_run_outside_lmworks": (
                        "enc = AutoModel.from_pretrained(d); sd = safetensors.torch.load_file(d + "
                        "'/model.safetensors'); h = enc(**tok(texts, padding=True, return_tensors='pt'))"
                        ".last_hidden_state; m = mask.unsqueeze(-1); pooled = (h*m).sum(1)/m.sum(1); "
                        "logits = pooled @ sd['head.weight'].T + sd['head.bias']"
                    ),
                }
            )
        else:
            head["how_to_run_outside_lmworks"] = "AutoModelForSequenceClassification.from_pretrained(d)"
        return {"head": head, "max_length": self.max_length, "base_model": self.model,
                "base_model_path": self.encoder_path}

    @classmethod
    def load(cls, directory: Path, meta: dict[str, Any]) -> TransformerBackend:
        """Rebuild the network and tokenizer from a model directory."""
        from ..heads import load_network

        backend = cls(meta.get("base_model", "minilm"))
        backend.pooling = Pooling.parse(meta.get("head", {}).get("pooling", "mean"))
        backend.max_length = int(meta.get("max_length", 128))
        backend.multi_label = meta.get("task") == "multi_label"
        backend.encoder_path = meta.get("base_model_path")
        backend.num_threads = meta.get("num_threads")
        with quiet_transformers():
            backend.tokenizer = load_tokenizer(directory)
            backend.network = load_network(directory, pooling=backend.pooling)
        return backend
