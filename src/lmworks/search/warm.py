"""The warm start of a search: each model's ``train`` defaults, as points inside the search space.

A search that begins where ``lmworks train`` would end is never worse than the defaults once
they have run, and its sampler and pruner start from good points instead of random ones.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ..errors import ConfigError
from ..training.config import TrainConfig
from .space import Param


def warm_start_values(space: dict[str, Param], fixed: dict[str, Any]) -> list[dict[str, Any]]:
    """Each model's ``train`` defaults, put inside the space, cheapest model first (int8 too, if searched).

    An encoder larger than the default one gets the default's *training time* rather than its
    epochs (epochs scaled by :func:`encoder_cost`, to the quarter epoch): the warm start is a
    short, affordable first look at an expensive model (multi-fidelity), and its pruner
    reference. The training guide's recipe for mpnet, ``--epochs 0.25``, is this rule.
    """
    default = TrainConfig()
    order = {"tfidf": 0, "minilm": 1}
    models = space["model"].choices if "model" in space and "model" not in fixed else (fixed.get("model"),)
    out = []
    for model in sorted(models, key=lambda m: order.get(str(m), 2)):
        values: dict[str, Any] = {"model": model} if "model" not in fixed else {}
        for name, param in space.items():
            if name == "model" or name in fixed or (param.encoder_only and model == "tfidf"):
                continue
            value = _default_value(name, default)
            if name == "epochs" and model not in ("tfidf", None):
                share = encoder_cost(default.model) / encoder_cost(str(model))
                value = max(0.25, round(value * min(1.0, share) * 4) / 4)
            values[name] = _inside(param, value)
        out.append(values)
        if model == default.model and "runtime" not in fixed and "int8" in getattr(space.get("runtime"), "choices", ()):
            out.append({**values, "runtime": "int8"})  # latency objective: the fast end of the front
    return out


def encoder_cost(model: str) -> float:
    """Relative training cost per token of an encoder: layers x hidden size squared, from its ``config.json``.

    The dense layers dominate a BERT-family encoder's work at the lengths classification uses,
    and they scale with ``num_hidden_layers * hidden_size**2`` (MiniLM-L6: 6 x 384^2; mpnet:
    12 x 768^2, eight times as much). An encoder whose config cannot be read
    counts as the default one.
    """
    from ..models import resolve_encoder

    try:
        config = json.loads((resolve_encoder(model) / "config.json").read_text(encoding="utf-8"))
        return float(config["num_hidden_layers"]) * float(config["hidden_size"]) ** 2
    except (ConfigError, OSError, KeyError, TypeError, ValueError):
        return 6 * 384.0**2


def _default_value(name: str, default: TrainConfig) -> Any:
    if name == "runtime":
        return "torch"
    if name == "blend":
        return "tfidf" if default.blend_with_tfidf() else "none"
    value = getattr(default, name)
    return getattr(value, "value", value)


def _inside(param: Param, value: Any) -> Any:
    """``value`` if the parameter can take it, else the nearest value it can."""
    if param.choices:
        if value in param.choices:
            return value
        numbers = [c for c in param.choices if isinstance(c, (int, float))]
        if numbers and isinstance(value, (int, float)):
            return min(numbers, key=lambda c: abs(math.log(c / value)) if c > 0 and value > 0 else abs(c - value))
        return param.choices[0]
    assert param.low is not None and param.high is not None
    clipped = min(max(value, param.low), param.high)
    return int(round(clipped)) if param.step else clipped
