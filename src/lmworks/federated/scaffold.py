"""SCAFFOLD (Karimireddy et al., ICML 2020): control variates against client drift.

With label-skewed clients, plain FedAvg drifts: each client's local steps follow its
own gradient, and a client holding nearly one class pulls the model towards that class
between averages. SCAFFOLD keeps two estimates of the gradient: the server's ``c`` (of
the whole federation's objective) and each client's own ``c_i``. Local steps follow
``g_i(y) - c_i + c``, the local gradient corrected towards the global one, so the
local steps approximate centralised steps however skewed the client.

Here the correction is a linear term added to the local loss: the gradient of
``<y, c - c_i>`` is ``c - c_i``, so the training core needs nothing beyond its loss
regulariser hook. After training, the client re-estimates its gradient from how far it
moved ("option II" of the paper), ``c_i+ = c_i - c + (x - y) / coefficient``, where
``coefficient`` is how far a constant unit gradient would have moved each weight under
the round's optimiser (learning rate per group, schedule and momentum), and sends back
its weights ``y`` and ``c_i+ - c_i``. The server averages both (weighted by examples,
matching FedAvg's objective) and adds the second to ``c``. Traffic doubles.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..training.config import TrainConfig
from .protocol import FederationError


def split(arrays: Sequence[np.ndarray], n_weights: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``[weights..., control...]`` as exchanged under SCAFFOLD, into its two halves."""
    if len(arrays) != 2 * n_weights:
        raise FederationError(f"SCAFFOLD expects {2 * n_weights} arrays (weights and control variates), got "
                              f"{len(arrays)}: server and client disagree on --scaffold")
    return list(arrays[:n_weights]), list(arrays[n_weights:])


def unit_step_distance(lrs: Sequence[float], momentum: float) -> float:
    """How far SGD with ``momentum`` moves a weight whose gradient is 1 at every step.

    PyTorch's SGD keeps ``buf_k = momentum * buf_(k-1) + g`` and steps ``lr_k * buf_k``,
    so the answer is ``sum_k lr_k * (1 - momentum^(k+1)) / (1 - momentum)``.
    """
    if momentum == 0:
        return float(sum(lrs))
    return float(sum(lr * (1 - momentum ** (k + 1)) / (1 - momentum) for k, lr in enumerate(lrs)))


def step_coefficients(network, config: TrainConfig, steps: int) -> dict[str, float]:
    """Per parameter name: :func:`unit_step_distance` under ``config``'s optimiser and schedule.

    The learning rates and momentum are read from the optimiser the training core builds
    (``make_optimizer``), so they cannot drift apart from what the client really ran.
    """
    from ..training.optim import make_optimizer
    from ..training.schedule import linear_warmup_decay

    if config.optimizer != "sgd":
        from ..errors import ConfigError

        raise ConfigError("SCAFFOLD needs local SGD (--optimizer sgd): its control variates are gradients, "
                          "which Adam's per-weight scaling does not preserve")
    warmup = int(config.warmup_ratio * steps)
    factors = [linear_warmup_decay(s, warmup_steps=warmup, total_steps=steps) for s in range(steps)]
    by_param = {}
    for group in make_optimizer(network, config).param_groups:
        distance = unit_step_distance([group["lr"] * f for f in factors], group["momentum"])
        for p in group["params"]:
            by_param[id(p)] = distance
    return {name: by_param[id(p)] for name, p in network.named_parameters() if id(p) in by_param}


def updated_control(x: Sequence[np.ndarray], y: Sequence[np.ndarray], c: Sequence[np.ndarray],
                    c_i: Sequence[np.ndarray], coefficients: Sequence[float]) -> list[np.ndarray]:
    """Option II: ``c_i+ = c_i - c + (x - y) / coefficient`` (a weight that cannot move keeps ``c_i``)."""
    out = []
    for xa, ya, ca, cia, coef in zip(x, y, c, c_i, coefficients):
        if coef > 0:
            out.append((cia - ca + (xa - ya) / coef).astype(np.float32))
        else:
            out.append(np.asarray(cia, dtype=np.float32))
    return out
