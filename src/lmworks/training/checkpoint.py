"""Checkpoints that make Ctrl-C and ``--resume`` exact.

A checkpoint holds the model, the best weights so far, the optimiser and scheduler,
every random generator's state, where the run is (step, epoch, batch within the
epoch) and the settings it ran with. Resuming refuses a checkpoint whose settings or
data differ from the new run's, because continuing with other settings would yield a
model that no single run produces.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..atomic import atomic_file
from ..errors import ConfigError
from ..runtime import deferred_interrupt, distributed
from .config import TrainConfig

STATE_FILE = "trainer_state.pt"
#: Settings a resumed run may change: how long it goes on and how many threads it uses.
RESUMABLE_CHANGES = frozenset({"epochs", "patience", "num_threads"})


@dataclass
class TrainerState:
    """Where a run is; saved with every checkpoint so a run can resume exactly."""

    step: int = 0
    epoch: int = 0
    batches_done_in_epoch: int = 0
    best_score: float = -math.inf
    best_step: int = -1
    evals_since_best: int = 0
    train_seconds: float = 0.0
    samples_seen: int = 0
    loss_sum: float = 0.0  # training loss summed over samples (the run's mean loss = loss_sum / samples_seen)
    history: list[dict[str, Any]] = field(default_factory=list)
    interrupted: bool = False
    stopped_early: bool = False


def save_checkpoint(path: Path, *, config: TrainConfig, state: TrainerState, network: nn.Module,
                    best_state: dict[str, torch.Tensor] | None, optimizer: torch.optim.Optimizer,
                    scheduler: Any) -> None:
    """Write everything a resumed run needs, atomically and without being cut by Ctrl-C."""
    payload = {
        "config": config.to_dict(),
        "trainer_state": asdict(state),
        "model": network.state_dict(),
        "best_model": best_state,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
    }
    with deferred_interrupt(), atomic_file(path, "wb") as fh:
        torch.save(payload, fh)


def load_checkpoint(path: Path | None, *, config: TrainConfig, network: nn.Module,
                    optimizer: torch.optim.Optimizer, scheduler: Any
                    ) -> tuple[TrainerState, dict[str, torch.Tensor] | None]:
    """Restore a run saved by :func:`save_checkpoint`; returns its state and best weights.

    Raises :class:`ConfigError` for a missing or unreadable checkpoint, or one whose
    settings (other than :data:`RESUMABLE_CHANGES`) or data differ from ``config``'s.
    Under ``torchrun`` only rank 0 reads the file (only rank 0 writes it, and on several
    machines the others have no copy) and sends its content to every rank.
    """
    payload = _shared_payload(path)
    _check_same_run(payload["config"], config)
    network.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    torch.set_rng_state(payload["rng"]["torch"])
    np.random.set_state(payload["rng"]["numpy"])
    random.setstate(payload["rng"]["python"])
    state = TrainerState(**payload["trainer_state"])
    state.interrupted = False
    return state, payload["best_model"]


def _check_same_run(saved_config: dict[str, Any], config: TrainConfig) -> None:
    saved = {k: v for k, v in saved_config.items() if k not in RESUMABLE_CHANGES}
    now = {k: v for k, v in config.to_dict().items() if k in saved}
    changed = sorted(k for k in saved if saved[k] != now[k])
    if changed == ["extra"] and saved["extra"].get("data_sha256") != now["extra"].get("data_sha256"):
        raise ConfigError("--resume: the training or eval data differ from the checkpointed run's")
    if changed:
        raise ConfigError(
            f"--resume: settings differ from the checkpointed run ({', '.join(changed)}); "
            "resume with the same settings or start a new run"
        )


def _read_payload(path: Path | None) -> dict[str, Any]:
    if path is None or not path.is_file():
        raise ConfigError(f"--resume: no checkpoint at {path}")
    try:
        return torch.load(path, weights_only=False, map_location="cpu")
    except Exception as err:  # torch raises many types for a truncated file
        raise ConfigError(f"--resume: checkpoint {path} is unreadable ({err})") from err


def _shared_payload(path: Path | None) -> dict[str, Any]:
    """The checkpoint as rank 0 read it, on every rank; rank 0's error, if any, raised on every rank."""
    rank, world = distributed()
    if world == 1:
        return _read_payload(path)
    import torch.distributed as dist

    box: list[Any] = [None]
    if rank == 0:
        try:
            box = [("ok", _read_payload(path))]
        except ConfigError as err:
            box = [("error", str(err))]
    dist.broadcast_object_list(box, src=0)
    kind, value = box[0]
    if kind == "error":
        raise ConfigError(value)
    return value
