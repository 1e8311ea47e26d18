"""Baselines evaluated in the same run as the text recommender.

* :class:`Popularity`: training positives per item; the floor any recommender must clear.
* :class:`ImplicitALS`: the `implicit <https://github.com/benfred/implicit>`_ library's
  alternating least squares for implicit feedback (Hu, Koren & Volinsky 2008), a
  well-kept ID-based model. Its hyper-parameters are chosen on the validation set
  with a small grid, so the comparison is with a tuned baseline, not a straw man.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..runtime import blas_threads, usable_cpus
from .metrics import evaluate_ranking
from .split import Dataset

LOGGER = logging.getLogger("lmworks")


class Popularity:
    """Score = number of training positives of the item (same list for everyone)."""

    name = "popularity"

    def fit(self, data: Dataset) -> Popularity:
        """Count positives per item."""
        self.counts_ = np.asarray(data.positive_matrix().sum(axis=0)).ravel().astype(np.float64)
        return self

    def scores(self, users: np.ndarray) -> np.ndarray:
        """The counts, once per user."""
        return np.broadcast_to(self.counts_, (len(users), self.counts_.size)).copy()


def require_implicit():
    """Import ``implicit`` or say how to install it."""
    try:
        import implicit  # noqa: F401
        from implicit.als import AlternatingLeastSquares
    except ImportError as err:
        raise ConfigError("the ALS baseline needs the 'implicit' package: pip install 'lmworks[recommend]'") from err
    return AlternatingLeastSquares


class ImplicitALS:
    """``implicit.als.AlternatingLeastSquares`` on the training positives, confidence ``1 + alpha``."""

    name = "implicit-als"

    def __init__(self, factors: int = 64, regularization: float = 0.1, alpha: float = 10.0,
                 iterations: int = 20, seed: int = 0) -> None:
        self.params: dict[str, Any] = {"factors": factors, "regularization": regularization, "alpha": alpha,
                       "iterations": iterations}
        self.seed = seed

    def fit(self, data: Dataset) -> ImplicitALS:
        """Factorise the users x items positive matrix."""
        als_class = require_implicit()
        # implicit parallelises itself over usable_cpus() threads; a BLAS pool inside each of them
        # slows it down, and implicit warns about it when the model is built: limit BLAS for both.
        with blas_threads(1):
            model = als_class(factors=self.params["factors"], regularization=self.params["regularization"],
                              alpha=self.params["alpha"], iterations=self.params["iterations"],
                              random_state=self.seed, num_threads=usable_cpus(), use_gpu=False)
            model.fit(data.positive_matrix().astype(np.float32), show_progress=False)
        self.user_factors_ = np.asarray(model.user_factors)
        self.item_factors_ = np.asarray(model.item_factors)
        return self

    def scores(self, users: np.ndarray) -> np.ndarray:
        """User factors dot item factors."""
        return self.user_factors_[users] @ self.item_factors_.T

    @classmethod
    def tuned(cls, data: Dataset, *, k: int = 10, seed: int = 0) -> ImplicitALS:
        """Grid over factors, regularisation and alpha; keep the best validation NDCG@k."""
        if not data.valid.relevant:
            return cls(seed=seed).fit(data)
        seen = data.seen_matrix()
        best, best_score = None, -1.0
        for factors, reg, alpha in itertools.product((32, 64, 128), (0.01, 0.1, 1.0), (1.0, 10.0, 40.0)):
            model = cls(factors, reg, alpha, seed=seed).fit(data)
            score = evaluate_ranking(model.scores, data.valid, seen, k=k)[f"ndcg@{k}"]
            LOGGER.debug("ALS %s: valid ndcg@%d %.4f", model.params, k, score)
            if score > best_score:
                best, best_score = model, score
        assert best is not None
        LOGGER.info("ALS baseline: chose %s (valid ndcg@%d %.4f)", best.params, k, best_score)
        return best



def baseline_metrics(data: Dataset, *, k: int, seed: int) -> dict[str, dict[str, Any]]:
    """Popularity and validation-tuned implicit ALS on the test set, validation interactions as history.

    ALS is tuned on the validation set, then refitted with the validation interactions
    added, as the text recommender sees them at test time.
    """
    current = data.with_valid()
    seen = current.seen_matrix()
    als = ImplicitALS.tuned(data, k=k, seed=seed)
    refit = ImplicitALS(**als.params, seed=seed).fit(current)
    return {
        "popularity": evaluate_ranking(Popularity().fit(current).scores, data.test, seen, k=k),
        "implicit-als": {**evaluate_ranking(refit.scores, data.test, seen, k=k), "params": als.params},
    }
