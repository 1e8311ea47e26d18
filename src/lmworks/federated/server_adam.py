"""FedAdam (Reddi et al., "Adaptive Federated Optimization", ICLR 2021) on the training core's AdamW.

FedAvg's server replaces the global weights by the clients' average; FedOpt treats
``global - average`` as a gradient and hands it to an optimiser. Here that optimiser is
the one ``lmworks train`` uses: AdamW over the same parameter groups (the new head at
``head_lr_multiplier`` times the encoder's rate, no weight decay on biases and
LayerNorm), with linear warm-up and decay over the rounds.

Why it matters for label-skewed clients: with one or two local SGD steps per round the
averaged update is an unbiased estimate of the centralised gradient (FedAvg weights by
examples), so the server then runs what centralised fine-tuning runs, AdamW on a
larger batch, and the clients' drift has no room to build up. Plain SGD would need
hundreds of rounds to get as far; Adam's per-weight scaling is what fine-tuning
transformers relies on, and here it acts on the federation's gradient, not on one
skewed client's (which is why clients themselves keep SGD).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..training.config import TrainConfig
from .model import FederatedModel


class ServerAdam:
    """Steps ``model``'s exchanged weights with AdamW, one step per round.

    ``lr`` is the peak learning rate of the encoder (the head gets ``lr`` times
    ``lmworks train``'s default head multiplier); the schedule warms up over the first
    6 % of ``rounds`` and decays linearly to 0 at the last round.

    ``global - average`` is divided by the clients' ``local_lr``: after one local SGD step
    it is then exactly the example-weighted mean gradient, in the units centralised
    training clips (to ``max_grad_norm``) and in which Adam's epsilon was chosen.
    """

    def __init__(self, model: FederatedModel, *, lr: float, rounds: int, local_lr: float = 1.0,
                 max_grad_norm: float = 0.0) -> None:
        from ..training.optim import make_optimizer, make_scheduler

        defaults = TrainConfig()
        config = model.config.replace(optimizer="adamw", lr=lr, head_lr_multiplier=defaults.head_lr_multiplier,
                                      weight_decay=defaults.weight_decay, layer_lr_decay=1.0)
        self.model = model
        self.params = model.parameters
        self.local_lr = local_lr
        self.max_grad_norm = max_grad_norm
        self.optimizer = make_optimizer(model.backend.network, config)
        self.scheduler = make_scheduler(self.optimizer, warmup_ratio=defaults.warmup_ratio, total_steps=rounds)

    def step(self, current: Sequence[np.ndarray], averaged: Sequence[np.ndarray]) -> list[np.ndarray]:
        """New global weights from the current ones and the clients' example-weighted average."""
        import torch

        self.model.set_arrays(current)
        for param, now, avg in zip(self.params, current, averaged):
            delta = np.asarray(now, dtype=np.float32) - np.asarray(avg, dtype=np.float32)
            param.grad = torch.from_numpy(delta / np.float32(self.local_lr))
        if self.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return self.model.get_arrays()
