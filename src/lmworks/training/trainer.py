"""The one training loop every lmworks classifier uses.

It knows nothing of labels, files or serving: it gets token ids, targets, a loss and
an evaluation callback. What it adds over a hand-written loop is what a user needs
on a CPU: dynamic padding with length-grouped batches, AdamW with warm-up/decay and
clipping, gradient accumulation, early stopping that keeps the best weights,
checkpoints that make Ctrl-C and ``--resume`` safe, and a JSONL metrics log.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._io import atomic_file, deferred_interrupt
from ..errors import ConfigError
from .batching import length_grouped_batches, pad_batch
from .config import TrainConfig
from .schedule import linear_warmup_decay

LOGGER = logging.getLogger("lmworks")
STATE_FILE = "trainer_state.pt"
LOG_FILE = "metrics.jsonl"

#: ``eval_fn(network) -> (score, metrics)``; higher score is better.
EvalFn = Callable[[nn.Module], tuple[float, dict[str, Any]]]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so that two runs with one seed are identical."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def distributed() -> tuple[int, int]:
    """``(rank, world_size)`` of this process; ``(0, 1)`` outside ``torchrun``."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed() -> tuple[int, int]:
    """Join the process group when started by ``torchrun`` (gloo: lmworks trains on the CPU)."""
    import os

    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        import atexit

        dist.init_process_group("gloo")
        atexit.register(dist.destroy_process_group)
    return distributed()


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, which containers and taskset narrow)."""
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[int]:
    """Run a block with ``n`` intra-op threads (default: CPUs this process may use).

    On a 2-core laptop torch's default can oversubscribe when tokenizers or data
    loading run alongside; pinning to the usable CPUs is also what makes timings
    reproducible. The previous setting is restored afterwards.
    """
    if n is None:
        n = usable_cpus()
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        yield n
    finally:
        torch.set_num_threads(previous)


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


@dataclass
class TrainResult:
    """What :meth:`Trainer.train` reports back."""

    state: TrainerState
    best_metrics: dict[str, Any] | None
    total_steps: int

    @property
    def samples_per_second(self) -> float:
        """Training throughput, excluding evaluation and checkpointing time."""
        return self.state.samples_seen / max(self.state.train_seconds, 1e-9)


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


def _param_groups(network: nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    n_layers = int(getattr(getattr(network, "config", None), "num_hidden_layers", 0) or 0)
    groups: dict[tuple[bool, bool, int], list[nn.Parameter]] = {}
    for name, param in network.named_parameters():
        if not param.requires_grad:
            continue
        is_head = name.startswith("head.") or ".classifier." in f".{name}"
        no_decay = param.ndim < 2 or "LayerNorm" in name or "layer_norm" in name
        depth = n_layers + 1 if is_head else layer_depth(name, n_layers)
        groups.setdefault((is_head, no_decay, depth), []).append(param)
    return [
        {
            "params": params,
            "lr": config.lr * (
                config.head_lr_multiplier if is_head else layer_lr_scale(depth, n_layers, config.layer_lr_decay)
            ),
            "weight_decay": 0.0 if no_decay else config.weight_decay,
        }
        for (is_head, no_decay, depth), params in sorted(groups.items())
    ]


def make_optimizer(network: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW (default) or SGD with momentum 0.9, over the parameter groups of :func:`_param_groups`."""
    groups = _param_groups(network, config)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=0.9)
    return torch.optim.AdamW(groups, lr=config.lr)


