"""Batch scoring on Ray Data and Spark, run on local instances: same answers as the local Predictor."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import make_sentiment

pytestmark = pytest.mark.processes


def parts(folder: Path, n: int, seed: int, n_parts: int = 2) -> pd.DataFrame:
    """``n`` rows with an ``id`` column, written as ``n_parts`` CSV part files in ``folder``."""
    texts, labels = make_sentiment(n, seed=seed)
    frame = pd.DataFrame({"id": range(n), "text": texts, "label": labels})
    folder.mkdir(parents=True, exist_ok=True)
    for i, rows in enumerate(np.array_split(np.arange(n), n_parts)):
        frame.iloc[rows].to_csv(folder / f"part-{i}.csv", index=False)
    return frame


def read_output(folder: Path) -> pd.DataFrame:
    files = sorted(folder.glob("*.parquet"))
    assert files, f"no part files in {folder}"
    return pd.concat([pd.read_parquet(f) for f in files]).astype({"id": int}).sort_values("id")


@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_output_equals_local_predict_row_for_row(ray_instance, tiny_model_dir, tmp_path):
    from lmworks.cli import main

    frame = parts(tmp_path / "in", 300, seed=81, n_parts=3)
    assert main(["predict", str(tiny_model_dir), str(tmp_path / "in"), "--engine", "ray", "--actors", "2",
                 "--threads-per-actor", "1", "--chunk-size", "64", "--output", str(tmp_path / "out"),
                 "--quiet"]) == 0
    frame.to_csv(tmp_path / "all.csv", index=False)
    assert main(["predict", str(tiny_model_dir), str(tmp_path / "all.csv"), "--output", str(tmp_path / "local.csv"),
                 "--quiet"]) == 0
    ray_out, local = read_output(tmp_path / "out"), pd.read_csv(tmp_path / "local.csv")
    assert list(ray_out["id"]) == list(range(300))  # every row once
    assert list(ray_out["label"]) == list(local["label"]) and list(ray_out["label_input"]) == list(frame["label"])
    np.testing.assert_allclose(ray_out["prob_pos"], local["prob_pos"], atol=1e-5)
    assert not list(tmp_path.glob(".out.*"))  # no staging or old folder left beside it


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_both_engines_write_the_same_columns_and_types(ray_instance, tmp_path, fmt):
    """A model trained on a label column called `score`, a file with an integer `row_id`: one schema."""
    import pyarrow.parquet as pq

    from lmworks.cli import main

    texts, labels = make_sentiment(120, seed=84)
    frame = pd.DataFrame({"row_id": range(1000, 1120), "text": texts, "score": labels})
    frame.to_csv(tmp_path / "train.csv", index=False)
    assert main(["train", str(tmp_path / "train.csv"), "--label-column", "score", "--model", "tfidf",
                 "--output", str(tmp_path / "m"), "--quiet"]) == 0
    data = tmp_path / f"in.{fmt}"
    frame.to_parquet(data) if fmt == "parquet" else frame.to_csv(data, index=False)
    assert main(["predict", str(tmp_path / "m"), str(data), "--output", str(tmp_path / "local.parquet"),
                 "--quiet"]) == 0
    assert main(["predict", str(tmp_path / "m"), str(data), "--engine", "ray", "--actors", "1",
                 "--output", str(tmp_path / "ray"), "--quiet"]) == 0
    local = pd.read_parquet(tmp_path / "local.parquet")
    ray_out = pd.concat([pd.read_parquet(f) for f in sorted((tmp_path / "ray").glob("*.parquet"))])
    ray_out = ray_out.sort_values("row_id", key=lambda c: c.astype(int)).reset_index(drop=True)
    assert list(ray_out.columns) == list(local.columns) == ["row_id", "text", "score", "label", "prob_neg",
                                                            "prob_pos"]
    # The files' own (Arrow) schemas: the same type per column (Ray writes large_string for string).
    schemas = [pq.read_schema(f) for f in [tmp_path / "local.parquet", *sorted((tmp_path / "ray").glob("*.parquet"))]]
    types = [{f.name: str(f.type).replace("large_", "") for f in schema} for schema in schemas]
    assert all(t == types[0] for t in types), types
    # Parquet keeps the integer; CSV cells are strings in both engines (so "007" stays "007").
    assert types[0]["row_id"] == ("int64" if fmt == "parquet" else "string")
    pd.testing.assert_frame_equal(ray_out.drop(columns=["prob_neg", "prob_pos"]),
                                  local.drop(columns=["prob_neg", "prob_pos"]), check_dtype=False)
    np.testing.assert_allclose(ray_out["prob_pos"], local["prob_pos"], atol=1e-6)


def test_ray_scores_a_multi_label_tfidf_model_from_a_folder_of_ndjson_parts(ray_instance, tmp_path):
    from lmworks import TextClassifier
    from lmworks.inference.inputs import ModelInputs
    from lmworks.integrations.ray_data import RayConfig, predict_ray

    texts = [f"{a} {b} item {i}" for i in range(60) for a, b in [("red", "round"), ("blue", "square")]]
    labels = [["red", "round"] if "red" in t else ["blue", "square"] for t in texts]
    model = TextClassifier("tfidf", multi_label=True).fit(texts, labels, progress=False).save(tmp_path / "m")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "_SUCCESS").touch()  # what Spark leaves beside its parts: skipped
    for i in range(2):  # .ndjson: a JSONL suffix that Ray's own reader would filter out
        pd.DataFrame({"id": range(i * 60, i * 60 + 60), "text": texts[i * 60:(i + 1) * 60]}).to_json(
            tmp_path / "in" / f"p{i}.ndjson", orient="records", lines=True)
    rows = predict_ray(model, tmp_path / "in", tmp_path / "out", inputs=ModelInputs(),
                       config=RayConfig(actors=2, threads_per_actor=1, batch_size=16, progress=False))
    out = read_output(tmp_path / "out")
    assert rows == 120 and list(out["id"]) == list(range(120))
    assert [sorted(x) for x in out["label"]] == [sorted(y) for y in labels]


def _busy_actor_pids() -> list[int]:
    """Ray actors of the scoring pool now running a batch (Ray shows the method in the process title)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"MapBatches(PredictorActor)" in title and b".submit" in title:
                pids.append(int(entry.name))
    return pids


