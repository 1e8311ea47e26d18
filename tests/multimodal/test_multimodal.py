"""Multimodal models on tiny generated listings: each modality alone and together, bad input, files, service."""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("efficientnet_lite_pytorch")

from lmworks.errors import DataError  # noqa: E402
from lmworks.fusion import MultimodalClassifier  # noqa: E402
from lmworks.multimodal import MultimodalConfig, read_rows  # noqa: E402

LABELS = ["apple", "berry", "lime"]
COLOURS = {"apple": (220, 30, 30), "berry": (60, 40, 200), "lime": (40, 200, 60)}
FAST = {"epochs": 6, "batch_size": 16, "lr": 3e-3, "head_lr_multiplier": 1.0, "max_length": 16, "num_threads": 1,
        "patience": 0, "image_size": 32, "modality_dropout": 0.0}


def listings(folder: Path, n: int, seed: int, *, name: str = "listings.csv") -> Path:
    """Rows whose label shows in the photo's colour, a cue word, the price and the brand (each noisy)."""
    from PIL import Image

    rng = random.Random(seed)
    (folder / "photos").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        label = LABELS[i % 3]
        image = Image.new("RGB", (24, 24), COLOURS[label])
        image.putpixel((rng.randrange(24), rng.randrange(24)), (255, 255, 255))
        image.save(folder / "photos" / f"{seed}-{i}.png")
        rows.append({"title": f"fresh {label} {rng.choice(['box', 'bag', 'crate'])}", "photo": f"photos/{seed}-{i}.png",
                     "price": LABELS.index(label) * 10 + rng.uniform(0, 3), "brand": f"{label[0]}-co",
                     "category": label})
    path = folder / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("listings")
    return folder, listings(folder, 90, 1), listings(folder, 30, 2, name="dev.csv"), listings(folder, 30, 3,
                                                                                                 name="test.csv")


def fit(data, tiny_encoder, modality_dropout=0.0, use_dev=True, **columns):
    _, train, dev, _ = data
    config = MultimodalConfig(**{"text_columns": (), **columns})
    clf = MultimodalClassifier(str(tiny_encoder), columns=config, **{**FAST, "modality_dropout": modality_dropout})
    if not use_dev:  # train all epochs on every row; keep the last weights
        clf.set_params(eval_fraction=0.0)
        train_rows = read_rows(train, clf.columns, label_column="category")
        return clf.fit(train_rows.rows, train_rows.labels, progress=False)
    train_rows, dev_rows = read_rows(train, clf.columns, label_column="category"), read_rows(dev, clf.columns,
                                                                                              label_column="category")
    return clf.fit(train_rows.rows, train_rows.labels, dev_rows.rows, dev_rows.labels, progress=False)


@pytest.mark.parametrize("columns", [
    {"text_columns": ("title",)},
    {"image_columns": ("photo",)},
    {"numeric_columns": ("price",)},
    {"categorical_columns": ("brand",)},
    {"text_columns": ("title",), "image_columns": ("photo",), "numeric_columns": ("price",),
     "categorical_columns": ("brand",)},
])
def test_each_modality_alone_and_all_together_learn(data, tiny_encoder, columns):
    clf = fit(data, tiny_encoder, **columns)
    test = read_rows(data[3], clf.columns, label_column="category")
    assert clf.score(test.rows, test.labels) >= 0.9  # held-out rows
    assert clf.predict_proba(test.rows).shape == (30, 3) and clf.labels_ == LABELS


@pytest.fixture(scope="module")
def fused(data, tiny_encoder, tmp_path_factory):
    # Every modality is enough on its own here, so the dev score is perfect after an epoch and
    # checkpoint selection would keep weights that never learned to do without the photo.
    clf = fit(data, tiny_encoder, modality_dropout=0.5, use_dev=False, text_columns=("title",),
              image_columns=("photo",), numeric_columns=("price",), categorical_columns=("brand",))
    return clf, clf.save(tmp_path_factory.mktemp("mm") / "model")


