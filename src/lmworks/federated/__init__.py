"""Federated fine-tuning on Flower: the data stays with its owners, only weights travel.

Built on Flower's deployment runtime: the server starts a SuperLink and submits the
lmworks Flower app (:mod:`.app`: a ServerApp and a ClientApp); each client starts a
SuperNode, which runs the ClientApp on its owner's rows.

A server (:func:`run_server`) holds the global model and a Flower strategy (FedAvg
weighted by examples, FedProx when ``proximal_mu > 0``, optionally with Flower's
server-side differential privacy). Each client (:func:`run_client`) holds one
owner's data file, trains the global weights on it for a fraction of an epoch with
the same training core as ``lmworks train``, and sends back only the updated
weights, its example count and its training loss. :func:`simulate` splits one file
non-IID over N clients (Dirichlet over labels) and runs the server and the clients
as real processes talking over 127.0.0.1.

Flower is an optional dependency: ``pip install 'lmworks[federated]'``.
"""

from .config import FederatedConfig
from .split import dirichlet_split

__all__ = ["FederatedConfig", "dirichlet_split", "run_client", "run_server", "simulate"]


def __getattr__(name: str):
    # The Flower-backed entry points import flwr (and torch) only when used.
    if name == "run_server":
        from .server import run_server

        return run_server
    if name == "run_client":
        from .client import run_client

        return run_client
    if name == "simulate":
        from .simulate import simulate

        return simulate
    raise AttributeError(name)