def test_a_killed_ray_actor_still_yields_complete_correct_output(ray_instance, tiny_model_dir, tmp_path):
    from lmworks.inference.inputs import ModelInputs
    from lmworks.integrations.ray_data import RayConfig, predict_ray

    n = 2400
    frame = parts(tmp_path / "in", n, seed=82, n_parts=4)
    killed: list[int] = []

    def kill_one_actor_mid_job() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            pids = _busy_actor_pids()
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_one_actor_mid_job, daemon=True)
    killer.start()
    rows = predict_ray(tiny_model_dir, tmp_path / "in", tmp_path / "out", inputs=ModelInputs(),
                       config=RayConfig(actors=2, threads_per_actor=1, batch_size=8, progress=False))
    killer.join(5)
    assert killed, "no actor was killed (the job ended first?)"
    out = read_output(tmp_path / "out")
    assert rows == n and list(out["id"]) == list(range(n))  # none lost, none twice
    from lmworks import TextClassifier

    expected = TextClassifier.load(tiny_model_dir).predict_proba(list(frame["text"]))
    np.testing.assert_allclose(out["prob_pos"].to_numpy(), expected[:, 1], atol=1e-5)


def test_spark_udf_equals_the_predictor(tiny_model_dir, monkeypatch):
    pytest.importorskip("pyspark")
    import shutil
    import sys

    if shutil.which("java") is None:
        pytest.skip("Spark needs a Java runtime (Debian openjdk-17-jre-headless; scripts/system-deps.sh)")
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)  # the executors' Python: this one, with lmworks
    from pyspark.sql import SparkSession

    import lmworks
    from lmworks.integrations.spark import classify_udf

    texts, _ = make_sentiment(90, seed=83)
    sigint = signal.getsignal(signal.SIGINT)  # SparkContext installs its own Ctrl-C handler
    spark = (SparkSession.builder.master("local[2]").appName("lmworks-test")
             .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2").getOrCreate())
    try:
        df = spark.createDataFrame(pd.DataFrame({"id": range(90), "text": texts})).repartition(3)
        scored = df.withColumn("pred", classify_udf(tiny_model_dir, batch_size=16)("text")).select("id", "pred.*")
        rows = scored.toPandas().sort_values("id")
        holes = spark.createDataFrame(pd.DataFrame({"id": [0, 1, 2], "text": ["fine", None, "   "]}))
        with pytest.raises(Exception, match="null or empty text"):  # refused as predict refuses them
            holes.withColumn("pred", classify_udf(tiny_model_dir)("text")).select("pred.*").toPandas()
    finally:
        spark.stop()
        signal.signal(signal.SIGINT, sigint)
    predictor = lmworks.load(tiny_model_dir)
    assert list(rows["id"]) == list(range(90))
    assert list(rows["label"]) == predictor.predict(texts)
    np.testing.assert_allclose(rows[["prob_neg", "prob_pos"]].to_numpy(), predictor.predict_proba(texts), atol=1e-5)


def test_ray_bad_row_names_file_and_field_and_writes_nothing(ray_instance, tiny_model_dir, tmp_path):
    from lmworks.errors import DataError
    from lmworks.inference.inputs import ModelInputs
    from lmworks.integrations.ray_data import RayConfig, predict_ray

    frame = parts(tmp_path / "in", 40, seed=84, n_parts=2)
    broken = pd.read_csv(tmp_path / "in" / "part-1.csv")
    broken.loc[3, "text"] = "   "
    broken.to_csv(tmp_path / "in" / "part-1.csv", index=False)
    with pytest.raises(DataError, match=r"part-1\.csv: the row with id='23', .*column 'text' is empty"):
        predict_ray(tiny_model_dir, tmp_path / "in", tmp_path / "out", inputs=ModelInputs(),
                    config=RayConfig(actors=1, threads_per_actor=1, progress=False))
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))
    assert len(frame) == 40