def test_explanation_gives_modality_shares_and_text_words(fused):
    clf, _ = fused
    only_text = {"title": "fresh lime crate", "photo": None, "price": float("nan"), "brand": None}
    full = {"title": "fresh lime crate", "photo": None, "price": 21.0, "brand": "l-co"}
    e_text, e_full = clf.explain([only_text, full], target="lime")
    assert e_text.method == "modality ablation + occlusion"
    # Inputs already missing cannot be taken away: their share is 0 and the text carries the decision.
    assert e_text.modalities["image"] == 0 and e_text.modalities["numeric"] == 0
    assert e_text.modalities["categorical"] == 0 and e_text.modalities["text"] == pytest.approx(1.0)
    assert sum(abs(v) for v in e_full.modalities.values()) == pytest.approx(1.0, abs=1e-3)
    assert e_full.modalities["numeric"] > 0 and e_full.modalities["categorical"] > 0
    assert e_text.words == ["fresh", "lime", "crate"] and e_text.top(1)[0][0] == "lime"
    assert e_text.columns["title"]["words"] == e_text.words


def test_missing_image_nan_number_and_unseen_category_are_handled(fused):
    clf, _ = fused
    rows = [{"title": "fresh lime crate", "photo": None, "price": float("nan"), "brand": "never-seen"},
            {"title": "fresh apple box", "photo": "", "price": None, "brand": None}]
    proba = clf.predict_proba(rows)
    assert proba.shape == (2, 3) and np.isfinite(proba).all()
    assert clf.predict(rows) == ["lime", "apple"]  # modality dropout taught it to decide on the text alone


def test_broken_image_names_row_and_path_and_nothing_is_written(data, tiny_encoder, tmp_path):
    from lmworks.cli import main

    folder = tmp_path / "broken"
    path = listings(folder, 12, 4)
    (folder / "photos" / "4-5.png").write_bytes(b"not a png at all")
    args = ["train", str(path), "--text-column", "title", "--image-column", "photo", "--label-column", "category",
            "--model", str(tiny_encoder), "--epochs", "1", "--image-size", "32", "--eval-fraction", "0.25",
            "--output", str(tmp_path / "out"), "--quiet"]
    rows = read_rows(path, MultimodalConfig(text_columns=("title",), image_columns=("photo",)), label_column="category")
    clf = MultimodalClassifier(str(tiny_encoder), text_columns=("title",), image_columns=("photo",), image_size=32,
                               epochs=1)
    with pytest.raises(DataError, match=r"row 6: column 'photo': .*not a decodable image"):
        clf.fit(rows.rows, rows.labels, progress=False)
    assert main(args) == 1 and not (tmp_path / "out").exists()
    assert main([*args, "--skip-bad-images"]) == 0 and (tmp_path / "out" / "lmworks.json").is_file()


