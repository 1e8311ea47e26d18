"""Loss construction, including class weighting for imbalanced data (pure functions)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

#: What the trainer calls: ``loss(logits, targets) -> scalar``.
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def balanced_class_weights(targets: np.ndarray, n_labels: int) -> np.ndarray:
    """``n / (k * count_c)`` per class, as scikit-learn's ``class_weight="balanced"``."""
    counts = np.bincount(np.asarray(targets, dtype=int), minlength=n_labels).astype(float)
    weights = np.where(counts > 0, len(targets) / (n_labels * np.maximum(counts, 1)), 0.0)
    return weights


def balanced_pos_weights(targets: np.ndarray, max_weight: float = 50.0) -> np.ndarray:
    """Per-label ``negatives / positives`` for BCE, capped so a rare label cannot explode."""
    targets = np.asarray(targets, dtype=float)
    pos = targets.sum(axis=0)
    neg = len(targets) - pos
    return np.clip(neg / np.maximum(pos, 1.0), 1.0 / max_weight, max_weight)


def make_loss(targets: np.ndarray, n_labels: int, *, multi_label: bool, balanced: bool,
              label_smoothing: float = 0.0) -> Loss:
    """Cross-entropy (single-label) or BCE-with-logits (multi-label), optionally balanced and smoothed."""
    if multi_label:
        pos_weight = torch.tensor(balanced_pos_weights(targets), dtype=torch.float32) if balanced else None
        bce = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
        if not label_smoothing:
            return bce
        return lambda logits, y: bce(logits, y * (1.0 - label_smoothing) + 0.5 * label_smoothing)
    weight = torch.tensor(balanced_class_weights(targets, n_labels), dtype=torch.float32) if balanced else None
    return nn.CrossEntropyLoss(weight=weight, label_smoothing=label_smoothing)


def log_prior(targets: np.ndarray, n_labels: int) -> np.ndarray:
    """Log of the add-one smoothed label frequencies (an unseen class gets a small, finite prior)."""
    counts = np.bincount(np.asarray(targets, dtype=int), minlength=n_labels).astype(float)
    return np.log((counts + 1.0) / (counts.sum() + n_labels))


def logit_adjusted(loss: Loss, targets: np.ndarray, n_labels: int) -> Loss:
    """``loss(logits + log_prior, y)``: logit-adjusted training (Menon et al. 2021)."""
    offset = torch.tensor(log_prior(targets, n_labels), dtype=torch.float32)
    return lambda logits, y: loss(logits + offset, y)


def distillation_loss(hard_loss: Loss, *, alpha: float, temperature: float) -> Loss:
    """Knowledge distillation (Hinton et al. 2015) over packed targets.

    The targets of a batch are ``[hard label, teacher log-probabilities...]`` per row
    (hard label ``-1`` where a row has none, such as extra unlabelled text). The loss is
    ``alpha * hard_loss(labelled rows) + (1 - alpha) * T^2 * KL(teacher_T || student_T)``,
    both distributions softened by the temperature ``T``; the ``T^2`` keeps the soft
    term's gradients on the scale of the hard term's whatever the temperature.
    """
    import torch.nn.functional as F

    def loss(logits: torch.Tensor, packed: torch.Tensor) -> torch.Tensor:
        hard, teacher = packed[:, 0].long(), packed[:, 1:]
        labelled = hard >= 0
        hard_term = hard_loss(logits[labelled], hard[labelled]) if bool(labelled.any()) else logits.sum() * 0.0
        soft = F.kl_div(torch.log_softmax(logits / temperature, -1), torch.log_softmax(teacher / temperature, -1),
                        log_target=True, reduction="batchmean")
        return alpha * hard_term + (1 - alpha) * temperature ** 2 * soft

    return loss


def pack_targets(hard: np.ndarray, teacher_proba: np.ndarray) -> torch.Tensor:
    """``[hard label, log teacher probability per class]`` per row, as :func:`distillation_loss` reads them."""
    logp = np.log(np.clip(np.asarray(teacher_proba, dtype=np.float64), 1e-12, 1.0))
    return torch.as_tensor(np.concatenate([np.asarray(hard, dtype=np.float64)[:, None], logp], axis=1),
                           dtype=torch.float32)
