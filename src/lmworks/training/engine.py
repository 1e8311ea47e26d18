"""The one training engine: every lmworks model that learns by gradient descent trains here.

It knows nothing of labels, files or applications: it gets a network, a
:class:`~lmworks.training.config.TrainConfig`, an
:class:`~lmworks.training.objectives.Objective` (batches and their loss) and, when
there is held-out data, an evaluation callback. What it adds over a hand-written loop
is what a user needs on a CPU: AdamW with warm-up/decay and clipping, gradient
accumulation, early stopping that keeps the best weights, checkpoints that make
Ctrl-C and ``--resume`` exact, a progress bar, a JSONL metrics log, and data-parallel
training under ``torchrun``.

The loop is cut into named pieces, each one job: :meth:`Trainer._setup` (optimiser,
schedule, resume or seed), :meth:`Trainer._run_epoch` (one pass),
:meth:`Trainer._micro_batch` (one forward/backward), :meth:`Trainer._optimizer_step`,
:meth:`Trainer._after_step` (progress, log, evaluate, checkpoint), :meth:`Trainer._evaluate`
(keep-best and patience), :meth:`Trainer._interrupted` and :meth:`Trainer._finish`.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from ..errors import ConfigError
from ..modes import Adversarial
from ..runtime import distributed, seed_everything
from .checkpoint import STATE_FILE, TrainerState, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .keep_best import KeepBest
from .objectives import Objective
from .optim import make_optimizer, make_scheduler

LOGGER = logging.getLogger("lmworks")
LOG_FILE = "metrics.jsonl"

#: ``eval_fn(network) -> (score, metrics)``; higher score is better.
EvalFn = Callable[[nn.Module], tuple[float, dict[str, Any]]]

__all__ = ["LOG_FILE", "STATE_FILE", "EvalFn", "TrainMonitor", "TrainResult", "Trainer", "TrainerState"]


class TrainMonitor(Protocol):
    """Someone outside the run watching it: a hyperparameter search (:mod:`lmworks.search`).

    The search prunes and budgets through these two calls, so a trial is an ordinary run
    of this engine, not a second training loop.
    """

    def on_evaluate(self, epochs: float, score: float, metrics: dict[str, Any]) -> None:
        """A dev evaluation after ``epochs`` passes over the data scored ``score`` (and ``metrics``).

        Raising abandons the run (a pruned trial).
        """

    def should_stop(self) -> bool:
        """True when the run should stop now and keep its best weights so far (a time budget ran out)."""


@dataclass
class TrainResult:
    """What :meth:`Trainer.train` reports back."""

    state: TrainerState
    best_metrics: dict[str, Any] | None
    total_steps: int
    #: The loss of every optimiser step's batches (not checkpointed: a resumed run starts it anew).
    step_losses: list[float] = field(default_factory=list)

    @property
    def samples_per_second(self) -> float:
        """Training throughput, excluding evaluation and checkpointing time."""
        return self.state.samples_seen / max(self.state.train_seconds, 1e-9)

    def info(self) -> dict[str, Any]:
        """What a backend reports about the run (``TextClassifier.train_info_``)."""
        state = self.state
        return {
            "steps": state.step,
            "total_steps": self.total_steps,
            "best_step": state.best_step,
            "samples_per_second": round(self.samples_per_second, 2),
            "train_seconds": round(state.train_seconds, 2),
            "mean_loss": state.loss_sum / max(state.samples_seen, 1),
            "interrupted": state.interrupted,
            "stopped_early": state.stopped_early,
            "history": state.history,
            "dev_metrics": self.best_metrics,
        }


@dataclass
class _Run:
    """What one call of :meth:`Trainer.train` holds besides the checkpointed state."""

    optimizer: torch.optim.Optimizer
    scheduler: Any
    total_steps: int
    steps_per_epoch: int
    eval_every: int
    model: nn.Module  # the network, wrapped in DDP under torchrun
    rank: int = 0
    world: int = 1
    bar: Any = None
    smoothed: float | None = None
    pending: int = 0  # micro-batches accumulated towards the next optimiser step
    in_step: bool = False
    step_rng: torch.Tensor | None = None  # RNG and sample count when the pending step began
    step_samples: int = 0
    step_loss: float = 0.0
    tick: float = 0.0
    step_losses: list[float] = field(default_factory=list)


class Trainer:
    """Train ``network`` on ``objective`` under ``config``.

    Parameters
    ----------
    network:
        The module whose parameters are trained.
    config:
        The run's :class:`TrainConfig` (schedule, optimiser, accumulation, evaluation,
        patience, seed).
    objective:
        Batches and their loss (:mod:`lmworks.training.objectives`).
    eval_fn:
        Scores the network on held-out data; ``None`` trains for all epochs and
        keeps the last weights.
    checkpoint_dir:
        Where checkpoints and the metrics log go; ``None`` keeps everything in memory.
    progress:
        Show a progress bar with loss and throughput.
    description:
        The progress bar's label (default: the epoch).
    monitor:
        Told of every dev evaluation and asked after every optimiser step whether to stop
        (:class:`TrainMonitor`); ``None`` for a run nobody watches.
    """

    def __init__(
        self,
        network: nn.Module,
        config: TrainConfig,
        objective: Objective,
        *,
        eval_fn: EvalFn | None = None,
        checkpoint_dir: Path | None = None,
        progress: bool = True,
        description: str | None = None,
        monitor: TrainMonitor | None = None,
    ) -> None:
        self.network = network
        self.config = config
        self.objective = objective
        self.eval_fn = eval_fn
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.progress = progress
        self.description = description
        self.monitor = monitor
        self.best_state: dict[str, torch.Tensor] | None = None

    # -- the loop ------------------------------------------------------------------------
    def train(self, *, resume: bool = False) -> TrainResult:
        """Run the loop; on Ctrl-C, checkpoint and return with the best weights so far."""
        state, run = self._setup(resume)
        self.network.train()
        try:
            while state.step < run.total_steps and not state.stopped_early:
                self._run_epoch(state, run)
        except KeyboardInterrupt:
            self._interrupted(state, run)
        finally:
            if run.bar is not None:
                run.bar.close()
            self.objective.close()
        return self._finish(state, run)

    def _setup(self, resume: bool) -> tuple[TrainerState, _Run]:
        """Optimiser, schedule and step counts; then either the checkpoint's state or a fresh seeded one."""
        cfg, net = self.config, self.network
        steps_per_epoch = math.ceil(len(self.objective.batches(0)) / cfg.grad_accum_steps)
        total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * steps_per_epoch))
        if cfg.freeze_embeddings and hasattr(net, "input_embeddings"):
            net.input_embeddings().weight.requires_grad_(False)  # type: ignore[operator]
        optimizer = make_optimizer(net, cfg)
        scheduler = make_scheduler(optimizer, warmup_ratio=cfg.warmup_ratio, total_steps=total_steps)
        if resume:
            path = self.checkpoint_dir / STATE_FILE if self.checkpoint_dir else None
            state, self.best_state = load_checkpoint(path, config=cfg, network=net, optimizer=optimizer,
                                                     scheduler=scheduler)
            LOGGER.info("resuming at step %d/%d (epoch %d)", state.step, total_steps, state.epoch + 1)
        else:
            seed_everything(cfg.seed)
            state = TrainerState()
            if self.checkpoint_dir is not None and (self.checkpoint_dir / LOG_FILE).exists():
                (self.checkpoint_dir / LOG_FILE).unlink()
        rank, world = distributed()
        run = _Run(optimizer, scheduler, total_steps, steps_per_epoch, cfg.eval_every or steps_per_epoch,
                   self._parallel(net, world), rank, world)
        if self.progress and rank == 0:
            from tqdm.auto import tqdm

            run.bar = tqdm(total=total_steps, initial=state.step, unit="step", dynamic_ncols=True, leave=True,
                           desc=self.description)
        return state, run

    def _parallel(self, net: nn.Module, world: int) -> nn.Module:
        """The network itself, or wrapped in DDP when ``torchrun`` started several processes.

        Every rank builds the same batches (same seed) and takes its share of each; DDP
        averages the gradients, so a step sees the whole global batch. The pooler of a
        mean-pooling encoder gets no gradient: hence ``find_unused_parameters``.
        """
        if world == 1:
            return net
        if self.config.adversarial is not Adversarial.NONE or self.config.grad_accum_steps > 1:
            raise ConfigError("multi-process training does not combine with --adversarial or --grad-accum yet")
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(net, find_unused_parameters=True)

    def _run_epoch(self, state: TrainerState, run: _Run) -> None:
        """One pass over the objective's batches of ``state.epoch``, from where the run stands in it."""
        batches = self.objective.batches(state.epoch)
        if run.bar is not None and self.description is None:
            run.bar.set_description(f"epoch {state.epoch + 1}/{math.ceil(run.total_steps / run.steps_per_epoch)}")
        run.pending = 0
        run.tick = time.perf_counter()
        for index in range(state.batches_done_in_epoch, len(batches)):
            self._micro_batch(state, run, batches[index])
            last_of_epoch = index == len(batches) - 1
            if run.pending < self.config.grad_accum_steps and not last_of_epoch:
                continue
            self._optimizer_step(state, run)
            state.batches_done_in_epoch = index + 1
            if self._after_step(state, run):
                return
        state.epoch += 1
        state.batches_done_in_epoch = 0

    def _micro_batch(self, state: TrainerState, run: _Run, batch: list[int]) -> None:
        """Forward and backward one batch (this rank's share of it), accumulating gradients."""
        if run.pending == 0:
            # Snapshot so that an interrupt mid-step resumes with identical dropout.
            run.step_rng = torch.get_rng_state()
            run.step_samples = state.samples_seen
            run.step_loss = 0.0
            run.in_step = True
            self.objective.before_step(self.network, state.step, run.total_steps)
        if run.world > 1:
            batch = batch[run.rank::run.world]
        value = self.objective.backward(run.model, batch, self.config.grad_accum_steps)
        run.pending += 1
        state.samples_seen += len(batch)
        state.loss_sum += value * len(batch)
        run.step_loss += value / self.config.grad_accum_steps
        run.smoothed = value if run.smoothed is None else 0.9 * run.smoothed + 0.1 * value

    def _optimizer_step(self, state: TrainerState, run: _Run) -> None:
        """Clip, step the optimiser and the schedule, clear the gradients."""
        if self.config.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), self.config.max_grad_norm)
        run.optimizer.step()
        run.scheduler.step()
        run.optimizer.zero_grad(set_to_none=True)
        run.pending = 0
        run.in_step = False
        run.step_losses.append(run.step_loss)
        state.step += 1

    def _after_step(self, state: TrainerState, run: _Run) -> bool:
        """Progress, the metrics log, evaluation and checkpoint when due; True when the run is over."""
        now = time.perf_counter()
        state.train_seconds += now - run.tick
        run.tick = now
        rate = state.samples_seen / max(state.train_seconds, 1e-9)
        if run.bar is not None:
            run.bar.update(1)
            run.bar.set_postfix(loss=f"{run.smoothed:.4f}", samples_s=f"{rate:.1f}")
        if state.step % self.config.log_every == 0:
            self._log({"event": "train", "step": state.step, "epoch": state.epoch + 1,
                       "loss": round(run.smoothed or 0.0, 6), "lr": run.scheduler.get_last_lr()[0],
                       "samples_per_s": round(rate, 2)}, state)
        finished = state.step >= run.total_steps
        if state.step % run.eval_every == 0 or finished:
            state.stopped_early = self._evaluate(state, state.step / run.steps_per_epoch)
            self._save_checkpoint(state, run)
            run.tick = time.perf_counter()
        if not (finished or state.stopped_early) and self.monitor is not None and self.monitor.should_stop():
            LOGGER.info("stopped at step %d/%d: the time budget ran out; keeping the best weights so far",
                        state.step, run.total_steps)
            self._log({"event": "stop", "step": state.step, "reason": "budget"}, state)
            state.stopped_early = True
            self._save_checkpoint(state, run)
        return finished or state.stopped_early

    def _interrupted(self, state: TrainerState, run: _Run) -> None:
        """Ctrl-C: forget the unfinished step, checkpoint, and let :meth:`_finish` keep the best weights."""
        state.interrupted = True
        if run.in_step:
            if run.step_rng is not None:
                torch.set_rng_state(run.step_rng)
            state.samples_seen = run.step_samples
            run.optimizer.zero_grad(set_to_none=True)
        LOGGER.warning("interrupted at step %d/%d; keeping the best weights so far", state.step, run.total_steps)
        self._save_checkpoint(state, run)

    def _finish(self, state: TrainerState, run: _Run) -> TrainResult:
        """Restore the best weights (if any evaluation ran) and log the run's end."""
        self.network.eval()
        best_metrics = None
        if self.best_state is not None:
            self.network.load_state_dict(self.best_state)
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
        return TrainResult(state=state, best_metrics=best_metrics, total_steps=run.total_steps,
                           step_losses=run.step_losses)

    # -- evaluation, logging, checkpoints --------------------------------------------------
    def _evaluate(self, state: TrainerState, epochs: float) -> bool:
        """Score on dev, keep the best weights, tell the monitor; return True when patience has run out."""
        if self.eval_fn is None:
            return False
        self.network.eval()
        with torch.inference_mode():
            score, metrics = self.eval_fn(self.network)
        self.network.train()
        # the resumable TrainerState holds the keep-best record between evaluations (and runs)
        keeper = KeepBest(self.config.patience, state.best_score, state.best_step, state.evals_since_best,
                          self.best_state)
        improved = keeper.update(score, self.network.state_dict, state.step)
        state.best_score, state.best_step, state.evals_since_best = keeper.best_score, keeper.best_at, keeper.since_best
        self.best_state = keeper.best_state
        self._log({"event": "eval", "step": state.step, "epoch": state.epoch + 1, "score": score,
                   "improved": improved, "metrics": metrics}, state)
        if distributed()[0] == 0:
            LOGGER.info("step %d: dev macro-F1 %.4f%s", state.step, score, " (best)" if improved else "")
        if self.monitor is not None:
            self.monitor.on_evaluate(epochs, score, metrics)
        return keeper.exhausted

    def _log(self, record: dict[str, Any], state: TrainerState) -> None:
        state.history.append(record)
        if self.checkpoint_dir is not None and distributed()[0] == 0:
            self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
            with open(self.checkpoint_dir / LOG_FILE, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")

    def _save_checkpoint(self, state: TrainerState, run: _Run) -> None:
        if self.checkpoint_dir is None or run.rank != 0:
            return
        save_checkpoint(self.checkpoint_dir / STATE_FILE, config=self.config, state=state, network=self.network,
                        best_state=self.best_state, optimizer=run.optimizer, scheduler=run.scheduler)