def test_model_dir_round_trip_and_load_predict_on_dict_rows(fused, data):
    import lmworks

    clf, directory = fused
    test = read_rows(data[3], clf.columns, label_column="category")
    again = MultimodalClassifier.load(directory)
    reloaded, original = again.predict_proba(test.rows), clf.predict_proba(test.rows)
    # Same to float32 noise, not bit for bit: a clean-clone CI run saw 7.7e-10 differences
    # (the image backbone's convolution kernels are not bit-reproducible across loads).
    np.testing.assert_allclose(reloaded, original, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(reloaded.argmax(1), original.argmax(1))
    meta = json.loads((directory / "lmworks.json").read_text())
    assert meta["backend"] == "multimodal" and meta["columns"]["image"] == ["photo"]
    assert meta["columns"]["numeric"] == ["price"] and meta["columns"]["categorical"] == ["brand"]
    predictor = lmworks.load(directory)
    folder = data[0]
    raw = [{"title": "fresh berry bag", "photo": str(folder / "photos" / "3-1.png"), "price": 11.0, "brand": "b-co"}]
    assert predictor.predict(raw) == ["berry"] and predictor.reads_rows
    assert again.get_params()["image_columns"] == ("photo",)


def test_cli_train_evaluate_predict_read_the_columns_from_the_model_dir(data, tiny_encoder, tmp_path, capsys):
    from lmworks.cli import main

    folder, train, dev, test = data
    out = tmp_path / "mm"
    assert main(["train", str(train), "--eval", str(dev), "--text-column", "title", "--image-column", "photo",
                 "--numeric-column", "price", "--categorical-column", "brand", "--label-column", "category",
                 "--model", str(tiny_encoder), "--epochs", "6", "--lr", "3e-3", "--batch-size", "16",
                 "--head-lr-multiplier", "1", "--image-size", "32", "--threads", "1", "--output", str(out),
                 "--quiet"]) == 0
    assert main(["evaluate", str(out), str(test), "--json", str(tmp_path / "m.json")]) == 0  # no column flags
    assert json.loads((tmp_path / "m.json").read_text())["accuracy"] >= 0.9
    assert main(["predict", str(out), str(test), "--output", str(tmp_path / "p.jsonl"), "--quiet"]) == 0
    written = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(written) == 30 and {"label", "prob_apple", "title", "photo"} <= set(written[0])
    capsys.readouterr()
    assert main(["evaluate", str(out), str(test), "--image-column", "a", "--image-column", "b"]) == 1
    assert "the model reads 1 image column(s) ['photo']; got 2" in capsys.readouterr().err


def test_text_model_reads_its_training_column_by_default(tmp_path):
    from conftest import make_sentiment
    from lmworks.cli import main

    texts, labels = make_sentiment(80, seed=71)
    pd.DataFrame({"review": texts, "stars": labels}).to_csv(tmp_path / "train.csv", index=False)
    assert main(["train", str(tmp_path / "train.csv"), "--text-column", "review", "--label-column", "stars",
                 "--model", "tfidf", "--output", str(tmp_path / "m"), "--quiet"]) == 0
    assert main(["evaluate", str(tmp_path / "m"), str(tmp_path / "train.csv"), "--json",
                 str(tmp_path / "e.json")]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["n"] == 80
    assert main(["predict", str(tmp_path / "m"), str(tmp_path / "train.csv"), "--output",
                 str(tmp_path / "p.csv"), "--quiet"]) == 0


def test_service_takes_base64_images_and_refuses_wrong_types(fused, data):
    from fastapi.testclient import TestClient

    import lmworks
    from lmworks.serve.app import ServeConfig, create_app

    _, directory = fused
    photo = base64.b64encode((data[0] / "photos" / "3-2.png").read_bytes()).decode()
    app = create_app(lmworks.load(directory), ServeConfig(max_image_bytes=10_000))
    with TestClient(app) as client:
        row = {"title": "fresh lime crate", "photo": photo, "price": 21.0, "brand": "l-co"}
        r = client.post("/v1/classify", json={"rows": [row, {**row, "photo": None}]})
        assert r.status_code == 200, r.text
        assert [p["label"] for p in r.json()["predictions"]] == ["lime", "lime"]
        bad = client.post("/v1/classify", json={"rows": [{**row, "photo": 12}]})
        assert bad.status_code == 422 and "rows[0].photo: expected a base64 string" in bad.json()["error"]["message"]
        assert client.post("/v1/classify", json={"rows": [{**row, "photo": "%%%"}]}).status_code == 422
        assert client.post("/v1/classify", json={"rows": [{**row, "price": "cheap"}]}).status_code == 422
        assert client.post("/v1/classify", json={"rows": [{**row, "photo": "A" * 20_000}]}).status_code == 413
        missing = client.post("/v1/classify", json={"rows": [{"title": "x"}]})
        assert missing.status_code == 422 and "column 'photo' is missing" in missing.json()["error"]["message"]


def test_onnx_backbone_gives_pytorchs_features_and_its_graph_is_reused(data, tmp_path):
    pytest.importorskip("onnxruntime")
    from lmworks.images import ImageFeatures, ImageRef

    folder, *_ = data
    refs = [ImageRef(f"row {i}", path=p) for i, p in enumerate(sorted((folder / "photos").glob("*.png"))[:5])]
    by_onnx = ImageFeatures(size=64, cache_dir=tmp_path / "image-features")
    assert by_onnx.engine == "onnx"
    onnx_features, missing = by_onnx.encode(refs)
    graphs = list((tmp_path / "image-models").glob("*.onnx"))
    assert len(graphs) == 1 and not missing.any()
    by_torch = ImageFeatures(size=64)
    by_torch.engine = "torch"
    torch_features, _ = by_torch.encode(refs)
    np.testing.assert_allclose(onnx_features, torch_features, atol=1e-4)
    assert np.abs(onnx_features).sum() > 0
    again = ImageFeatures(size=64, cache_dir=tmp_path / "other-features")  # a new process: graph reused
    np.testing.assert_array_equal(again.encode(refs)[0], onnx_features)
    assert list((tmp_path / "image-models").glob("*.onnx")) == graphs
