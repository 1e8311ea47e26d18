"""``TuneConfig``: how a search runs (budget, objectives, sampler, pruner, storage)."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, Rule, check_rules
from ..modes import Mode

#: The shortest budget accepted: below it not even a TF-IDF trial and the bookkeeping fit.
MIN_BUDGET_S = 30.0


class Objective(Mode):
    """What a trial is scored on: a dev metric (higher is better) or measured latency (lower is better)."""

    __what__ = "objective"
    MACRO_F1 = "macro_f1"
    ACCURACY = "accuracy"
    LATENCY = "latency"


class Sampler(Mode):
    """How the next trial's values are chosen."""

    __what__ = "sampler"
    TPE = "tpe"
    RANDOM = "random"


class Pruner(Mode):
    """How unpromising trials are stopped early, from their dev scores at equal shares of an epoch."""

    __what__ = "pruner"
    MEDIAN = "median"
    HYPERBAND = "hyperband"
    NONE = "none"


def parse_duration(text: str | float) -> float:
    """``"30m"``, ``"1h30m"``, ``"90s"``, ``"45"`` (seconds) -> seconds."""
    if isinstance(text, (int, float)):
        return float(text)
    value = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*(h|m|min|s)", value)
    if not parts or re.sub(r"(\d+(?:\.\d+)?)\s*(h|m|min|s)", "", value).strip():
        raise ConfigError(f"--budget {text!r}: expected a duration such as 30m, 1h, 90s or 1h30m")
    unit = {"h": 3600.0, "m": 60.0, "min": 60.0, "s": 1.0}
    return sum(float(n) * unit[u] for n, u in parts)


_RULES: tuple[Rule, ...] = (
    (lambda c: c.budget_s >= MIN_BUDGET_S,
     f"budget {{budget_s:g}} s is too small for one trial: the minimum is {MIN_BUDGET_S:g} s"),
    (lambda c: c.n_trials is None or c.n_trials > 0, "n_trials must be > 0, got {n_trials}"),
    (lambda c: c.evals_per_epoch > 0, "evals_per_epoch must be > 0, got {evals_per_epoch}"),
    (lambda c: len(set(c.objectives)) == len(c.objectives) and 1 <= len(c.objectives) <= 2,
     "objectives: one dev metric, optionally with latency (e.g. accuracy,latency)"),
    (lambda c: sum(o is not Objective.LATENCY for o in c.objectives) == 1,
     "objectives: exactly one dev metric (macro_f1 or accuracy), optionally with latency"),
    (lambda c: 0 < c.margin < 0.5, "margin must be in (0, 0.5), got {margin}"),
)


@dataclass
class TuneConfig:
    """Settings of one search.

    Attributes
    ----------
    budget_s:
        Wall-clock seconds for the whole search, from start to the written model. A trial
        still running when the training share of the budget is spent stops and keeps its best
        checkpoint.
    n_trials:
        Stop after this many trials (of this process) even with budget left; ``None``: the budget decides.
    objectives:
        The dev metric to maximise (``macro_f1`` or ``accuracy``), optionally with ``latency``
        (measured CPU milliseconds per text, minimised): two objectives give a Pareto front.
    sampler:
        ``tpe`` (Optuna's Tree-structured Parzen Estimator; multivariate, so the conditional
        encoder parameters are modelled together) or ``random``.
    pruner:
        ``median`` (stop a trial whose dev score after the same share of an epoch is below the
        median of earlier trials), ``hyperband`` (successive halving in brackets) or ``none``.
    warm_start:
        Enqueue each available model's default configuration first, cheapest first (TF-IDF,
        MiniLM, then larger encoders): the search starts from what ``lmworks train`` would give
        and learns from there, as AutoGluon's presets do.
    storage:
        Optuna storage URL (``sqlite:///study.db``, ``postgresql://...``); ``None`` keeps the
        study in memory. Several processes on one RDB storage share the study.
    study_name:
        The study's name in the storage.
    resume:
        Continue an existing study of that name (which must have been created for the same data).
    seed:
        Seeds the sampler. Trials train with ``TrainConfig.seed`` unless the space varies it.
    evals_per_epoch:
        Dev evaluations per epoch in encoder trials: each is a point the pruner compares at.
    margin:
        Share of the budget kept for what follows training (the blend, dev scoring, writing the
        model): training stops at ``(1 - margin)`` of the budget.
    fixed:
        Parameter values every trial uses (``--fix``); they are not searched.
    space_file:
        A JSON file replacing ranges of the default space (:mod:`lmworks.search.space`).
    models:
        Models the default space chooses among (names or checkpoint directories); ``None``:
        tfidf, minilm and mpnet where installed.
    latency_texts:
        Dev texts timed one at a time for the latency objective.
    """

    budget_s: float = 1800.0
    n_trials: int | None = None
    objectives: tuple[Objective, ...] | list[Any] = (Objective.MACRO_F1,)
    sampler: Sampler | str = Sampler.TPE
    pruner: Pruner | str = Pruner.MEDIAN
    warm_start: bool = True
    storage: str | None = None
    study_name: str = "lmworks-tune"
    resume: bool = False
    seed: int = 0
    evals_per_epoch: int = 4
    margin: float = 0.03
    fixed: dict[str, Any] = field(default_factory=dict)
    space_file: str | None = None
    models: tuple[str, ...] | None = None
    latency_texts: int = 100

    def __post_init__(self) -> None:
        if isinstance(self.objectives, str):
            self.objectives = tuple(x.strip() for x in self.objectives.split(",") if x.strip())
        self.objectives = tuple(Objective.parse(o) for o in self.objectives)
        self.sampler = Sampler.parse(self.sampler)
        self.pruner = Pruner.parse(self.pruner)
        self.budget_s = parse_duration(self.budget_s)
        check_rules(self, _RULES)

    @property
    def metric(self) -> Objective:
        """The dev metric maximised."""
        return next(o for o in self.objectives if o is not Objective.LATENCY)

    @property
    def latency(self) -> bool:
        """Whether measured latency is a second objective."""
        return Objective.LATENCY in self.objectives

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (``lmworks.json``'s ``tune`` record); a storage password is masked."""
        out = {k: (v.value if isinstance(v, Mode) else v) for k, v in dataclasses.asdict(self).items()}
        out["objectives"] = [o.value for o in self.objectives]
        out["storage"] = mask_password(self.storage)
        return out


def mask_password(url: str | None) -> str | None:
    """``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db`` (for logs and files)."""
    return re.sub(r"(://[^:/@]+:)[^@]+@", r"\1***@", url) if url else url
