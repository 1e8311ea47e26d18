import json

import numpy as np
import pytest
import torch

from conftest import make_sentiment
from lmworks import DataError, ModelDirError, TextClassifier
from lmworks.errors import ConfigError


@pytest.fixture(scope="module")
def fitted(tiny_encoder, sentiment_data, tiny_fast_options, tmp_path_factory):
    (texts, labels), _ = sentiment_data
    clf = TextClassifier(str(tiny_encoder), blend="none", **tiny_fast_options).fit(texts, labels, progress=False)
    directory = clf.save(tmp_path_factory.mktemp("model") / "m")
    return clf, directory


def test_fit_learns_and_lowers_loss(fitted, sentiment_data):
    clf, _ = fitted
    losses = [r["loss"] for r in clf.train_info_["history"] if r["event"] == "train"]
    assert len(losses) >= 2
    assert losses[-1] < 0.7 * losses[0]
    (_, _), (test_texts, test_labels) = sentiment_data
    assert clf.evaluate(test_texts, test_labels)["accuracy"] >= 0.9  # held-out generated texts


def test_estimator_contract(tiny_encoder, tiny_fast_options):
    clf = TextClassifier(str(tiny_encoder), **tiny_fast_options)
    assert not hasattr(clf, "labels_")
    with pytest.raises(RuntimeError, match="not fitted"):
        clf.predict(["x"])
    with pytest.raises(ConfigError, match="unknown training option"):
        TextClassifier("minilm", epoch=3)
    with pytest.raises(ConfigError, match="unknown head 'max'"):
        TextClassifier("minilm", head="max")


def test_predict_proba_shape_and_order(fitted):
    clf, _ = fitted
    proba = clf.predict_proba(["a great film", "an awful film", "great"])
    assert proba.shape == (3, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert clf.predict(["a great film", "an awful film"]) == [clf.labels_[i] for i in proba[:2].argmax(1)]
    # Length-sorted batching must not reorder outputs.
    single = np.vstack([clf.predict_proba([t]) for t in ["a great film", "an awful film", "great"]])
    np.testing.assert_allclose(single, proba, atol=1e-5)


def test_save_load_roundtrip_identical(fitted):
    clf, directory = fitted
    again = TextClassifier.load(directory)
    texts, _ = make_sentiment(50, seed=9)
    np.testing.assert_array_equal(again.predict_proba(texts), clf.predict_proba(texts))
    assert again.labels_ == clf.labels_
    meta = json.loads((directory / "lmworks.json").read_text())
    assert meta["labels"] == clf.labels_ and meta["task"] == "single_label"
    assert meta["head"]["pooling"] == "mean" and "torch" in meta["versions"]
    assert meta["training"]["seed"] == 42 and meta["metrics"]["dev"]["n"] > 0
    config = json.loads((directory / "config.json").read_text())
    assert config["id2label"] == {"0": clf.labels_[0], "1": clf.labels_[1]}


def test_label_order_survives_and_mismatch_refused(fitted, tmp_path):
    import shutil

    _, directory = fitted
    copy = tmp_path / "m"
    shutil.copytree(directory, copy)
    config = json.loads((copy / "config.json").read_text())
    config["id2label"] = {"0": config["id2label"]["1"], "1": config["id2label"]["0"]}
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelDirError, match="id2label .* disagrees with lmworks.json labels"):
        TextClassifier.load(copy)


def test_corrupt_weights_refused(fitted, tmp_path):
    import shutil

    _, directory = fitted
    copy = tmp_path / "m"
    shutil.copytree(directory, copy)
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ModelDirError, match="model.safetensors: checksum mismatch"):
        TextClassifier.load(copy)
    (copy / "model.safetensors").write_bytes(b"garbage")
    meta = json.loads((copy / "lmworks.json").read_text())
    del meta["files"]["model.safetensors"]
    (copy / "lmworks.json").write_text(json.dumps(meta))
    with pytest.raises(ModelDirError, match="cannot read weights"):
        TextClassifier.load(copy)


def test_not_a_model_dir(tmp_path):
    with pytest.raises(ModelDirError, match="model directory not found"):
        TextClassifier.load(tmp_path / "missing")
    with pytest.raises(ModelDirError, match="lmworks.json is missing"):
        TextClassifier.load(tmp_path)
    (tmp_path / "lmworks.json").write_text("{not json")
    with pytest.raises(ModelDirError, match="corrupt"):
        TextClassifier.load(tmp_path)


