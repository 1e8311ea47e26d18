"""What the engine trains: the one extension point of :class:`~lmworks.training.engine.Trainer`.

The engine owns everything every run needs (optimiser and schedule, clipping,
gradient accumulation, evaluation and keep-best, checkpoints, Ctrl-C, logging,
several processes). An :class:`Objective` owns what is particular to a task: how an
epoch is cut into batches of example indices, and how a batch becomes a loss.
Classification fine-tuning (:class:`ClassificationObjective`), masked-LM pretraining
(:mod:`lmworks.pretrain`) and the assistant's contrastive tuning are objectives; a new
loss (distillation) or a new kind of input (image features beside the text) is a new
objective, not a new loop.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ..tokens import pad_batch
from .batching import length_grouped_batches
from .losses import Loss


class Objective(abc.ABC):
    """How batches are made and what a batch's loss is.

    Batches are lists of example indices. ``batches(epoch)`` must be a pure function of
    the epoch (and whatever seed the objective was built with): a resumed run rebuilds
    the epoch it stopped in and continues from the same batch. Under several processes
    the engine gives each rank ``batch[rank::world]``.
    """

    @abc.abstractmethod
    def batches(self, epoch: int) -> list[list[int]]:
        """The batches of ``epoch`` (0-based), in training order."""

    @abc.abstractmethod
    def loss(self, model: nn.Module, batch: list[int]) -> torch.Tensor:
        """Forward ``batch`` through ``model`` (DDP-wrapped under torchrun) and return its mean loss."""

    def backward(self, model: nn.Module, batch: list[int], accumulation: int) -> float:
        """Back-propagate ``loss / accumulation``; return the loss. Override to add gradient terms."""
        loss = self.loss(model, batch)
        (loss / accumulation).backward()
        return float(loss.detach())

    def before_step(self, network: nn.Module, step: int, total_steps: int) -> None:  # noqa: B027
        """Called before the first batch of each optimiser step (e.g. to freeze a part for a while)."""

    def close(self) -> None:  # noqa: B027
        """Release what the objective holds on the network (hooks) once training ends."""


class ClassificationObjective(Objective):
    """Token ids and targets (class ids, or a multi-hot matrix) through ``loss_fn``.

    Batches are length-grouped (:func:`~lmworks.training.batching.length_grouped_batches`,
    seeded with ``seed + epoch``) and padded to their longest text. With an
    ``adversary`` (:class:`~lmworks.training.adversarial.EmbeddingAdversary`) each batch
    also back-propagates ``adversarial_loss(perturbed_logits, clean_logits, targets)``
    at the perturbed embeddings.
    """

    def __init__(
        self,
        input_ids: Sequence[Sequence[int]],
        targets: torch.Tensor,
        *,
        pad_id: int,
        loss_fn: Loss,
        batch_size: int,
        seed: int,
        adversary: Any = None,
        adversarial_loss: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.input_ids = input_ids
        self.lengths = [len(x) for x in input_ids]
        self.targets = targets
        self.pad_id = pad_id
        self.loss_fn = loss_fn
        self.batch_size = batch_size
        self.seed = seed
        self.adversary = adversary
        self.adversarial_loss = adversarial_loss

    def batches(self, epoch: int) -> list[list[int]]:  # noqa: D102
        return length_grouped_batches(self.lengths, self.batch_size, seed=self.seed + epoch)

    def inputs(self, batch: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(input_ids, attention_mask)`` of a batch, padded to its longest text."""
        return pad_batch([self.input_ids[i] for i in batch], self.pad_id)

    def loss(self, model: nn.Module, batch: list[int]) -> torch.Tensor:  # noqa: D102
        return self.loss_fn(model(*self.inputs(batch)), self.targets[batch])

    def backward(self, model: nn.Module, batch: list[int], accumulation: int) -> float:
        """The task loss's gradient, plus the adversarial loss's when training adversarially."""
        ids, mask = self.inputs(batch)
        targets = self.targets[batch]
        logits = model(ids, mask)
        loss = self.loss_fn(logits, targets)
        (loss / accumulation).backward()
        if self.adversary is not None and self.adversarial_loss is not None:
            adversarial_loss = self.adversarial_loss
            self.adversary.attack(lambda: adversarial_loss(model(ids, mask), logits, targets) / accumulation)
        return float(loss.detach())

    def close(self) -> None:  # noqa: D102
        if self.adversary is not None:
            self.adversary.close()
