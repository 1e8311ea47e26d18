"""Non-IID partitioning of one labelled dataset over simulated clients."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import ConfigError


def dirichlet_split(labels: Sequence[str], n_clients: int, alpha: float, *, seed: int = 0,
                    min_size: int = 1, max_tries: int = 100) -> list[np.ndarray]:
    """Split row indices over ``n_clients`` with label shares drawn from Dirichlet(``alpha``).

    For each label, its rows are dealt to clients in proportions drawn from a symmetric
    Dirichlet; small ``alpha`` (0.1) gives clients that see mostly one label, large
    ``alpha`` (100) approaches an IID split (Hsu et al. 2019, the usual FL benchmark
    protocol). Draws are repeated until every client has at least ``min_size`` rows.
    Returns one sorted index array per client; together they cover every row once.
    """
    if n_clients < 1:
        raise ConfigError(f"need at least one client, got {n_clients}")
    if not alpha > 0:
        raise ConfigError(f"alpha must be > 0, got {alpha}")
    names = np.asarray([str(y) for y in labels])
    if len(names) < n_clients * min_size:
        raise ConfigError(f"{len(names)} rows cannot give {n_clients} clients {min_size} row(s) each")
    rng = np.random.default_rng(seed)
    for _ in range(max_tries):
        shards: list[list[int]] = [[] for _ in range(n_clients)]
        for label in np.unique(names):
            rows = rng.permutation(np.flatnonzero(names == label))
            shares = rng.dirichlet(np.full(n_clients, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(rows)).astype(int)
            for client, part in enumerate(np.split(rows, cuts)):
                shards[client].extend(part.tolist())
        if min(len(s) for s in shards) >= min_size:
            return [np.sort(np.asarray(s, dtype=int)) for s in shards]
    raise ConfigError(f"no Dirichlet(alpha={alpha}) split gave every one of {n_clients} clients "
                      f"{min_size} row(s) in {max_tries} tries: use fewer clients or a larger alpha")
