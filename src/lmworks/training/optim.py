"""The optimiser and schedule every lmworks training run uses.

One place decides how parameters are grouped (a fresh head learns faster than the
pretrained body, lower layers optionally slower, no weight decay on biases and
LayerNorm) and how the learning rate moves (linear warm-up, then linear decay).
The engine, the federated server's FedAdam step and SCAFFOLD's step coefficients all
build their optimiser here, so they cannot drift apart.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn

from ..modes import OptimizerKind
from .config import TrainConfig
from .schedule import linear_warmup_decay

_LAYER_INDEX = re.compile(r"(?:^|\.)(?:layer|layers|h|block|blocks)\.(\d+)\.")


def layer_depth(name: str, n_layers: int) -> int:
    """Depth of a parameter in the encoder stack: 0 embeddings, 1..n layers, n+1 above."""
    match = _LAYER_INDEX.search(name)
    if match:
        return min(int(match.group(1)) + 1, n_layers)
    if "embed" in name:
        return 0
    return n_layers + 1


def layer_lr_scale(depth: int, n_layers: int, decay: float) -> float:
    """Layer-wise learning-rate decay: the top layer gets 1, each layer below ``decay`` times less."""
    return decay ** max(0, n_layers - depth)


def is_head(name: str) -> bool:
    """Whether a parameter belongs to a freshly initialised classification head."""
    return name.startswith("head.") or ".classifier." in f".{name}"


def param_groups(network: nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    """Parameter groups by (head?, decayed?, depth): each with its learning rate and weight decay."""
    n_layers = int(getattr(getattr(network, "config", None), "num_hidden_layers", 0) or 0)
    groups: dict[tuple[bool, bool, int], list[nn.Parameter]] = {}
    for name, param in network.named_parameters():
        if not param.requires_grad:
            continue
        head = is_head(name)
        no_decay = param.ndim < 2 or "LayerNorm" in name or "layer_norm" in name
        depth = n_layers + 1 if head else layer_depth(name, n_layers)
        groups.setdefault((head, no_decay, depth), []).append(param)
    return [
        {
            "params": params,
            "lr": config.lr * (
                config.head_lr_multiplier if head else layer_lr_scale(depth, n_layers, config.layer_lr_decay)
            ),
            "weight_decay": 0.0 if no_decay else config.weight_decay,
        }
        for (head, no_decay, depth), params in sorted(groups.items())
    ]


def make_optimizer(network: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW (default) or SGD with momentum 0.9, over the parameter groups of :func:`param_groups`."""
    groups = param_groups(network, config)
    if config.optimizer is OptimizerKind.SGD:
        return torch.optim.SGD(groups, lr=config.lr, momentum=0.9)
    return torch.optim.AdamW(groups, lr=config.lr)


def make_scheduler(optimizer: torch.optim.Optimizer, *, warmup_ratio: float, total_steps: int
                   ) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup_ratio`` of ``total_steps``, then linear decay to 0."""
    warmup = int(warmup_ratio * total_steps)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: linear_warmup_decay(s, warmup_steps=warmup, total_steps=total_steps))
