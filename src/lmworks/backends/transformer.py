"""Fine-tuned transformer encoder with a classification head."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelDirError
from ..training.config import ClassWeighting, TrainConfig
from .base import Backend, ScoreFn

LOGGER = logging.getLogger("lmworks")


class TransformerBackend(Backend):
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
        self.pooling = "mean"
        self.num_threads: int | None = None
        self.encoder_path: str | None = None

    def fit(
        self,
        texts: Sequence[str],
        targets: np.ndarray,
        *,
        labels: list[str],
        config: TrainConfig,
        eval_texts: Sequence[str] | None,
        score_fn: ScoreFn | None,
        checkpoint_dir: Path | None = None,
        resume: bool = False,
        progress: bool = True,
    ) -> dict[str, Any]:
        """Fine-tune the encoder; the best dev checkpoint is kept (see :class:`Trainer`)."""
        self.prepare(labels, config)
        return self.train_network(
            texts, targets, config=config, eval_texts=eval_texts, score_fn=score_fn,
            checkpoint_dir=checkpoint_dir, resume=resume, progress=progress,
        )

    def prepare(self, labels: list[str], config: TrainConfig) -> None:
        """Load the tokenizer and the encoder with a fresh head for ``labels`` (seeded)."""
        from transformers import AutoTokenizer

        from ..heads import Pooling, build_network
        from ..models import resolve_encoder
        from ..training.trainer import seed_everything, torch_threads

        encoder_dir = resolve_encoder(self.model)
        self.encoder_path = str(encoder_dir)
        self.max_length = config.max_length
        self.multi_label = config.multi_label
        self.pooling = Pooling.parse(config.head).value
        self.num_threads = config.num_threads
        with torch_threads(config.num_threads), _quiet_transformers():
            self.tokenizer = AutoTokenizer.from_pretrained(encoder_dir, local_files_only=True)
            seed_everything(config.seed)  # the new head's initialisation depends on it
            self.network = build_network(
                encoder_dir, labels, pooling=Pooling(self.pooling),
                multi_label=config.multi_label, dropout=config.dropout,
            )

    def train_network(
        self,
        texts: Sequence[str],
        targets: np.ndarray,
        *,
        config: TrainConfig,
        eval_texts: Sequence[str] | None = None,
        score_fn: ScoreFn | None = None,
        checkpoint_dir: Path | None = None,
        resume: bool = False,
        progress: bool = True,
        regulariser: Callable[[], Any] | None = None,
    ) -> dict[str, Any]:
        """Train the prepared network further (federated rounds call this once per round).

        ``regulariser()``, when given, is added to every batch's loss (FedProx's proximal term).
        """
        import torch

        from ..training.batching import tokenize
        from ..training.losses import logit_adjusted, make_loss
        from ..training.trainer import Trainer, torch_threads

        if self.network is None:
            raise RuntimeError("call prepare() before train_network()")
        train_ids = tokenize(self.tokenizer, texts, config.max_length, what="training texts")
        eval_ids = tokenize(self.tokenizer, eval_texts, config.max_length, what="eval texts") if eval_texts else None
        n_labels = int(self.network.config.num_labels)
        base_loss = make_loss(
            targets, n_labels, multi_label=config.multi_label,
            balanced=ClassWeighting(config.class_weights) is ClassWeighting.BALANCED,
            label_smoothing=config.label_smoothing,
        )
        loss_fn: Callable[..., Any] = base_loss
        if config.logit_adjustment:
            loss_fn = logit_adjusted(base_loss, targets, n_labels)
        inner = loss_fn
        if regulariser is not None:
            loss_fn = lambda logits, y: inner(logits, y) + regulariser()  # noqa: E731
        eval_fn = None
        if eval_ids is not None and score_fn is not None:
            eval_fn = lambda net: score_fn(self._proba(eval_ids))  # noqa: E731
        dtype = torch.float32 if config.multi_label else torch.long
        trainer = Trainer(
            self.network, config, loss_fn=loss_fn, eval_fn=eval_fn,
            checkpoint_dir=checkpoint_dir, progress=progress,
        )
        with torch_threads(config.num_threads):
            result = trainer.train(
                train_ids, torch.as_tensor(targets, dtype=dtype),
                pad_id=self.tokenizer.pad_token_id, resume=resume,
            )
        state = result.state
        return {
            "steps": state.step,
            "total_steps": result.total_steps,
            "best_step": state.best_step,
            "samples_per_second": round(result.samples_per_second, 2),
            "train_seconds": round(state.train_seconds, 2),
            "mean_loss": state.loss_sum / max(state.samples_seen, 1),
            "interrupted": state.interrupted,
            "stopped_early": state.stopped_early,
            "history": state.history,
            "dev_metrics": result.best_metrics,
        }

    def _proba(self, input_ids: list[list[int]]) -> np.ndarray:
        from ..inference.runner import activate, forward_logits

        logits = forward_logits(
            self.network, self.tokenizer, [], max_length=self.max_length, input_ids=input_ids
        )
        return activate(logits, multi_label=self.multi_label)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities, computed in length-sorted batches."""
        from ..training.batching import tokenize
        from ..training.trainer import torch_threads

        if self.network is None:
            raise RuntimeError("backend is not fitted")
        with torch_threads(self.num_threads):
            return self._proba(tokenize(self.tokenizer, texts, self.max_length))

    def save(self, directory: Path) -> dict[str, Any]:
        """Write transformers-layout files: config.json, model.safetensors, tokenizer."""
        from ..heads import save_network

        with _quiet_transformers():  # no "Writing model shards" bar for one small file
            save_network(self.network, directory)
            self.tokenizer.save_pretrained(directory)
        head = {"pooling": self.pooling}
        if self.pooling == "mean":
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
        from ..heads import Pooling, load_network

        backend = cls(meta.get("base_model", "minilm"))
        backend.pooling = Pooling.parse(meta.get("head", {}).get("pooling", "mean")).value
        backend.max_length = int(meta.get("max_length", 128))
        backend.multi_label = meta.get("task") == "multi_label"
        backend.encoder_path = meta.get("base_model_path")
        backend.num_threads = meta.get("num_threads")
        with _quiet_transformers():
            backend.tokenizer = load_tokenizer(directory)
            backend.network = load_network(directory, pooling=Pooling(backend.pooling))
        return backend


def load_tokenizer(directory: Path):
    """The tokenizer saved in a model directory, or a one-line :class:`ModelDirError`."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(directory, local_files_only=True)
    except (OSError, ValueError, TypeError) as err:
        raise ModelDirError(f"{directory}: cannot load tokenizer ({str(err).splitlines()[0]})") from None


class _quiet_transformers:
    """Silence transformers' load-time chatter (progress bars, 'newly initialised' notes).

    lmworks reports what matters itself; the notes about a fresh classifier head are
    expected every time a model is fine-tuned and only confuse users.
    """

    def __enter__(self):
        from transformers.utils import logging as hf_logging

        self._level = hf_logging.get_verbosity()
        self._bars = hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        return self

    def __exit__(self, *exc):
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity(self._level)
        if self._bars:
            hf_logging.enable_progress_bar()
        return False
