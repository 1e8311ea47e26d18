"""Adversarial training on the embedding layer: FGM and PGD.

Text is discrete, so the perturbation goes where the model is continuous: the word
embedding matrix. After the clean backward pass, the rows used by the batch are
pushed along their loss gradient (FGM: one step of size ``epsilon``, Miyato et al.
2017; PGD: ``steps`` smaller steps projected back into the ``epsilon`` ball, Madry
et al. 2018), the loss at the perturbed point is back-propagated on top of the clean
gradient, and the embeddings are restored before the optimiser step. The model thus
learns to keep its answer in a neighbourhood of every training input, which is what
makes it steadier under typos and paraphrase-like noise (``lmworks robustness``).

Cost: one extra forward/backward per step for FGM, ``steps`` for PGD.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..errors import ConfigError

METHODS = ("none", "fgm", "pgd")


class EmbeddingAdversary:
    """Perturb an embedding matrix along its gradient and back-propagate the adversarial loss.

    Parameters
    ----------
    network:
        The model being trained (its gradients are managed for PGD).
    embedding:
        The word embedding module (``network.input_embeddings()``).
    method:
        ``"fgm"`` or ``"pgd"``.
    epsilon:
        Radius of the perturbation (L2 norm over the whole matrix's gradient direction).
    steps, alpha:
        PGD's number of steps and step size (default ``epsilon / steps * 1.5``, so the
        ball's edge is reachable).
    """

    def __init__(self, network: nn.Module, embedding: nn.Module, *, method: str = "fgm", epsilon: float = 0.3,
                 steps: int = 3, alpha: float | None = None) -> None:
        if method not in ("fgm", "pgd"):
            raise ConfigError(f"adversarial method must be fgm or pgd, got {method!r}")
        if epsilon <= 0:
            raise ConfigError(f"--adv-epsilon must be positive, got {epsilon}")
        if steps < 1:
            raise ConfigError(f"--adv-steps must be at least 1, got {steps}")
        self.network = network
        self.weight: torch.Tensor = embedding.weight  # type: ignore[assignment]
        self.method = method
        self.epsilon = epsilon
        self.steps = steps if method == "pgd" else 1
        self.alpha = alpha if alpha is not None else epsilon / self.steps * 1.5

    def _direction(self) -> torch.Tensor | None:
        grad = self.weight.grad
        if grad is None:
            return None
        norm = torch.linalg.vector_norm(grad)
        if not torch.isfinite(norm) or norm == 0:
            return None
        return grad / norm

    def attack(self, adversarial_loss: Callable[[], torch.Tensor]) -> float:
        """Call after the clean ``backward()``; adds the adversarial gradient; returns its loss."""
        direction = self._direction()
        if direction is None:
            return float("nan")
        original = self.weight.data.clone()
        if self.method == "fgm":
            self.weight.data.add_(self.epsilon * direction)
            loss = adversarial_loss()
            loss.backward()
            self.weight.data.copy_(original)
            return float(loss.detach())
        # PGD: intermediate steps only move the perturbation; the clean gradient is kept aside
        # and the last step's adversarial gradient is added to it.
        saved = {p: p.grad.clone() for p in self.network.parameters() if p.grad is not None}
        loss = torch.zeros(())
        for step in range(self.steps):
            self.weight.data.add_(self.alpha * direction)
            delta = self.weight.data - original
            norm = torch.linalg.vector_norm(delta)
            if norm > self.epsilon:
                self.weight.data.copy_(original + delta * (self.epsilon / norm))
            self.network.zero_grad(set_to_none=False)
            loss = adversarial_loss()
            loss.backward()
            if step < self.steps - 1:
                next_direction = self._direction()
                if next_direction is None:
                    break
                direction = next_direction
        for p in self.network.parameters():
            if p in saved:
                p.grad.add_(saved[p])  # type: ignore[union-attr]
        self.weight.data.copy_(original)
        return float(loss.detach())
