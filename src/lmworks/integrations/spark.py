"""Batch scoring on Spark: a column function that classifies text with an lmworks model directory.

Built on :func:`pyspark.ml.functions.predict_batch_udf`, Spark's own answer to model
inference in a UDF: rows reach Python as Arrow batches of ``batch_size``, and the model
is loaded once per Python worker process (Spark reuses workers), not once per batch or
row. The result is a struct column with the predicted ``label`` and one
``prob_<class>`` field per class, the same names as ``lmworks predict`` writes.

    from lmworks.integrations.spark import classify_udf
    classify = classify_udf("/models/rt-minilm-int8")
    scored = df.withColumn("pred", classify("text")).select("id", "pred.*")

The model directory must be readable at the same path on every executor (a shared file
system, or shipped with ``spark-submit --archives``), and lmworks installed in the
executors' Python. ``docs/scaling.md`` has a complete ``spark-submit`` example.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from ..model_dir import read_meta


def result_schema(labels: list[str], *, multi_label: bool) -> Any:
    """The struct the UDF returns: ``label`` (a list of labels for multi-label models), ``prob_<class>``..."""
    from pyspark.sql.types import ArrayType, FloatType, StringType, StructField, StructType

    label_type = ArrayType(StringType()) if multi_label else StringType()
    return StructType([StructField("label", label_type), *(StructField(f"prob_{n}", FloatType()) for n in labels)])


def classify_udf(model_dir: str | Path, *, batch_size: int = 1024, threads: int | None = None) -> Any:
    """A Spark column function: ``classify_udf(dir)("text_column")`` -> struct of label and probabilities.

    ``threads`` is the inference threads per Python worker (default 1: Spark runs one
    worker per task slot, so the executor's cores are already shared out by tasks).
    """
    try:
        from pyspark.ml.functions import predict_batch_udf
    except ImportError as err:
        raise ConfigError("Spark scoring needs PySpark: pip install 'lmworks[spark]'") from err
    model_dir = str(Path(model_dir).resolve())
    meta = read_meta(model_dir)  # fail on the driver, before any executor tries
    if meta.get("multimodal"):
        raise ConfigError(f"{model_dir}: classify_udf takes one text column; this model reads several columns")
    labels, multi_label = list(meta["labels"]), meta.get("task") == "multi_label"
    fields = [f"prob_{n}" for n in labels]
    n_threads = threads or 1

    def make_predict_fn():  # runs on the executor, once per Python worker
        from lmworks.classifier import TextClassifier

        classifier = TextClassifier.load(model_dir, num_threads=n_threads)

        def predict(texts: np.ndarray) -> list[dict[str, Any]]:
            missing = sum(t is None or not str(t).strip() for t in texts)
            if missing:  # as predict refuses an empty cell: a guess for no text would look like an answer
                raise DataError(f"classify_udf({model_dir}): {missing} null or empty text(s) in a batch of "
                                f"{len(texts)}; filter them out first, e.g. df.where(trim(col('text')) != '')")
            proba = classifier.predict_proba([str(t) for t in texts])
            decided = classifier.decide(proba)
            return [{"label": label, **{f: float(p) for f, p in zip(fields, row)}}
                    for label, row in zip(decided, proba)]

        return predict

    return predict_batch_udf(make_predict_fn, return_type=result_schema(labels, multi_label=multi_label),
                             batch_size=batch_size)
