"""The search space: which :class:`~lmworks.TrainConfig` fields a search varies, and over what.

Every parameter is a field of ``TrainConfig`` (so a trial is an ordinary ``train`` run), plus
``runtime`` (``torch`` or ``int8``: an ONNX int8 export, a choice only when latency is an
objective). Encoder parameters are asked for only when the trial's model is an encoder, so
TPE sees a conditional space rather than values that do nothing.

A user narrows or widens any part: ``--fix lr=3e-5`` pins a value, ``--space FILE`` (JSON)
replaces a parameter's range, e.g. ``{"lr": {"low": 1e-5, "high": 1e-3, "log": true},
"model": {"choices": ["minilm", "runs/pretrained"]}}``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..training.config import MODE_FIELDS, TrainConfig

#: Models a trial may pick by default (``mpnet`` joins only where it is installed).
DEFAULT_MODELS = ("tfidf", "minilm", "mpnet")
#: Token budgets a trial may pick, cut to the data's length distribution by :func:`length_choices`.
LENGTHS = (32, 64, 128, 256, 512)
#: Latency objective only: run the model as exported by ``lmworks export --quantize int8``.
RUNTIMES = ("torch", "int8")


@dataclass(frozen=True)
class Param:
    """One searched parameter.

    Attributes
    ----------
    name:
        A ``TrainConfig`` field, or ``runtime``.
    choices:
        Categorical values (then ``low``/``high`` are unused).
    low, high, log, step:
        A numeric range; ``log`` samples it log-uniformly; ``step`` makes it an integer range.
    encoder_only:
        Asked for only when the trial's model is an encoder (not ``tfidf``).
    """

    name: str
    choices: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: int | None = None
    encoder_only: bool = True

    def check(self) -> None:
        """Raise :class:`ConfigError` for a range that cannot be sampled."""
        if self.choices:
            return
        if self.low is None or self.high is None:
            raise ConfigError(f"search space: {self.name} needs 'choices' or both 'low' and 'high'")
        if not self.low < self.high:
            raise ConfigError(f"search space: {self.name} has low={self.low:g} >= high={self.high:g}")
        if self.log and self.low <= 0:
            raise ConfigError(f"search space: {self.name} is log-scaled and needs low > 0, got {self.low:g}")

    def to_dict(self) -> dict[str, Any]:
        """What ``lmworks.json`` and the report record about this parameter."""
        if self.choices:
            return {"choices": list(self.choices)}
        out: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        if self.step:
            out["step"] = self.step
        return out


def default_space(models: Sequence[str], lengths: Sequence[int], *, latency: bool) -> dict[str, Param]:
    """The documented default space (``docs/guides/tune.md`` lists it)."""
    space = [
        Param("model", choices=tuple(models), encoder_only=False),
        Param("class_weights", choices=("none", "balanced"), encoder_only=False),
        Param("lr", low=1e-5, high=3e-4, log=True),
        # A quarter epoch upwards, log-scaled: a large encoder's useful runs are short ones.
        Param("epochs", low=0.25, high=4.0, log=True),
        Param("batch_size", choices=(16, 32, 64)),
        Param("max_length", choices=tuple(lengths)),
        Param("head", choices=("mean", "cls")),
        Param("layer_lr_decay", low=0.6, high=1.0),
        Param("blend", choices=("tfidf", "none")),
    ]
    if latency:
        space.append(Param("runtime", choices=RUNTIMES))
    return {p.name: p for p in space}


def length_choices(token_counts: Sequence[int]) -> list[int]:
    """The token budgets worth trying: from the median text's length up to the one that cuts under 1 %.

    Longer budgets cost time and change nothing for texts that short; shorter ones than
    the median throw most texts' endings away.
    """
    counts = sorted(token_counts) or [1]
    median = counts[len(counts) // 2]
    p99 = counts[min(len(counts) - 1, math.ceil(0.99 * len(counts)) - 1)]
    upper = next((n for n in LENGTHS if n >= p99), LENGTHS[-1])
    lower = next((n for n in LENGTHS if n >= median), LENGTHS[-1])
    return [n for n in LENGTHS if lower <= n <= upper] or [upper]


_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)} - {"extra"}


def known_names() -> list[str]:
    """Parameters a space file or ``--fix`` may name."""
    return sorted(_FIELDS | {"runtime"})


def parse_fixed(items: Sequence[str]) -> dict[str, Any]:
    """``["lr=3e-5", "model=minilm"]`` -> values, typed like the ``TrainConfig`` field they set."""
    fixed: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name:
            raise ConfigError(f"--fix {item!r}: expected NAME=VALUE, e.g. --fix lr=3e-5")
        fixed[name] = _typed(name, text.strip())
    check_names(fixed, "--fix")
    if fixed.get("runtime", "torch") not in RUNTIMES:
        raise ConfigError(f"--fix runtime={fixed['runtime']}: choose {' or '.join(RUNTIMES)}")
    probe = {k: v for k, v in fixed.items() if k != "runtime"}
    try:
        TrainConfig(**probe)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"--fix: {err}") from err
    return fixed


def _typed(name: str, text: str) -> Any:
    """A ``--fix`` value as its field's type (int, float, bool or string)."""
    default = getattr(TrainConfig, name, None) if name in _FIELDS else None
    if name in MODE_FIELDS or isinstance(default, str) or name == "runtime" or name == "model":
        return text
    try:
        if isinstance(default, bool):
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return text.lower() in ("true", "1")
        if isinstance(default, int) and name != "epochs":
            return int(text)
        return float(text)
    except ValueError as err:
        raise ConfigError(f"--fix {name}={text}: not a {type(default).__name__}") from err


