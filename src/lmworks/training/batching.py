"""Length-grouped training batches (dynamic padding's other half; see :mod:`lmworks.tokens`).

Grouping texts of similar length into a batch and padding only to the longest one
removes most of the padding a CPU would otherwise compute on, while keeping batches
randomised between epochs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def length_grouped_batches(
    lengths: Sequence[int], batch_size: int, *, seed: int, mega_factor: int = 50
) -> list[list[int]]:
    """Shuffled batches of indices whose members have similar lengths.

    As transformers' ``LengthGroupedSampler``: shuffle, cut into mega-batches of
    ``mega_factor * batch_size``, sort each by length, cut into batches and shuffle
    the batches. The order is a pure function of ``seed``, which makes resuming a
    run mid-epoch exact.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths))
    mega = batch_size * mega_factor
    batches: list[list[int]] = []
    for start in range(0, len(order), mega):
        group = sorted(order[start : start + mega].tolist(), key=lambda i: lengths[i], reverse=True)
        batches.extend(group[i : i + batch_size] for i in range(0, len(group), batch_size))
    perm = rng.permutation(len(batches))
    return [batches[i] for i in perm]
