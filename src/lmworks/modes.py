"""Every mode switch of lmworks, as string enums in one place.

A mode is an enum that also *is* its string value, so ``config.head == "mean"``,
``json.dumps`` and argparse ``choices`` all work with it, and a typo is an error that
names the choices instead of a silent no-op. Nothing here imports torch: validating a
TF-IDF configuration must not load a deep-learning framework.
"""

from __future__ import annotations

import enum
from typing import Any, TypeVar

from .errors import ConfigError

M = TypeVar("M", bound="Mode")


class Mode(str, enum.Enum):
    """Base of the mode enums: ``parse`` accepts a member or its string value."""

    #: How the option is named in error messages (``--head``, ``blend``...).
    __what__: str = "mode"

    @classmethod
    def parse(cls: type[M], value: Any) -> M:
        """The member for ``value`` (a member or its value); :class:`ConfigError` otherwise."""
        try:
            return cls(value)
        except ValueError as err:
            raise ConfigError(f"unknown {cls.__what__} {value!r}: choose {cls.choices_text()}") from err

    @classmethod
    def choices(cls) -> list[str]:
        """The string values, in declaration order (for argparse ``choices``)."""
        return [m.value for m in cls]

    @classmethod
    def choices_text(cls) -> str:
        """``"a, b or c"``."""
        values = cls.choices()
        return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " or " + values[-1]

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class Pooling(Mode):
    """How a sequence of hidden states becomes one vector: the classification head."""

    __what__ = "head"
    MEAN = "mean"
    CLS = "cls"


class BlendMode(Mode):
    """Whether to blend the encoder with TF-IDF."""

    __what__ = "blend"
    AUTO = "auto"
    TFIDF = "tfidf"
    NONE = "none"


class BlendMix(Mode):
    """How a blend combines its two models' probabilities (:func:`lmworks.backends.blend.mix`)."""

    __what__ = "blend mix"
    LOG = "log"
    PROBA = "proba"


class ClassWeighting(Mode):
    """How the loss weighs classes: ``none``, or ``balanced`` (inverse frequency)."""

    __what__ = "class_weights"
    NONE = "none"
    BALANCED = "balanced"


class OptimizerKind(Mode):
    """The optimiser of the training engine."""

    __what__ = "optimizer"
    ADAMW = "adamw"
    SGD = "sgd"


class Adversarial(Mode):
    """Adversarial training on the word embeddings."""

    __what__ = "adversarial method"
    NONE = "none"
    FGM = "fgm"
    PGD = "pgd"


class AdvNorm(Mode):
    """What the adversarial radius measures: each text, or the batch's embedding matrix."""

    __what__ = "adv_norm"
    BATCH = "batch"
    EXAMPLE = "example"


class AdvLoss(Mode):
    """What the perturbed input is trained towards: its label, or the clean prediction."""

    __what__ = "adv_loss"
    LABEL = "label"
    CONSISTENCY = "consistency"


class Task(Mode):
    """One label per text, or any number of labels."""

    __what__ = "task"
    SINGLE_LABEL = "single_label"
    MULTI_LABEL = "multi_label"


class FewShot(Mode):
    """Whether ``train`` fits an encoder with the few-shot recipe (a contrastive stage, then a head)."""

    __what__ = "few-shot mode"
    AUTO = "auto"
    ON = "on"
    OFF = "off"