def test_same_seed_identical_metrics(tiny_encoder, sentiment_data, tiny_fast_options):
    (texts, labels), (tt, tl) = sentiment_data
    runs = [
        TextClassifier(str(tiny_encoder), **{**tiny_fast_options, "epochs": 1}).fit(texts, labels, progress=False)
        for _ in range(2)
    ]
    assert runs[0].dev_metrics_ == runs[1].dev_metrics_
    np.testing.assert_array_equal(runs[0].predict_proba(tt), runs[1].predict_proba(tt))
    other = TextClassifier(str(tiny_encoder), **{**tiny_fast_options, "epochs": 1, "seed": 7}).fit(
        texts, labels, progress=False)
    assert not np.array_equal(other.predict_proba(tt), runs[0].predict_proba(tt))


def test_stock_head_matches_plain_transformers(tiny_encoder, sentiment_data, tiny_fast_options, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    (texts, labels), (tt, _) = sentiment_data
    clf = TextClassifier(str(tiny_encoder), head="cls", **{**tiny_fast_options, "epochs": 1})
    clf.fit(texts, labels, progress=False).save(tmp_path / "m")
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "m", local_files_only=True).eval()
    tok = AutoTokenizer.from_pretrained(tmp_path / "m")
    with torch.inference_mode():
        logits = model(**tok(tt, padding=True, truncation=True, max_length=32, return_tensors="pt")).logits
    ours = clf.predict_proba(tt)
    np.testing.assert_allclose(torch.softmax(logits, -1).numpy(), ours, atol=1e-5)
    assert [model.config.id2label[i] for i in logits.argmax(-1).tolist()] == clf.predict(tt)


