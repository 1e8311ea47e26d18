"""Typed training configuration shared by the Python API, the CLI and ``lmworks.json``."""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, Rule, check_field_types, check_known_fields, check_rules
from ..modes import Adversarial, AdvLoss, AdvNorm, BlendMode, ClassWeighting, FewShot, Mode, OptimizerKind, Pooling

#: ``few_shot="auto"`` picks the few-shot recipe below this many training labels per class: where
#: ``bench/fewshot.py`` measured it stop beating plain fine-tuning, or the largest size it measured when it
#: never did (it won at every size up to 256 on Rotten Tomatoes; a test keeps the two in step).
FEW_SHOT_BELOW = 256

#: Fields that hold a mode, and its enum: strings are accepted and parsed into members.
MODE_FIELDS: dict[str, type[Mode]] = {
    "head": Pooling, "class_weights": ClassWeighting, "blend": BlendMode, "optimizer": OptimizerKind,
    "adversarial": Adversarial, "adv_norm": AdvNorm, "adv_loss": AdvLoss, "few_shot": FewShot,
}

# (test, message) pairs over a config: each message is formatted with the config's fields.
_RULES: tuple[Rule, ...] = (
    (lambda c: c.epochs > 0, "epochs must be > 0, got {epochs}"),
    (lambda c: c.batch_size > 0, "batch_size must be > 0, got {batch_size}"),
    (lambda c: c.lr > 0, "lr must be > 0, got {lr}"),
    (lambda c: c.max_length > 0, "max_length must be > 0, got {max_length}"),
    (lambda c: c.grad_accum_steps > 0, "grad_accum_steps must be > 0, got {grad_accum_steps}"),
    (lambda c: c.few_shot_below >= 0, "few_shot_below must be >= 0, got {few_shot_below}"),
    (lambda c: c.max_steps >= 0, "max_steps must be >= 0, got {max_steps}"),
    (lambda c: c.max_length >= 8, "max_length must be at least 8 tokens, got {max_length}"),
    (lambda c: 0 <= c.eval_fraction < 1, "eval_fraction must be in [0, 1), got {eval_fraction}"),
    (lambda c: 0 <= c.warmup_ratio < 1, "warmup_ratio must be in [0, 1), got {warmup_ratio}"),
    (lambda c: 0 < c.layer_lr_decay <= 1, "layer_lr_decay must be in (0, 1], got {layer_lr_decay}"),
    (lambda c: 0 <= c.dropout < 1, "dropout must be in [0, 1), got {dropout}"),
    (lambda c: 0 <= c.label_smoothing < 1, "label_smoothing must be in [0, 1), got {label_smoothing}"),
    (lambda c: c.adversarial == "none" or (c.adv_epsilon > 0 and c.adv_steps >= 1),
     "adv_epsilon must be > 0 and adv_steps >= 1"),
    (lambda c: not (c.logit_adjustment and c.multi_label), "logit_adjustment is for single-label data"),
    (lambda c: c.adversarial == "none" or not c.freeze_embeddings,
     "--adversarial perturbs the word embeddings: it cannot be combined with frozen embeddings"),
)