class Trainer:
    """Fine-tune ``network`` on pre-tokenised inputs.

    Parameters
    ----------
    network:
        Module mapping ``(input_ids, attention_mask)`` to logits.
    config:
        The run's :class:`TrainConfig`.
    loss_fn:
        ``loss_fn(logits, targets) -> scalar``.
    eval_fn:
        Scores the network on held-out data; ``None`` trains for all epochs and
        keeps the last weights.
    checkpoint_dir:
        Where checkpoints and the metrics log go; ``None`` keeps everything in memory.
    progress:
        Show a progress bar with loss and throughput.
    """

    def __init__(
        self,
        network: nn.Module,
        config: TrainConfig,
        *,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        eval_fn: EvalFn | None = None,
        checkpoint_dir: Path | None = None,
        progress: bool = True,
    ) -> None:
        self.network = network
        self.config = config
        self.loss_fn = loss_fn
        self.eval_fn = eval_fn
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.progress = progress
        self.best_state: dict[str, torch.Tensor] | None = None

    # -- logging -------------------------------------------------------------------------
    def _log(self, record: dict[str, Any], state: TrainerState) -> None:
        state.history.append(record)
        if self.checkpoint_dir is not None and distributed()[0] == 0:
            self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
            with open(self.checkpoint_dir / LOG_FILE, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")

    # -- checkpoints ---------------------------------------------------------------------
    def _save_checkpoint(self, state: TrainerState, optimizer, scheduler) -> None:
        if self.checkpoint_dir is None or distributed()[0] != 0:
            return
        payload = {
            "config": self.config.to_dict(),
            "trainer_state": asdict(state),
            "model": self.network.state_dict(),
            "best_model": self.best_state,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": {
                "torch": torch.get_rng_state(),
                "numpy": np.random.get_state(),
                "python": random.getstate(),
            },
        }
        with deferred_interrupt(), atomic_file(self.checkpoint_dir / STATE_FILE, "wb") as fh:
            torch.save(payload, fh)

    def _load_checkpoint(self, optimizer, scheduler) -> TrainerState:
        path = self.checkpoint_dir / STATE_FILE if self.checkpoint_dir else None
        if path is None or not path.is_file():
            raise ConfigError(f"--resume: no checkpoint at {path}")
        try:
            payload = torch.load(path, weights_only=False, map_location="cpu")
        except Exception as err:  # torch raises many types for a truncated file
            raise ConfigError(f"--resume: checkpoint {path} is unreadable ({err})") from None
        saved = {k: v for k, v in payload["config"].items() if k not in {"epochs", "patience", "num_threads"}}
        now = {k: v for k, v in self.config.to_dict().items() if k in saved}
        changed = sorted(k for k in saved if saved[k] != now[k])
        if changed == ["extra"] and saved["extra"].get("data_sha256") != now["extra"].get("data_sha256"):
            raise ConfigError("--resume: the training or eval data differ from the checkpointed run's")
        if changed:
            raise ConfigError(
                f"--resume: settings differ from the checkpointed run ({', '.join(changed)}); "
                "resume with the same settings or start a new run"
            )
        self.network.load_state_dict(payload["model"])
        self.best_state = payload["best_model"]
        optimizer.load_state_dict(payload["optimizer"])
        scheduler.load_state_dict(payload["scheduler"])
        torch.set_rng_state(payload["rng"]["torch"])
        np.random.set_state(payload["rng"]["numpy"])
        random.setstate(payload["rng"]["python"])
        state = TrainerState(**payload["trainer_state"])
        state.interrupted = False
        return state

    # -- main loop -----------------------------------------------------------------------
    def train(
        self,
        input_ids: list[list[int]],
        targets: torch.Tensor,
        *,
        pad_id: int,
        resume: bool = False,
    ) -> TrainResult:
        """Run the loop; on Ctrl-C, checkpoint and return with the best weights so far."""
        cfg = self.config
        net = self.network
        lengths = [len(x) for x in input_ids]
        batches_per_epoch = math.ceil(len(input_ids) / cfg.batch_size)
        steps_per_epoch = math.ceil(batches_per_epoch / cfg.grad_accum_steps)
        total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * steps_per_epoch))
        warmup = int(cfg.warmup_ratio * total_steps)
        if cfg.freeze_embeddings and hasattr(net, "input_embeddings"):
            net.input_embeddings().weight.requires_grad_(False)  # type: ignore[operator]
        optimizer = make_optimizer(net, cfg)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: linear_warmup_decay(s, warmup_steps=warmup, total_steps=total_steps)
        )
        if resume:
            state = self._load_checkpoint(optimizer, scheduler)
            LOGGER.info("resuming at step %d/%d (epoch %d)", state.step, total_steps, state.epoch + 1)
        else:
            seed_everything(cfg.seed)
            state = TrainerState()
            if self.checkpoint_dir is not None and (self.checkpoint_dir / LOG_FILE).exists():
                (self.checkpoint_dir / LOG_FILE).unlink()
        eval_every = cfg.eval_every or steps_per_epoch
        bar = None
        if self.progress and distributed()[0] == 0:
            from tqdm.auto import tqdm

            bar = tqdm(total=total_steps, initial=state.step, unit="step", dynamic_ncols=True, leave=True)
        smoothed: float | None = None
        pending = 0
        in_step = False
        group_rng = torch.get_rng_state()
        group_samples = state.samples_seen
        rank, world = distributed()
        forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = net
        if world > 1:
            if cfg.adversarial != "none" or cfg.grad_accum_steps > 1:
                raise ConfigError("multi-process training does not combine with --adversarial or --grad-accum yet")
            from torch.nn.parallel import DistributedDataParallel

            # Every rank builds the same length-grouped global batches (same seed) and takes its
            # share of each; DDP averages the gradients, so a step sees the whole global batch.
            # The pooler of a mean-pooling encoder gets no gradient: hence find_unused_parameters.
            forward = DistributedDataParallel(net, find_unused_parameters=True)
        adversary = None
        if cfg.adversarial != "none":
            from .adversarial import EmbeddingAdversary

            adversary = EmbeddingAdversary(net, net.input_embeddings(), method=cfg.adversarial,  # type: ignore[operator]
                                           epsilon=cfg.adv_epsilon, steps=cfg.adv_steps, norm=cfg.adv_norm)
        net.train()
        try:
            while state.step < total_steps:
                batches = length_grouped_batches(lengths, cfg.batch_size, seed=cfg.seed + state.epoch)
                if bar is not None:
                    bar.set_description(f"epoch {state.epoch + 1}/{math.ceil(total_steps / steps_per_epoch)}")
                pending = 0
                tick = time.perf_counter()
                for b_index in range(state.batches_done_in_epoch, len(batches)):
                    batch = batches[b_index]
                    if pending == 0:
                        # Snapshot so that an interrupt mid-step resumes with identical dropout.
                        group_rng = torch.get_rng_state()
                        group_samples = state.samples_seen
                        in_step = True
                    if world > 1:
                        batch = batch[rank::world]
                    ids, mask = pad_batch([input_ids[i] for i in batch], pad_id)
                    logits = forward(ids, mask)
                    loss = self.loss_fn(logits, targets[batch])
                    (loss / cfg.grad_accum_steps).backward()
                    if adversary is not None:
                        adversary.attack(
                            lambda ids=ids, mask=mask, batch=batch, logits=logits:  # type: ignore[misc]
                            self._adversarial_loss(net(ids, mask), logits, targets[batch]) / cfg.grad_accum_steps)
                    pending += 1
                    state.samples_seen += len(batch)
                    value = float(loss.detach())
                    state.loss_sum += value * len(batch)
                    smoothed = value if smoothed is None else 0.9 * smoothed + 0.1 * value
                    last_of_epoch = b_index == len(batches) - 1
                    if pending < cfg.grad_accum_steps and not last_of_epoch:
                        continue
                    if cfg.max_grad_norm > 0:
                        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    pending = 0
                    in_step = False
                    state.step += 1
                    state.batches_done_in_epoch = b_index + 1
                    now = time.perf_counter()
                    state.train_seconds += now - tick
                    tick = now
                    rate = state.samples_seen / max(state.train_seconds, 1e-9)
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{smoothed:.4f}", samples_s=f"{rate:.1f}")
                    if state.step % cfg.log_every == 0:
                        self._log(
                            {"event": "train", "step": state.step, "epoch": state.epoch + 1,
                             "loss": round(smoothed, 6), "lr": scheduler.get_last_lr()[0],
                             "samples_per_s": round(rate, 2)},
                            state,
                        )
                    finished = state.step >= total_steps
                    if state.step % eval_every == 0 or finished:
                        if self._evaluate(state):
                            state.stopped_early = True
                        self._save_checkpoint(state, optimizer, scheduler)
                        tick = time.perf_counter()
                    if finished or state.stopped_early:
                        break
                if state.stopped_early or state.step >= total_steps:
                    break
                state.epoch += 1
                state.batches_done_in_epoch = 0
        except KeyboardInterrupt:
            state.interrupted = True
            if in_step:
                torch.set_rng_state(group_rng)
                state.samples_seen = group_samples
                optimizer.zero_grad(set_to_none=True)
            LOGGER.warning("interrupted at step %d/%d; keeping the best weights so far", state.step, total_steps)
            self._save_checkpoint(state, optimizer, scheduler)
        finally:
            if bar is not None:
                bar.close()
            if adversary is not None:
                adversary.close()
        net.eval()
        best_metrics = None
        if self.best_state is not None:
            net.load_state_dict(self.best_state)
            best_metrics = next(
                (r["metrics"] for r in state.history if r.get("event") == "eval" and r["step"] == state.best_step),
                None,
            )
        self._log(
            {"event": "end", "step": state.step, "best_step": state.best_step,
             "samples_per_s": round(state.samples_seen / max(state.train_seconds, 1e-9), 2),
             "train_seconds": round(state.train_seconds, 2), "interrupted": state.interrupted,
             "stopped_early": state.stopped_early},
            state,
        )
        return TrainResult(state=state, best_metrics=best_metrics, total_steps=total_steps)

    def _adversarial_loss(self, perturbed: torch.Tensor, clean: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The loss at the perturbed input: the task loss on the labels, or consistency with ``clean``."""
        if self.config.adv_loss == "consistency":
            from .adversarial import consistency_loss

            return consistency_loss(perturbed, clean, multi_label=self.config.multi_label)
        return self.loss_fn(perturbed, targets)

    def _evaluate(self, state: TrainerState) -> bool:
        """Score on dev, keep the best weights; return True when patience has run out."""
        if self.eval_fn is None:
            return False
        self.network.eval()
        with torch.inference_mode():
            score, metrics = self.eval_fn(self.network)
        self.network.train()
        improved = score > state.best_score
        self._log({"event": "eval", "step": state.step, "epoch": state.epoch + 1, "score": score,
                   "improved": improved, "metrics": metrics}, state)
        if distributed()[0] == 0:
            LOGGER.info("step %d: dev macro-F1 %.4f%s", state.step, score, " (best)" if improved else "")
        if improved:
            state.best_score, state.best_step, state.evals_since_best = score, state.step, 0
            self.best_state = {k: v.detach().clone() for k, v in self.network.state_dict().items()}
            return False
        state.evals_since_best += 1
        return self.config.patience > 0 and state.evals_since_best >= self.config.patience