def test_mean_head_runs_outside_lmworks(fitted):
    """The recipe recorded in lmworks.json reproduces lmworks' predictions."""
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    clf, directory = fitted
    enc = AutoModel.from_pretrained(directory, local_files_only=True).eval()
    tok = AutoTokenizer.from_pretrained(directory)
    sd = load_file(str(directory / "model.safetensors"))
    texts = ["a great film", "an awful movie and the plot was dull"]
    batch = tok(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        h = enc(**batch).last_hidden_state
    m = batch["attention_mask"].unsqueeze(-1).float()
    logits = ((h * m).sum(1) / m.sum(1)) @ sd["head.weight"].T + sd["head.bias"]
    np.testing.assert_allclose(torch.softmax(logits, -1).numpy(), clf.predict_proba(texts), atol=1e-5)


def test_multi_label(tiny_encoder, tiny_fast_options, tmp_path):
    texts, labels = [], []
    base, _ = make_sentiment(300, seed=4)
    for text in base:
        tags = []
        if "great" in text or "wonderful" in text or "excellent" in text:
            tags.append("praise")
        if "plot" in text:
            tags.append("story")
        texts.append(text)
        labels.append(tags)
    clf = TextClassifier(str(tiny_encoder), multi_label=True, **{**tiny_fast_options, "epochs": 6})
    clf.fit(texts[:240], labels[:240], progress=False)
    assert clf.labels_ == ["praise", "story"]
    assert clf.thresholds_ is not None and clf.thresholds_.shape == (2,)
    metrics = clf.evaluate(texts[240:], labels[240:])
    assert metrics["task"] == "multi_label" and metrics["micro_f1"] > 0.6
    predicted = clf.predict(texts[240:])
    assert all(isinstance(p, list) for p in predicted)
    clf.save(tmp_path / "ml")
    again = TextClassifier.load(tmp_path / "ml")
    assert again.predict(texts[240:]) == predicted
    np.testing.assert_array_equal(again.thresholds_, clf.thresholds_)


def test_single_class_refused(tiny_encoder):
    with pytest.raises(DataError, match="single class 'pos'"):
        TextClassifier(str(tiny_encoder)).fit(["a", "b", "c"], ["pos"] * 3)


def test_unknown_eval_label_refused(tiny_encoder):
    with pytest.raises(DataError, match=r"eval data has label\(s\) \['maybe'\]"):
        TextClassifier(str(tiny_encoder)).fit(["a", "b"], ["x", "y"], ["c"], ["maybe"])


def test_unknown_model():
    with pytest.raises(ConfigError, match="unknown --model 'bertz'"):
        TextClassifier("bertz").fit(["a", "b"] * 5, ["x", "y"] * 5, progress=False)


def test_class_weights_balanced(tiny_encoder, tiny_fast_options):
    texts, labels = make_sentiment(200, seed=5)
    keep = [i for i, y in enumerate(labels) if y == "pos" or i % 8 == 1]
    texts, labels = [texts[i] for i in keep], [labels[i] for i in keep]
    minority = {}
    for weights in ("none", "balanced"):
        clf = TextClassifier(str(tiny_encoder), class_weights=weights, blend="none",
                             **{**tiny_fast_options, "epochs": 1})
        clf.fit(texts, labels, progress=False)
        minority[weights] = clf.predict_proba(texts)[:, clf.labels_.index("neg")].mean()
    # Same seed, same batches: only the loss weights differ. The rare class weighs ~4x more when
    # balanced, so the model leans towards it; ignoring the weights would give equal numbers.
    assert minority["balanced"] > minority["none"] + 0.02, minority


def test_tfidf_backend_roundtrip(sentiment_data, tmp_path):
    (texts, labels), (tt, tl) = sentiment_data
    clf = TextClassifier("tfidf").fit(texts, labels)
    assert clf.evaluate(tt, tl)["accuracy"] > 0.9
    clf.save(tmp_path / "t")
    again = TextClassifier.load(tmp_path / "t")
    np.testing.assert_array_equal(again.predict_proba(tt), clf.predict_proba(tt))


def test_tfidf_classifier_inside_a_pipeline_under_grid_search():
    """scikit-learn's clone, Pipeline and GridSearchCV work with TextClassifier (TF-IDF: seconds)."""
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    texts, labels = make_sentiment(150, seed=41)
    test_texts, test_labels = make_sentiment(60, seed=42)
    pipe = Pipeline([("lower", FunctionTransformer(lambda xs: [x.lower() for x in xs])),
                     ("clf", TextClassifier("tfidf", eval_fraction=0.0))])
    search = GridSearchCV(pipe, {"clf__class_weights": ["none", "balanced"], "clf__seed": [0, 1]}, cv=3)
    search.fit(texts, labels)
    assert len(search.cv_results_["params"]) == 4
    best = search.best_estimator_.named_steps["clf"]
    # The refitted estimator carries the winning parameters in its config (set_params reached it).
    assert best.config.class_weights.value == search.best_params_["clf__class_weights"]
    assert best.config.seed == search.best_params_["clf__seed"]
    for params in search.cv_results_["params"]:  # each candidate GridSearchCV fitted had its values
        candidate = clone(pipe).set_params(**params).named_steps["clf"]
        assert (candidate.config.class_weights.value, candidate.config.seed) == \
            (params["clf__class_weights"], params["clf__seed"])
    assert search.score(test_texts, test_labels) >= 0.9  # held out: never seen by the search
    original = TextClassifier("tfidf", epochs=3, seed=7, extra={"note": "x"})
    copy = clone(original)
    assert copy.get_params() == original.get_params() and copy is not original
    assert not hasattr(copy, "labels_")


def test_params_reach_every_config_field_and_the_config_is_the_only_copy():
    import dataclasses

    from lmworks import TrainConfig
    from lmworks.modes import Pooling

    clf = TextClassifier("tfidf")
    params = clf.get_params()
    assert set(params) == {f.name for f in dataclasses.fields(TrainConfig)}
    clf.set_params(model="minilm", head="cls", lr=3e-4, epochs=1)
    assert clf.model == clf.config.model == "minilm" and clf.config.head is Pooling.CLS and clf.config.lr == 3e-4
    with pytest.raises(ConfigError, match="unknown training option"):
        clf.set_params(learning_rate=1.0)
    with pytest.raises(ConfigError, match="unknown head 'max'"):
        clf.set_params(head="max")
    config = TrainConfig(model="tfidf", seed=3)
    assert TextClassifier(config=config).model == "tfidf"  # the config's model unless one is given
    assert TextClassifier("minilm", config=config).config.seed == 3


def test_tfidf_config_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys; from lmworks import TextClassifier, TrainConfig; TrainConfig(model='tfidf', head='cls', "
            "blend='none', adversarial='none'); TextClassifier('tfidf'); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_score_is_accuracy_and_multi_label_score_is_exact_set_match(tmp_path):
    texts, labels = make_sentiment(120, seed=43)
    clf = TextClassifier("tfidf").fit(texts, labels, progress=False)
    test_texts, test_labels = make_sentiment(40, seed=44)
    assert clf.score(test_texts, test_labels) == clf.evaluate(test_texts, test_labels)["accuracy"]
    multi = [[y] if i % 3 else [y, "extra"] for i, y in enumerate(labels)]
    mclf = TextClassifier("tfidf", multi_label=True).fit(texts, multi, progress=False)
    predicted = mclf.predict(texts[:30])
    expected = np.mean([p == sorted(set(y)) for p, y in zip(predicted, multi[:30])])
    assert mclf.score(texts[:30], multi[:30]) == pytest.approx(expected)
