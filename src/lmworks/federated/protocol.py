"""What server and clients must agree on, and how the Flower app hands an error back.

The protocol version, the error for a party that does not agree, and the error file that
the Flower app writes for the lmworks process that started it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from ..atomic import atomic_file
from ..errors import LmworksError

#: Bumped whenever what a round exchanges changes; part of every model fingerprint.
PROTOCOL = 1


class FederationError(LmworksError):
    """A federated party received something it must refuse (wrong model, labels, arrays)."""


#: Written by the Flower app when it stops on an lmworks error; the wrapper process raises it.
ERROR_FILE = "error.txt"


@contextlib.contextmanager
def reported(job_dir: Path) -> Iterator[None]:
    """Write an lmworks error's class and one-line message where the wrapper process looks, then re-raise it."""
    try:
        yield
    except LmworksError as err:
        with atomic_file(job_dir / ERROR_FILE) as fh:
            fh.write(f"{type(err).__name__}\t{err}")
        raise


def reported_error(job_dir: Path) -> LmworksError | None:
    """The error :func:`reported` wrote in ``job_dir``, as its own class where it is a known one; else None."""
    from ..errors import DataError

    path = job_dir / ERROR_FILE
    if not path.exists():
        return None
    kind, _, message = path.read_text(encoding="utf-8").partition("\t")
    return {"FederationError": FederationError, "DataError": DataError}.get(kind, LmworksError)(message)
