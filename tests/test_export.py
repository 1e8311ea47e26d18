"""ONNX export (fp32 and int8) and the Predictor that runs either runtime."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

import lmworks
from conftest import make_sentiment
from lmworks.cli import main
from lmworks.errors import ConfigError, ModelDirError
from lmworks.export import ExportOptions, export_onnx

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def heldout(tmp_path_factory):
    texts, labels = make_sentiment(80, seed=7)
    path = tmp_path_factory.mktemp("heldout") / "test.csv"
    import pandas as pd

    pd.DataFrame({"text": texts, "label": labels}).to_csv(path, index=False)
    return path, texts, labels


@pytest.fixture(scope="module")
def onnx_fp32(tiny_model_dir, tmp_path_factory, heldout):
    out = tmp_path_factory.mktemp("onnx") / "fp32"
    data = lmworks.read_dataset(heldout[0])
    report = export_onnx(tiny_model_dir, out, ExportOptions(), data)
    return out, report


def test_fp32_export_reproduces_pytorch(tiny_model_dir, onnx_fp32, heldout):
    out, report = onnx_fp32
    _, texts, _ = heldout
    torch_model, onnx_model = lmworks.load(tiny_model_dir), lmworks.load(out)
    assert torch_model.runtime == "transformer" and onnx_model.runtime == "onnx"
    np.testing.assert_allclose(onnx_model.predict_proba(texts), torch_model.predict_proba(texts), atol=1e-4)
    assert onnx_model.predict(texts) == torch_model.predict(texts)
    assert onnx_model.labels == torch_model.labels
    assert report["probe_max_abs_logit_diff_fp32"] < 1e-3
    assert report["accuracy_drop_points"] == pytest.approx(0.0, abs=1e-9)
    meta = json.loads((out / "lmworks.json").read_text())
    assert meta["backend"] == "onnx" and meta["export_check"]["within_tolerance"] is True
    assert "model.onnx" in meta["files"] and not (out / "model.fp32.onnx").exists()


def test_int8_export_via_cli_reports_accuracy_and_evaluates(tiny_model_dir, tmp_path, heldout, capsys):
    out = tmp_path / "int8"
    code = main(["export", str(tiny_model_dir), "--format", "onnx", "--quantize", "int8", "--output", str(out),
                 "--eval", str(heldout[0])])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert {"accuracy_pytorch", "accuracy_onnx", "accuracy_drop_points", "prediction_agreement"} <= set(report)
    assert (out / "model.onnx").stat().st_size < (tiny_model_dir / "model.safetensors").stat().st_size
    assert main(["evaluate", str(out), str(heldout[0]), "--json", str(tmp_path / "m.json")]) == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["accuracy"] == pytest.approx(report["accuracy_onnx"])


def test_int8_search_keeps_sensitive_nodes_in_fp32_until_within_the_budget(tiny_model_dir, tmp_path, heldout,
                                                                           caplog, capsys):
    """A budget no full-int8 graph meets forces fp32 nodes; the choice and the search are recorded."""
    data = lmworks.read_dataset(heldout[0])
    report = export_onnx(tiny_model_dir, tmp_path / "tight", ExportOptions(quantize="int8", max_accuracy_drop=-0.01),
                         data)
    search = report["int8_search"]
    assert search["most_sensitive"] and all(score >= 0 for _, score in search["most_sensitive"])
    scores = [score for _, score in search["most_sensitive"]]
    assert scores == sorted(scores, reverse=True)
    assert [t["kept_fp32"] for t in search["tried"]] == sorted(t["kept_fp32"] for t in search["tried"])
    meta = json.loads((tmp_path / "tight" / "lmworks.json").read_text())
    assert meta["onnx"]["kept_fp32"] and meta["export_check"]["int8_search"] == search
    # a loose budget keeps the fastest variant: every node in int8
    loose = export_onnx(tiny_model_dir, tmp_path / "loose", ExportOptions(quantize="int8", max_accuracy_drop=100.0),
                        data)
    assert loose["int8_search"]["changed_pct"] <= 100.0
    assert loose["int8_search"]["kept_fp32"] == 0 and loose["within_tolerance"]
    kept = json.loads((tmp_path / "loose" / "lmworks.json").read_text())["onnx"]["kept_fp32"]
    assert kept == []
    # a named node stays fp32 without a search, and the graph still loads and predicts
    node = search["most_sensitive"][0][0]
    export_onnx(tiny_model_dir, tmp_path / "named", ExportOptions(quantize="int8", keep_fp32=(node,)))
    assert json.loads((tmp_path / "named" / "lmworks.json").read_text())["onnx"]["kept_fp32"] == [node]
    assert lmworks.load(tmp_path / "named").predict(["a great film"])[0] in ("neg", "pos")
    # without eval data the feed-forward down-projections stay fp32, with a warning; "none" quantises every node
    capsys.readouterr()
    assert main(["export", str(tiny_model_dir), "--quantize", "int8", "--output", str(tmp_path / "plain")]) == 0
    assert "warning: int8 without --eval" in capsys.readouterr().err
    plain = json.loads((tmp_path / "plain" / "lmworks.json").read_text())["onnx"]["kept_fp32"]
    assert len(plain) == 2 and all(n.endswith("/output/dense/MatMul") and "attention" not in n for n in plain)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lmworks"):
        assert main(["export", str(tiny_model_dir), "--quantize", "int8", "--keep-fp32", "none", "--output",
                     str(tmp_path / "all")]) == 0
    assert "int8 without --eval" not in caplog.text
    assert json.loads((tmp_path / "all" / "lmworks.json").read_text())["onnx"]["kept_fp32"] == []


def test_int8_search_counts_one_standard_error_of_the_changed_predictions(onnx_fp32, tmp_path):
    """A count a text or two under the line by luck does not pass: count + sqrt(count) must be within it."""
    from lmworks.quantize import Variant, choose_variant, quantizable_nodes

    graph = onnx_fp32[0] / "model.onnx"
    ranked = [(name, 1.0) for name in quantizable_nodes(graph)]
    assert len(ranked) >= 4

    def search(changed_counts, texts=1275):
        counts = iter(changed_counts)
        return choose_variant(graph, ranked, lambda path: Variant([], 0.0, 1.0 - next(counts) / texts, 0.1,
                                                                  texts=texts), max_drop=0.5, work=tmp_path)

    # 0.5 % of 1,275 texts is 6.4: 6 changed (6 + 2.4) fails, 4 changed (4 + 2) passes
    chosen = search([14, 10, 6, 4, 3])
    assert len(chosen.kept_fp32) == 3 and chosen.path is not None and chosen.path.name == "int8-keep3.onnx"
    assert [t["kept_fp32"] for t in chosen.notes["tried"]] == [0, 1, 2, 3]
    assert chosen.notes["tried"][2]["changed_pct"] < 0.5 < chosen.notes["tried"][2]["changed_upper_pct"]
    # 0.39 % changed fails on 1,275 texts (5 + 2.2) and passes on ten times as many (50 + 7.1 of 63.75)
    assert len(search([14, 10, 5, 4]).kept_fp32) == 3
    assert search([140, 100, 50], texts=12750).kept_fp32 == [name for name, _ in ranked[:2]]
    # never within it: the fp32 graph itself
    assert search([7] * len(ranked) + [0]).path == graph
    with pytest.raises(ValueError, match="number of texts"):
        _ = Variant([], 0.0, 1.0, 0.1).changed_upper_pct


def test_accuracy_loss_is_loud_and_strict_refuses(tiny_model_dir, tmp_path, heldout, caplog, capsys):
    with caplog.at_level(logging.WARNING, logger="lmworks"):
        report = export_onnx(tiny_model_dir, tmp_path / "a", ExportOptions(max_accuracy_drop=-1.0),
                             lmworks.read_dataset(heldout[0]))
    assert report["within_tolerance"] is False
    assert "EXPORT LOSES ACCURACY" in caplog.text
    code = main(["export", str(tiny_model_dir), "--output", str(tmp_path / "b"), "--eval", str(heldout[0]),
                 "--max-accuracy-drop", "-1", "--strict"])
    assert code == 2 and not (tmp_path / "b").exists()


def test_export_refuses_tfidf_and_corrupt_graph_is_refused(tmp_path, onnx_fp32):
    from lmworks import TextClassifier

    texts, labels = make_sentiment(60, seed=3)
    tfidf_dir = TextClassifier("tfidf").fit(texts, labels).save(tmp_path / "tfidf")
    with pytest.raises(ConfigError, match="cannot be exported"):
        export_onnx(tfidf_dir, tmp_path / "out")
    assert not (tmp_path / "out").exists()

    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(onnx_fp32[0], broken)
    with open(broken / "model.onnx", "r+b") as fh:
        fh.seek(100)
        fh.write(b"\0" * 64)
    with pytest.raises(ModelDirError, match="checksum mismatch"):
        lmworks.load(broken)


def test_predictor_classify_flags_truncation(tiny_model_dir, caplog):
    predictor = lmworks.load(tiny_model_dir)
    long_text = "great " * 500
    with caplog.at_level(logging.WARNING, logger="lmworks"):
        out = predictor.classify(["a great film", long_text])
    assert [r["truncated"] for r in out] == [False, True]
    assert "truncated" in caplog.text
    assert set(out[0]["scores"]) == set(predictor.labels)
    assert abs(sum(out[0]["scores"].values()) - 1) < 1e-4
    info = predictor.describe()
    assert info["labels"] == predictor.labels and info["task"] == "single_label"


def test_multi_label_export_keeps_thresholds_and_label_lists(tiny_encoder, tiny_fast_options, tmp_path):
    from lmworks import TextClassifier

    base, _ = make_sentiment(240, seed=4)
    labels = [(["praise"] if any(w in t for w in ("great", "wonderful", "excellent")) else [])
              + (["story"] if "plot" in t else []) for t in base]
    clf = TextClassifier(str(tiny_encoder), multi_label=True, **{**tiny_fast_options, "epochs": 6})
    clf.fit(base[:200], labels[:200], progress=False)
    src = clf.save(tmp_path / "ml")
    export_onnx(src, tmp_path / "ml-onnx")
    exported, original = lmworks.load(tmp_path / "ml-onnx"), lmworks.load(src)
    assert exported.task == "multi_label"
    assert exported.predict(base[200:]) == original.predict(base[200:])
    out = exported.classify(base[200:203])
    assert all(isinstance(r["label"], list) for r in out)
    np.testing.assert_array_equal(exported.classifier.thresholds_, original.classifier.thresholds_)


def test_tfidf_model_serves_through_the_predictor(tmp_path):
    from lmworks import TextClassifier

    texts, labels = make_sentiment(80, seed=5)
    directory = TextClassifier("tfidf").fit(texts, labels).save(tmp_path / "tfidf")
    predictor = lmworks.load(directory)
    out = predictor.classify(["a great film", "boring plot"])
    assert [r["label"] for r in out] == predictor.predict(["a great film", "boring plot"])
    assert not any(r["truncated"] for r in out)