@dataclass
class TrainConfig:
    """Settings for fine-tuning a classifier. Defaults are tuned for a 2-core CPU.

    Mode fields (``head``, ``blend``, ``optimizer``...) accept their enum from
    :mod:`lmworks.modes` or its string value and always hold the enum member after
    construction; a misspelt mode is a :class:`ConfigError` naming the choices.

    Attributes
    ----------
    model:
        Encoder name (``minilm``, ``mpnet``), a checkpoint directory, or ``tfidf``.
    head:
        ``mean`` (mean pooling + linear, default) or ``cls`` (stock transformers head).
    epochs:
        Passes over the training data.
    max_steps:
        Train for exactly this many optimiser steps instead (0: ``epochs`` decides). A
        federated round uses it so that every client takes the same number of steps:
        with a share of an epoch instead, a client with 4x the rows would take 4x the
        steps *and* get 4x the weight in the average.
    batch_size:
        Texts per optimiser step (before gradient accumulation).
    lr:
        Peak learning rate of the encoder (AdamW).
    head_lr_multiplier:
        The freshly initialised head learns this many times faster than the encoder,
        so it catches up with a pretrained body within the first few hundred steps.
    layer_lr_decay:
        Layer-wise learning-rate decay: the top encoder layer learns at ``lr``, each
        layer below at ``layer_lr_decay`` times the one above, the embeddings least.
        Lower layers hold general language knowledge worth keeping; 1.0 disables it.
    weight_decay:
        AdamW weight decay (not applied to biases and LayerNorm weights).
    warmup_ratio:
        Fraction of the optimiser steps spent warming the learning rate up linearly
        from 0; it then decays linearly to 0.
    max_grad_norm:
        Gradients are clipped to this global L2 norm (0 disables clipping).
    grad_accum_steps:
        Batches whose gradients are summed before each optimiser step.
    max_length:
        Longer texts are truncated to this many tokens (and counted in a warning).
    dropout:
        Dropout before the head (``mean`` head only).
    label_smoothing:
        Train towards ``1 - x`` on the true class and ``x / K`` spread over all K classes
        (multi-label: each label's 0/1 target moves ``x / 2`` towards 0.5), so the model
        stops pushing logits apart once it is confident (Szegedy et al. 2016). 0 disables it.
    class_weights:
        ``none`` or ``balanced``: weigh the loss by inverse class frequency.
    blend:
        ``tfidf`` averages the encoder's probabilities with a TF-IDF model's, with a
        weight chosen on the dev data (0 keeps the encoder alone); ``none`` never
        blends; ``auto`` (default) blends unless the stock ``cls`` head was asked for,
        whose point is a directory that plain transformers reproduces exactly.
    multi_label:
        Each text may have any number of labels (sigmoid + BCE, thresholds per label).
    eval_fraction:
        Share of the training data held out for early stopping when no eval data is
        given; 0 trains for all epochs and keeps the last weights.
    eval_every:
        Evaluate on the dev set every this many optimiser steps; 0 means once per epoch.
    patience:
        Stop after this many evaluations without a better dev macro-F1 (0 = never).
    seed:
        Seeds Python, NumPy and torch; two runs with the same seed are identical.
    num_threads:
        Torch intra-op threads; ``None`` uses the CPUs this process may run on.
    log_every:
        Write a training-loss line to the metrics log every this many steps.
    logit_adjustment:
        Train against the training data's label prior: the loss sees ``logits + log(prior)``
        (Menon et al. 2021), so the model's own logits score the evidence as if the classes
        were balanced. Federated clients use it (FedLC, Zhang et al. 2022): each client's
        rows have their own label mix, and without it every client pulls the shared model
        towards its own majority class. Single-label only.
    optimizer:
        ``adamw`` (default) or ``sgd`` (momentum 0.9, for which ``lr`` is typically
        100-1000x larger). Federated clients use SGD: Adam moves every weight by about
        ``lr`` per step however small its gradient, so a client whose rows are nearly all
        one class keeps pushing the shared model as hard as one with informative data;
        SGD's steps shrink with the client's loss, which is what FedAvg assumes.
    freeze_embeddings:
        Keep the pretrained word embeddings fixed. Words seen in training then stay
        in the same space as words only seen at prediction time, and the optimiser
        skips half of MiniLM's parameters (its vocabulary matrix), so steps are cheaper.
    adversarial, adv_epsilon, adv_steps, adv_norm, adv_loss:
        ``"fgm"`` or ``"pgd"`` perturbs the word embeddings along the loss gradient
        (radius ``adv_epsilon``; PGD in ``adv_steps`` steps) and trains on the
        perturbed loss too (:mod:`lmworks.training.adversarial`). By default
        (``adv_norm="example"``) the radius is an L2 norm per text, over its looked-up
        token embeddings; ``"batch"`` measures it over the whole batch's embedding-matrix
        gradient instead. ``adv_loss="consistency"`` trains the perturbed text towards
        the clean prediction rather than its label. The defaults (FGM-style step,
        per-text radius 0.05, label loss) were chosen on Rotten Tomatoes' dev split among
        batch 0.3, per-text 0.05/0.1/0.2 and consistency 0.2: they gained the most accuracy
        under ``lmworks robustness``' perturbations without costing clean accuracy. The 1.0
        of common (batch) FGM recipes cost 6.5 clean points there (``docs/research-log/benchmarks-history.md``).
    few_shot, few_shot_below:
        ``"auto"`` (default) fits an encoder with the few-shot recipe
        (:mod:`lmworks.backends.fewshot`: a contrastive stage, then a logistic-regression head) when
        the training data has fewer than ``few_shot_below`` labels per class on average, the
        crossover ``bench/fewshot.py`` measured; ``"on"`` and ``"off"`` force it. The choice and
        why are recorded in ``lmworks.json`` (``train_info.few_shot``).
    """

    model: str = "minilm"
    head: Pooling | str = Pooling.MEAN
    epochs: float = 2.0
    max_steps: int = 0
    batch_size: int = 32
    lr: float = 1e-4
    head_lr_multiplier: float = 10.0
    layer_lr_decay: float = 1.0
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    max_grad_norm: float = 1.0
    grad_accum_steps: int = 1
    max_length: int = 128
    dropout: float = 0.1
    label_smoothing: float = 0.0
    class_weights: ClassWeighting | str = ClassWeighting.NONE
    blend: BlendMode | str = BlendMode.AUTO
    multi_label: bool = False
    eval_fraction: float = 0.1
    eval_every: int = 0
    patience: int = 2
    seed: int = 42
    num_threads: int | None = None
    log_every: int = 20
    logit_adjustment: bool = False
    optimizer: OptimizerKind | str = OptimizerKind.ADAMW
    freeze_embeddings: bool = False
    adversarial: Adversarial | str = Adversarial.NONE
    adv_epsilon: float = 0.05
    adv_steps: int = 3
    adv_norm: AdvNorm | str = AdvNorm.EXAMPLE
    adv_loss: AdvLoss | str = AdvLoss.LABEL
    few_shot: FewShot | str = FewShot.AUTO
    few_shot_below: int = FEW_SHOT_BELOW
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Parse the mode fields into their enums; raise :class:`ConfigError` for values that cannot work."""
        for name, mode in MODE_FIELDS.items():
            setattr(self, name, mode.parse(getattr(self, name)))
        check_field_types(self)
        check_rules(self, _RULES)

    def few_shot_reason(self, labels_per_class: float) -> str | None:
        """Why an encoder is fitted by the few-shot recipe at this many labels per class; ``None``: it is not.

        ``labels_per_class`` is the mean over classes; the reason is what ``lmworks.json`` records.
        """
        if self.model in ("tfidf",) or self.few_shot is FewShot.OFF:
            return None
        if self.few_shot is FewShot.ON:
            return "few_shot=on"
        if labels_per_class >= self.few_shot_below:
            return None
        if self.head is Pooling.CLS or self.blend is BlendMode.TFIDF:  # asked for what the recipe does not do
            return None
        return (f"{labels_per_class:.1f} labels per class < few_shot_below={self.few_shot_below}: below it the "
                "few-shot recipe (a contrastive stage, then a logistic-regression head) beat plain fine-tuning "
                "in bench/fewshot.py")

    def blend_with_tfidf(self) -> bool:
        """Resolve ``blend`` for this model and head."""
        if self.model == "tfidf" or self.blend is BlendMode.NONE:
            return False
        return self.blend is BlendMode.TFIDF or self.head is Pooling.MEAN

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (stored in ``lmworks.json``): modes as their string values."""
        return {k: v.value if isinstance(v, enum.Enum) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def of(cls, config: TrainConfig | None) -> TrainConfig:
        """``config``, or the defaults for ``None``; anything else is a :class:`ConfigError`."""
        if config is None:
            return cls()
        if not isinstance(config, cls):
            raise ConfigError(f"config must be a TrainConfig, got {type(config).__name__}")
        return config

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error, not silently dropped."""
        check_known_fields(cls, data, "training")
        return cls(**data)

    def replace(self, **changes: Any) -> TrainConfig:
        """Copy with some fields changed (validated like any construction; unknown names are an error).

        Unchanged values are the same objects as in ``self``, which is what lets
        scikit-learn's ``clone`` check that a :class:`~lmworks.TextClassifier` stores its
        parameters untouched.
        """
        check_known_fields(type(self), changes, "training")
        return dataclasses.replace(self, **changes)