def check_names(values: dict[str, Any], where: str) -> None:
    """Unknown parameter names are an error that lists the known ones."""
    unknown = sorted(set(values) - set(known_names()))
    if unknown:
        raise ConfigError(f"{where}: unknown parameter(s) {', '.join(unknown)}; known: {', '.join(known_names())}")


def load_space(path: str | Path, base: dict[str, Param]) -> dict[str, Param]:
    """``base`` with the parameters a JSON file sets replaced (a new name adds a parameter)."""
    path = Path(path)
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"--space {path}: cannot read it as JSON ({err})") from err
    if not isinstance(spec, dict):
        raise ConfigError(f"--space {path}: expected an object of parameters, e.g. {{\"lr\": {{\"low\": 1e-5, "
                          "\"high\": 1e-3, \"log\": true}}")
    check_names(spec, f"--space {path}")
    space = dict(base)
    for name, body in spec.items():
        if not isinstance(body, dict) or not set(body) <= {"choices", "low", "high", "log", "step"}:
            raise ConfigError(f"--space {path}: {name} must be an object with 'choices', or 'low'/'high' "
                              "(and optionally 'log', 'step')")
        choices = tuple(body.get("choices") or ())
        if "choices" in body and not choices:
            raise ConfigError(f"--space {path}: {name} has an empty 'choices' list")
        param = Param(name, choices=choices, low=body.get("low"), high=body.get("high"), log=bool(body.get("log")),
                      step=body.get("step"), encoder_only=name not in ("model", "class_weights"))
        param.check()
        space[name] = param
    return space


def suggest(trial: Any, space: dict[str, Param], fixed: dict[str, Any]) -> dict[str, Any]:
    """The trial's values: fixed ones as given, the rest asked of the sampler (encoder ones for encoders only)."""
    values: dict[str, Any] = {}
    for name in ("model", *[n for n in space if n != "model"]):
        if name in fixed:
            values[name] = fixed[name]
            continue
        param = space.get(name)
        if param is None or (param.encoder_only and values.get("model") == "tfidf"):
            continue
        values[name] = _ask(trial, param)
    for name, value in fixed.items():
        values.setdefault(name, value)
    return values


def _ask(trial: Any, p: Param) -> Any:
    if p.choices:
        return trial.suggest_categorical(p.name, list(p.choices))
    assert p.low is not None and p.high is not None
    if p.step:
        return trial.suggest_int(p.name, int(p.low), int(p.high), step=int(p.step), log=p.log)
    return trial.suggest_float(p.name, float(p.low), float(p.high), log=p.log)
