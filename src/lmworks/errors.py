"""Exceptions that carry a one-line, user-facing message.

The CLI prints ``str(error)`` and exits non-zero for every :class:`LmworksError`;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Any

from sklearn.exceptions import NotFittedError as SklearnNotFittedError

#: A validation rule: ``(test(obj) -> ok?, message formatted with the object's fields)``.
Rule = tuple[Callable[[Any], bool], str]


class LmworksError(Exception):
    """Base class for errors caused by the user's input or environment."""


class DataError(LmworksError, ValueError):
    """A data file is missing, unreadable or malformed.

    The message names the file and, where known, the row and the column.
    """


class ModelDirError(LmworksError):
    """A model directory is missing, corrupt or inconsistent."""


class ConfigError(LmworksError, ValueError):
    """An option has an invalid value (unknown mode, out-of-range number...)."""


class NotFittedError(LmworksError, RuntimeError, SklearnNotFittedError):
    """A model was asked to predict, decide or save before ``fit`` (or ``load``).

    scikit-learn's own ``NotFittedError`` (so code that catches it, and its estimator checks,
    recognise it), and a ``RuntimeError`` as lmworks raised before it had this class.
    """


def check_rules(obj: Any, rules: Sequence[Rule]) -> None:
    """Raise :class:`ConfigError` with the message of the first rule ``obj`` breaks.

    Config dataclasses state their constraints as a table of rules instead of a chain
    of ``if`` statements: each reads as one line, and each message is formatted with the
    object's own field values (``"lr must be > 0, got {lr}"``).
    """
    for test, message in rules:
        if not test(obj):
            raise ConfigError(message.format(**vars(obj)))


def check_field_types(obj: Any) -> None:
    """Raise :class:`ConfigError` for a dataclass field whose value is not of its default's kind.

    A number where a number is expected (``True`` is not one), a string where a string is,
    a bool where a bool is; fields whose default is ``None`` or a container are left to
    their own rules. Without this, ``lr="x"`` failed inside a range rule with a bare
    ``TypeError`` instead of a line naming the field.
    """
    import dataclasses

    for f in dataclasses.fields(obj):
        default, value = f.default, getattr(obj, f.name)
        if default is dataclasses.MISSING or default is None or isinstance(default, enum.Enum):
            continue
        if isinstance(default, bool):
            ok, kind = isinstance(value, bool), "true or false"
        elif isinstance(default, (int, float)):
            ok, kind = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
        elif isinstance(default, str):
            ok, kind = isinstance(value, str), "a string"
        else:
            continue
        if not ok:
            raise ConfigError(f"{f.name} must be {kind}, got {value!r}")


def check_known_fields(cls: Any, data: Any, what: str) -> None:
    """Raise :class:`ConfigError` naming the keys of ``data`` that are not fields of dataclass ``cls``.

    Configs read back from ``lmworks.json`` or a user's file go through this, so a typo
    or an option from another version is an error rather than silently dropped.
    """
    import dataclasses

    unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise ConfigError(f"unknown {what} option(s): {', '.join(unknown)}")
