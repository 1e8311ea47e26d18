"""Learning-rate schedule as a pure function (tested alone)."""

from __future__ import annotations


def linear_warmup_decay(step: int, *, warmup_steps: int, total_steps: int) -> float:
    """Multiplier of the peak learning rate at optimiser step ``step`` (0-based).

    Rises linearly from 0 to 1 over ``warmup_steps``, then falls linearly to 0 at
    ``total_steps``, as BERT was fine-tuned.
    """
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    remaining = total_steps - step
    return max(0.0, remaining / max(1, total_steps - warmup_steps))
