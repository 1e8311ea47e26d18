"""What server and clients must agree on: the protocol version, and the error for a party that does not."""

from __future__ import annotations

from ..errors import LmworksError

#: Bumped whenever what a round exchanges changes; part of every model fingerprint.
PROTOCOL = 1


class FederationError(LmworksError):
    """A federated party received something it must refuse (wrong model, labels, arrays)."""
