"""The Optuna study behind a search: storage, sampler, pruner, the data it belongs to, lost trials.

Optuna's own RDB storage is the only shared state: SQLite for one machine, PostgreSQL for
several processes or machines on one study. Nothing here is a scheduler of our own; each
worker asks the storage for its next trial.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from ..errors import ConfigError
from .config import Objective, Pruner, Sampler, TuneConfig, mask_password

LOGGER = logging.getLogger("lmworks")

#: Study attribute holding the SHA-256 of the data the study was created for.
DATA_ATTR = "lmworks_data_sha256"


def require_optuna() -> Any:
    """Import Optuna, or say which extra to install."""
    try:
        import optuna
    except ImportError as err:  # pragma: no cover - the extra is part of dev installs
        raise ConfigError("lmworks tune needs Optuna: pip install 'lmworks[tune]'") from err
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def make_sampler(config: TuneConfig) -> Any:
    """TPE (multivariate, grouped: the encoder-only parameters form a conditional group) or random."""
    optuna = require_optuna()
    if config.sampler is Sampler.RANDOM:
        return optuna.samplers.RandomSampler(seed=config.seed)
    import warnings

    # constant_liar: workers sharing a study do not all pick the same point while trials run.
    # multivariate/group are marked experimental by Optuna (stable since 2.x); say so once, not per run.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=config.seed, multivariate=True, group=True, constant_liar=True,
                                          n_startup_trials=5)


def make_pruner(config: TuneConfig) -> Any:
    """The pruner; steps are hundredths of an epoch, so trials compare at equal shares of the data.

    Each model is judged against earlier trials of the same model only (:class:`PerModelPruner`):
    a large encoder's dev curve starts lower and rises later than a small one's, and judged
    against the small one's it is stopped before it overtakes.
    """
    optuna = require_optuna()
    if config.pruner is Pruner.NONE or config.latency:
        return optuna.pruners.NopPruner()
    if config.pruner is Pruner.HYPERBAND:
        # Asynchronous successive halving, the rule Hyperband runs in each of its brackets; Optuna's
        # HyperbandPruner reads the storage directly for its brackets, so it cannot be narrowed per model.
        return PerModelPruner(optuna.pruners.SuccessiveHalvingPruner(min_resource=25, reduction_factor=3))
    # One finished trial of the same model before pruning (its warm-start trial); never before a quarter epoch.
    return PerModelPruner(optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=20))


class PerModelPruner:
    """Optuna pruner wrapper: ``inner`` sees only the finished trials that share this trial's ``key`` parameter.

    Optuna's pruners compare a trial with *all* earlier trials at the same step. Across
    encoders of very different cost that is the wrong race: mpnet after a quarter epoch is
    below MiniLM after a quarter epoch and above it after one. Comparing within a model keeps
    the pruner's own rule (median, successive halving) and changes only who the peers are.
    """

    def __init__(self, inner: Any, key: str = "model") -> None:
        self.inner = inner
        self.key = key

    def prune(self, study: Any, trial: Any) -> bool:
        """The inner pruner's answer with the study narrowed to the same model's trials."""
        return bool(self.inner.prune(_SameParam(study, self.key, trial.params.get(self.key)), trial))


class _SameParam:
    """A read-only view of a study whose ``get_trials`` keeps the trials with ``params[key] == value``."""

    def __init__(self, study: Any, key: str, value: Any) -> None:
        self._study, self._key, self._value = study, key, value

    def get_trials(self, deepcopy: bool = True, states: Any = None) -> list[Any]:
        trials = self._study.get_trials(deepcopy=deepcopy, states=states)
        return [t for t in trials if t.params.get(self._key) == self._value]

    @property
    def trials(self) -> list[Any]:
        return self.get_trials()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)


def open_study(config: TuneConfig, fingerprint: str) -> Any:
    """Create the study, or join/continue it (``resume``), checking it belongs to this data."""
    optuna = require_optuna()
    storage = _storage(config.storage)
    directions = ["minimize" if o is Objective.LATENCY else "maximize" for o in config.objectives]
    exists = storage is not None and any(s.study_name == config.study_name
                                         for s in optuna.study.get_all_study_summaries(storage))
    if exists and not config.resume:
        study = optuna.load_study(study_name=config.study_name, storage=storage)
        if study.trials:
            raise ConfigError(f"study {config.study_name!r} in {mask_password(config.storage)} already has "
                              f"{len(study.trials)} trial(s): pass --resume to continue it, or use another --storage")
    study = optuna.create_study(study_name=config.study_name, storage=storage, directions=directions,
                                sampler=make_sampler(config), pruner=make_pruner(config), load_if_exists=True)
    if [d.name.lower() for d in study.directions] != directions:
        raise ConfigError(f"study {config.study_name!r} was created for other objectives; use another --storage "
                          "or --study-name")
    recorded = study.user_attrs.get(DATA_ATTR)
    if recorded is None:
        study.set_user_attr(DATA_ATTR, fingerprint)
    elif recorded != fingerprint:
        raise ConfigError(f"study {config.study_name!r} in {mask_password(config.storage)} was created for other "
                          f"data (fingerprint {recorded[:12]}, this data {fingerprint[:12]}); use another --storage "
                          "or --study-name")
    recover_lost_trials(study)
    return study


def _storage(url: str | None) -> Any:
    """An RDB storage for ``url`` (``None``: in memory); an unreachable one is a one-line error."""
    if url is None:
        return None
    optuna = require_optuna()
    if url.split(":", 1)[0].split("+", 1)[0] not in ("sqlite", "postgresql", "mysql"):
        raise ConfigError(f"--storage {mask_password(url)}: expected a database URL such as sqlite:///study.db or "
                          "postgresql://user@host/db")
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=_engine_options(url))
    except Exception as err:  # noqa: BLE001 - SQLAlchemy and drivers raise many kinds; all mean "cannot open"
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"cannot open --storage {mask_password(url)}: {first}") from err


def _engine_options(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30}}  # several local processes may write at once
    if url.startswith("postgresql"):
        return {"connect_args": {"connect_timeout": 10}, "pool_pre_ping": True}
    return {}


def this_worker() -> dict[str, Any]:
    """Who runs a trial: recorded on it, so a later run can tell a crashed trial from a running one."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def recover_lost_trials(study: Any) -> list[int]:
    """Fail the trials left RUNNING by a process of this host that no longer exists, and queue them again.

    That is what ``kill -9`` (or a power cut) leaves behind: the trial's row says RUNNING
    forever. Its parameters go back in the queue, so the search loses the time, not the point.
    Trials of other hosts are left alone: they may be running.
    """
    optuna = require_optuna()
    lost = []
    host = socket.gethostname()
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker", {})
        if worker.get("host") != host or _alive(int(worker.get("pid", -1))):
            continue
        study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number}, skip_if_exists=False)
        lost.append(trial.number)
    if lost:
        LOGGER.warning("trial(s) %s were left running by a process that is gone: marked failed and queued again",
                       ", ".join(map(str, lost)))
    return lost


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
