"""Adversarial training on the embedding layer: FGM and PGD.

Text is discrete, so the perturbation goes where the model is continuous: the word
embeddings. After the clean backward pass they are pushed along their loss gradient
(FGM: one step of size ``epsilon``, Miyato et al. 2017; PGD: ``steps`` smaller steps
projected back into the ``epsilon`` ball, Madry et al. 2018), the loss at the perturbed
point is back-propagated on top of the clean gradient, and the embeddings are restored
before the optimiser step. The model thus learns to keep its answer in a neighbourhood
of every training input, which is what makes it steadier under typos and
paraphrase-like noise (``lmworks robustness``).

Two ways to measure the radius (``norm``):

* ``"example"`` (default): the perturbation is added to each text's sequence of looked-up
  embeddings, scaled per text (Miyato et al.'s formulation, and the one the embedding
  attack of :mod:`lmworks.robustness` uses). Every text gets the same budget.
* ``"batch"``: the perturbation is added to the embedding *matrix*, scaled by the L2 norm
  of the whole matrix's gradient (the widespread FGM recipe of text-classification
  competitions). A batch shares one budget, so texts with steep gradients take most of it,
  and a word that occurs in several texts moves the same way in all of them. On Rotten
  Tomatoes this gained less under text perturbations and spread more over seeds
  (``docs/research-log/benchmarks-history.md``).

What the perturbed input is trained towards (``TrainConfig.adv_loss``):

* ``"label"``: its true label, with the task's own loss (FGM/PGD as published).
* ``"consistency"``: the model's own clean prediction, by KL divergence (the TRADES
  objective of Zhang et al. 2019, with the FGM/PGD direction). It asks the model to be
  *smooth* around each input rather than right at a point the clean loss already
  pushes on, which usually costs less clean accuracy for the same robustness.

Cost: one extra forward/backward per step for FGM, ``steps`` for PGD.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..modes import Adversarial, AdvLoss, AdvNorm
from .losses import Loss


def consistency_loss(perturbed: torch.Tensor, clean: torch.Tensor, *, multi_label: bool) -> torch.Tensor:
    """KL(clean prediction || perturbed prediction), averaged over the batch; ``clean`` is not trained through."""
    clean = clean.detach()
    if multi_label:  # one Bernoulli per label: BCE against the clean probabilities minus their entropy
        target = torch.sigmoid(clean)
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        return (bce(perturbed, target, reduction="none") - bce(clean, target, reduction="none")).sum(-1).mean()
    return torch.nn.functional.kl_div(torch.log_softmax(perturbed, -1), torch.log_softmax(clean, -1),
                                      log_target=True, reduction="batchmean")


def perturbed_loss(kind: AdvLoss | str, task_loss: Loss, *, multi_label: bool
                   ) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """``loss(perturbed_logits, clean_logits, targets)``: the task loss on the labels, or consistency."""
    if AdvLoss.parse(kind) is AdvLoss.CONSISTENCY:
        return lambda perturbed, clean, targets: consistency_loss(perturbed, clean, multi_label=multi_label)
    return lambda perturbed, clean, targets: task_loss(perturbed, targets)


class EmbeddingAdversary:
    """Perturb the word embeddings along their gradient and back-propagate the adversarial loss.

    Parameters
    ----------
    network:
        The model being trained (its gradients are managed for PGD).
    embedding:
        The word embedding module (``network.input_embeddings()``).
    method:
        ``"fgm"`` or ``"pgd"``.
    epsilon:
        Radius of the perturbation (L2; over what, see ``norm``).
    steps, alpha:
        PGD's number of steps and step size (default ``epsilon / steps * 1.5``, so the
        ball's edge is reachable).
    norm:
        ``"batch"`` (the embedding matrix's gradient as a whole) or ``"example"`` (each
        text's embedded sequence on its own); see the module docstring.

    With ``norm="example"`` a forward hook on ``embedding`` keeps the output of the last
    forward pass that tracks gradients; call :meth:`close` when training ends.
    """

    def __init__(self, network: nn.Module, embedding: nn.Module, *, method: str = "fgm", epsilon: float = 0.05,
                 steps: int = 3, alpha: float | None = None, norm: str = "example") -> None:
        if Adversarial.parse(method) is Adversarial.NONE:
            raise ConfigError("adversarial method must be fgm or pgd, got 'none'")
        norm = AdvNorm.parse(norm)
        if epsilon <= 0:
            raise ConfigError(f"--adv-epsilon must be positive, got {epsilon}")
        if steps < 1:
            raise ConfigError(f"--adv-steps must be at least 1, got {steps}")
        self.network = network
        self.weight: torch.Tensor = embedding.weight  # type: ignore[assignment]
        self.method = method
        self.norm = norm
        self.epsilon = epsilon
        self.steps = steps if method == Adversarial.PGD else 1
        self.alpha = alpha if alpha is not None else epsilon / self.steps * 1.5
        self._looked_up: torch.Tensor | None = None  # "example": last embedding output with a gradient
        self._delta: torch.Tensor | None = None  # "example": perturbation added by the hook
        self._hook = embedding.register_forward_hook(self._on_lookup) if norm == "example" else None

    def close(self) -> None:
        """Remove the forward hook (``norm="example"``); the adversary can no longer attack."""
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        self._looked_up = self._delta = None

    def _on_lookup(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor | None:
        perturbed = output if self._delta is None else output + self._delta
        if perturbed.requires_grad:
            perturbed.retain_grad()  # PGD's next step follows the gradient at the perturbed point
            self._looked_up = perturbed
        return None if self._delta is None else perturbed

    def _direction(self) -> torch.Tensor | None:
        """Unit ascent direction from the last backward pass (the looked-up output is used once)."""
        if self.norm == "example":
            looked_up, self._looked_up = self._looked_up, None
            return self._unit(None if looked_up is None else looked_up.grad, True)
        return self._unit(self.weight.grad, False)

    @staticmethod
    def _unit(grad: torch.Tensor | None, per_example: bool) -> torch.Tensor | None:
        if grad is None:
            return None
        if per_example:
            norms = torch.linalg.vector_norm(grad.flatten(1), dim=1)
            if not torch.isfinite(norms).all() or not (norms > 0).any():
                return None
            return grad / norms.clamp_min(1e-12).view(-1, *[1] * (grad.dim() - 1))
        norm = torch.linalg.vector_norm(grad)
        if not torch.isfinite(norm) or norm == 0:
            return None
        return grad / norm

    @staticmethod
    def _project(delta: torch.Tensor, epsilon: float, per_example: bool) -> torch.Tensor:
        if per_example:
            norms = torch.linalg.vector_norm(delta.flatten(1), dim=1).view(-1, *[1] * (delta.dim() - 1))
            return delta * (epsilon / norms.clamp_min(epsilon))
        norm = torch.linalg.vector_norm(delta)
        return delta * (epsilon / norm) if norm > epsilon else delta

    def attack(self, adversarial_loss: Callable[[], torch.Tensor]) -> float:
        """Call after the clean ``backward()``; adds the adversarial gradient; returns its loss."""
        per_example = self.norm == "example"
        direction = self._direction()
        if direction is None:
            return float("nan")
        original = None if per_example else self.weight.data.clone()
        delta = torch.zeros_like(direction)
        saved: dict[torch.Tensor, torch.Tensor] = {}
        if self.steps > 1:
            # PGD: intermediate steps only move the perturbation; the clean gradient is kept
            # aside and the last step's adversarial gradient is added to it.
            saved = {p: p.grad.clone() for p in self.network.parameters() if p.grad is not None}
        loss = torch.zeros(())
        try:
            for step in range(self.steps):
                size = self.epsilon if self.steps == 1 else self.alpha
                delta = self._project(delta + size * direction, self.epsilon, per_example)
                if per_example:
                    self._delta = delta
                else:
                    self.weight.data.copy_(original + delta)  # type: ignore[operator]
                if self.steps > 1:
                    self.network.zero_grad(set_to_none=False)
                loss = adversarial_loss()
                loss.backward()
                if step < self.steps - 1:
                    next_direction = self._direction()
                    if next_direction is None:
                        break
                    direction = next_direction
        finally:
            self._delta = self._looked_up = None
            if original is not None:
                self.weight.data.copy_(original)
        for p, grad in saved.items():
            p.grad.add_(grad)  # type: ignore[union-attr]
        return float(loss.detach())
