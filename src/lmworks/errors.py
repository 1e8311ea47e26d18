"""Exceptions that carry a one-line, user-facing message.

The CLI prints ``str(error)`` and exits non-zero for every :class:`LmworksError`;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


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
