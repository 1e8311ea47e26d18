"""TF-IDF + logistic regression: the baseline a user would try first.

Word 1-2 grams catch phrases; character 2-4 grams (within word boundaries) catch
morphology and make the baseline work for Chinese, which has no spaces. It trains
in seconds and is the yardstick every fine-tuned model is reported against.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelDirError
from ..modes import ClassWeighting
from ..training.config import TrainConfig
from .base import Backend, FitRun
from .tfidf_fast import MAX_TEXTS, FastTfidfScorer

PIPELINE_FILE = "model.joblib"


def tfidf_pipeline(config: TrainConfig) -> Any:
    """The TF-IDF features (word 1-2 grams + char 2-4 grams) and logistic regression, unfitted."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import FeatureUnion, make_pipeline

    features = FeatureUnion(
        [
            ("word", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, max_features=200_000)),
            ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True,
                                     min_df=2, max_features=200_000)),
        ]
    )
    balanced = "balanced" if config.class_weights is ClassWeighting.BALANCED else None
    clf = LogisticRegression(C=4.0, max_iter=2000, class_weight=balanced, random_state=config.seed)
    if config.multi_label:
        clf = OneVsRestClassifier(clf)
    return make_pipeline(features, clf)


class TfidfBackend(Backend):
    """scikit-learn pipeline behind the common backend interface."""

    name = "tfidf"

    def __init__(self) -> None:
        self.pipeline: Any = None
        self.multi_label = False
        self._fast: FastTfidfScorer | None = None  # set with the pipeline; None where its shape has none

    def fit(self, texts: Sequence[str], targets: np.ndarray, run: FitRun) -> dict[str, Any]:
        """Fit the pipeline (no epochs, no checkpoints: it takes seconds)."""
        import time

        self.multi_label = run.config.multi_label
        self.pipeline = tfidf_pipeline(run.config)
        start = time.perf_counter()
        self.pipeline.fit(list(texts), targets)
        seconds = time.perf_counter() - start
        self._fast = FastTfidfScorer.from_pipeline(self.pipeline)
        dev = run.score_fn(self.predict_proba(run.eval_texts))[1] if run.eval_texts and run.score_fn else None
        return {"train_seconds": round(seconds, 2),
                "samples_per_second": round(len(texts) / max(seconds, 1e-9), 2),
                "dev_metrics": dev, "interrupted": False}

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities from the logistic regression(s)."""
        if self.pipeline is None:
            raise RuntimeError("backend is not fitted")
        if len(texts) == 0:
            return np.zeros((0, len(self.pipeline.classes_)))
        if self._fast is not None and len(texts) <= MAX_TEXTS:
            return self._fast.predict_proba(list(texts))
        import sklearn

        # The pipeline was validated when it was fitted; re-validating its parameters and
        # re-checking finite inputs on every call is most of the cost of a one-text call
        # (the service's common case), so both checks are skipped here.
        with sklearn.config_context(skip_parameter_validation=True, assume_finite=True):
            return np.asarray(self.pipeline.predict_proba(list(texts)), dtype=np.float64)

    def describe(self) -> dict[str, Any]:
        """Nothing beyond what the classifier records: the pipeline is one pickled file."""
        return {}

    def save(self, directory: Path) -> None:
        """Pickle the pipeline with joblib (load only model dirs you trust)."""
        import joblib

        joblib.dump(self.pipeline, directory / PIPELINE_FILE)

    @classmethod
    def load(cls, directory: Path, meta: dict[str, Any]) -> TfidfBackend:
        """Unpickle (the model directory's checksums were verified before this is called)."""
        import joblib

        path = directory / PIPELINE_FILE
        if not path.is_file():
            raise ModelDirError(f"{directory}: {PIPELINE_FILE} is missing")
        backend = cls()
        backend.multi_label = meta.get("task") == "multi_label"
        try:
            backend.pipeline = joblib.load(path)
        except Exception as err:  # unpickling raises arbitrary types on a damaged file
            raise ModelDirError(f"{path}: cannot load ({type(err).__name__}: {err})") from err
        backend._fast = FastTfidfScorer.from_pipeline(backend.pipeline)
        return backend

