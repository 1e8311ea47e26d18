"""Explanations: exact where the model is linear, complete where it is not, and right about a planted cause."""

import random

import numpy as np
import pytest

from lmworks import TextClassifier
from lmworks.errors import ConfigError, DataError
from lmworks.explain import explain, global_words
from lmworks.explain.faithfulness import eraser_aopc
from lmworks.explain.gradients import integrated_gradients
from lmworks.explain.words import split_words

FILLER = ["the", "report", "says", "our", "team", "will", "meet", "on", "monday", "about", "plans", "for", "next",
          "week", "and", "customers", "asked", "a", "question", "shop", "order", "delivery", "price", "new"]


def planted(n: int, seed: int, trigger: str = "kraken") -> tuple[list[str], list[str]]:
    """Ordinary words; the label is 'flag' exactly when the trigger word is among them."""
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        words = rng.sample(FILLER, rng.randint(4, 9))
        if i % 2 == 0:
            words.insert(rng.randrange(len(words) + 1), trigger)
        texts.append(" ".join(words))
        labels.append("flag" if i % 2 == 0 else "ok")
    return texts, labels


@pytest.fixture(scope="module")
def planted_data():
    return planted(300, 1), planted(80, 2), planted(100, 3)


def trigger_first_share(clf, texts, trigger="kraken"):
    with_trigger = [t for t in texts if trigger in t.split()]
    found = clf.explain(with_trigger, target="flag")
    return np.mean([e.top(1)[0][0] == trigger for e in found]), found


def test_words_split_cjk_characters_and_punctuation():
    w = split_words("The plot's thin, but 演技很好!")
    assert w.words == ["The", "plot's", "thin", ",", "but", "演", "技", "很", "好", "!"]
    assert w.without([2, 3]) == "The plot's but 演技很好!"
    assert w.only([4, 0]) == "The but"


def test_tfidf_scores_add_up_to_the_centred_logit(planted_data):
    (texts, labels), _, (test_texts, _) = planted_data
    clf = TextClassifier("tfidf").fit(texts, labels, progress=False)
    pipeline = clf.backend_.pipeline
    for e, text in zip(clf.explain(test_texts[:10], target="flag"), test_texts[:10]):
        column = clf.labels_.index("flag")
        half_log_odds = pipeline.decision_function([text])[0] / 2 * (1 if column == 1 else -1)
        intercept = pipeline.steps[-1][1].intercept_[0] / 2 * (1 if column == 1 else -1)
        assert sum(e.scores) + intercept == pytest.approx(half_log_odds, abs=1e-9)
        assert e.method == "tfidf_exact"


def test_tfidf_multiclass_and_multilabel_are_exact():
    rng = random.Random(0)
    cues = {"sport": "goal", "tech": "chip", "money": "bank"}
    texts = [" ".join(rng.sample(FILLER, 5) + [cues[k]]) for k in cues for _ in range(30)]
    labels = [k for k in cues for _ in range(30)]
    clf = TextClassifier("tfidf").fit(texts, labels, progress=False)
    text = "the team will meet about the new chip"
    e = clf.explain([text], all_classes=True)[0]
    decision = clf.backend_.pipeline.decision_function([text])[0]
    lr = clf.backend_.pipeline.steps[-1][1]
    for k, name in enumerate(clf.labels_):
        centred = decision[k] - decision.mean()
        assert sum(e.classes[name]) + lr.intercept_[k] - lr.intercept_.mean() == pytest.approx(centred, abs=1e-5)
    assert e.label == "tech" and e.top(1)[0][0] == "chip"
    multi = TextClassifier("tfidf", multi_label=True).fit(texts, [[k] for k in labels], progress=False)
    m = multi.explain([text], target="tech")[0]
    est = multi.backend_.pipeline.steps[-1][1].estimators_[multi.labels_.index("tech")]
    logit = est.decision_function(multi.backend_.pipeline.steps[0][1].transform([text]))[0]
    assert sum(m.scores) + est.intercept_[0] == pytest.approx(logit, abs=1e-9)


@pytest.fixture(scope="module")
def planted_transformer(planted_data, tiny_encoder):
    (texts, labels), (dev_texts, dev_labels), _ = planted_data
    options = {"epochs": 6, "batch_size": 16, "lr": 3e-3, "head_lr_multiplier": 1.0, "max_length": 32,
               "num_threads": 1, "patience": 0, "blend": "none", "seed": 0}
    return TextClassifier(str(tiny_encoder), **options).fit(texts, labels, dev_texts, dev_labels, progress=False)


def test_planted_trigger_ranked_first_by_every_method(planted_data, planted_transformer):
    (texts, labels), (dev_texts, dev_labels), (test_texts, test_labels) = planted_data
    assert planted_transformer.score(test_texts, test_labels) >= 0.95
    share, found = trigger_first_share(planted_transformer, test_texts)
    assert found[0].method == "integrated_gradients"
    assert share >= 0.95
    tfidf = TextClassifier("tfidf").fit(texts, labels, progress=False)
    assert trigger_first_share(tfidf, test_texts)[0] >= 0.95


def test_blend_is_the_weighted_sum_of_both_explanations(planted_data, planted_transformer):
    from lmworks.backends.base import FitRun
    from lmworks.backends.blend import BlendBackend
    from lmworks.backends.tfidf import TfidfBackend

    (texts, labels), _, (test_texts, _) = planted_data
    tfidf = TfidfBackend()
    names = planted_transformer.labels_
    tfidf.fit(texts, np.asarray([names.index(y) for y in labels]), FitRun(names, planted_transformer.config))
    ig = planted_transformer.explain(test_texts[:6], target="flag")
    exact = explain(TextClassifier.from_fitted(tfidf, names, config=planted_transformer.config), test_texts[:6],
                    target="flag")
    blended = TextClassifier.from_fitted(BlendBackend(planted_transformer.backend_, tfidf, 0.4), names,
                                         config=planted_transformer.config)
    for b, a, t in zip(blended.explain(test_texts[:6], target="flag"), ig, exact):
        assert b.method == "blend: 0.60 x integrated_gradients + 0.40 x tfidf_exact"
        np.testing.assert_allclose(b.scores, 0.6 * np.asarray(a.scores) + 0.4 * np.asarray(t.scores), atol=1e-6)
    assert trigger_first_share(blended, test_texts)[0] >= 0.95


def test_integrated_gradients_are_complete(planted_data, planted_transformer):
    _, _, (test_texts, _) = planted_data
    coarse = planted_transformer.explain(test_texts[:8], steps=4)
    fine = planted_transformer.explain(test_texts[:8], steps=48)
    assert np.mean([abs(e.delta) for e in fine]) < np.mean([abs(e.delta) for e in coarse])
    assert max(abs(e.delta) for e in fine) < 0.05 * max(abs(sum(e.scores)) for e in fine)


def test_integrated_gradients_equal_captum_layer_integrated_gradients(planted_data, planted_transformer):
    """Captum's own layer method gives the same word scores and delta on either layer (it only costs more)."""
    _, _, (test_texts, _) = planted_data
    backend = planted_transformer.backend_
    network = backend.network.eval()

    def score(ids, mask):
        logits = network(ids, mask)
        return logits - logits.mean(dim=1, keepdim=True)

    for layer in ("embeddings", "tokens"):
        _compare_with_captum(backend, test_texts[:4], layer, score)


def test_presence_weights_delete_words_as_the_attention_mask_does(planted_data, planted_transformer):
    """Presence 1 is the text as read, presence 0 a token dropped from the attention mask: the path's two ends."""
    import torch

    _, _, (test_texts, _) = planted_data
    backend = planted_transformer.backend_
    network = backend.network.eval()
    enc = backend.tokenizer(test_texts[:4], padding=True, return_tensors="pt", return_special_tokens_mask=True)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    kept = mask * enc["special_tokens_mask"]  # [CLS] and [SEP] only: the "absent" baseline
    dropped = mask.clone()
    dropped[:, 2] = 0
    with torch.no_grad():
        for m in (mask, kept, dropped):
            torch.testing.assert_close(network.weighted(ids, m.float()), network(ids, m), atol=1e-5, rtol=1e-4)
        logits = network(torch.cat([ids, ids]), torch.cat([mask, kept]))
    centred = (logits - logits.mean(dim=1, keepdim=True)).numpy()
    found = integrated_gradients(backend, [split_words(t) for t in test_texts[:4]], [1, 1, 1, 1], steps=16)
    for row, f in enumerate(found):  # completeness against the model itself: words + delta = f(text) - f(no words)
        assert sum(f.scores) - f.delta == pytest.approx(centred[row, 1] - centred[row + 4, 1], abs=1e-4)
        assert abs(f.delta) < 0.05 * max(1.0, abs(sum(f.scores)))


def test_presence_weights_on_a_stock_cls_head(tiny_encoder, minilm_dir):
    """The [CLS]-pooled stock classifier reads presence through attention the same way."""
    import torch
    from transformers import AutoTokenizer

    from lmworks.heads import build_network
    from lmworks.modes import Pooling

    network = build_network(tiny_encoder, ["a", "b", "c"], pooling=Pooling.CLS, multi_label=False).eval()
    enc = AutoTokenizer.from_pretrained(minilm_dir)(["a fine day out", "rain"], padding=True, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    dropped = mask.clone()
    dropped[0, 2] = 0
    with torch.no_grad():
        for m in (mask, dropped):
            torch.testing.assert_close(network.weighted(ids, m.float()), network(ids, m), atol=1e-5, rtol=1e-4)
        assert not torch.allclose(network(ids, dropped)[0], network(ids, mask)[0])


def test_presence_falls_back_to_pad_embeddings_where_the_encoder_ignores_it(planted_data, planted_transformer, caplog):
    """DeBERTa-v2 reads a 4-D mask as a boolean: presence would explain something else, so IG uses [PAD]."""
    from types import SimpleNamespace

    import torch
    from transformers import DebertaV2Config, DebertaV2Model

    from lmworks.explain.gradients import _score
    from lmworks.heads import MeanPoolingClassifier

    _, _, (test_texts, _) = planted_data
    torch.manual_seed(0)
    config = DebertaV2Config(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                             intermediate_size=64, max_position_embeddings=64)
    tokenizer = planted_transformer.backend_.tokenizer
    deberta = SimpleNamespace(tokenizer=tokenizer, network=MeanPoolingClassifier(DebertaV2Model(config), 2).eval(),
                              multi_label=False, max_length=32, num_threads=1)
    encoded = tokenizer(test_texts[:2], return_special_tokens_mask=True)
    assert type(_score(planted_transformer.backend_, "absent", "embeddings", encoded)).__name__ == "_PresenceScore"
    assert type(_score(deberta, "absent", "embeddings", encoded)).__name__ == "_LayerScore"
    assert "uses the [PAD] baseline instead" in caplog.text
    found = integrated_gradients(deberta, [split_words(t) for t in test_texts[:2]], [0, 1], steps=4)
    assert len(found) == 2 and all(len(f.scores) == len(split_words(t)) for f, t in zip(found, test_texts[:2]))


def _compare_with_captum(backend, texts, layer, score):
    from captum.attr import LayerIntegratedGradients

    from lmworks.explain.gradients import _baseline_ids, _to_words, embedding_layer

    tok, network = backend.tokenizer, backend.network
    ours = integrated_gradients(backend, [split_words(t) for t in texts], [0, 1, 0, 1], steps=8, layer=layer,
                                baseline="pad")
    for text, column, found in zip(texts, [0, 1, 0, 1], ours):
        enc = tok([text], return_tensors="pt", return_special_tokens_mask=True, return_offsets_mapping=True)
        ids, mask = enc["input_ids"], enc["attention_mask"]
        base = _baseline_ids(ids, mask, enc["special_tokens_mask"].bool(), tok.pad_token_id)
        attr, delta = LayerIntegratedGradients(score, embedding_layer(network, layer)).attribute(
            ids, baselines=base, additional_forward_args=(mask,), target=column, n_steps=8,
            return_convergence_delta=True)
        tokens = attr.sum(dim=-1)[0].detach().numpy()
        theirs = _to_words(split_words(text), enc["offset_mapping"][0].tolist(),
                           enc["special_tokens_mask"][0].tolist(), tokens, float(delta[0]))
        np.testing.assert_allclose(found.scores, theirs.scores, atol=1e-5)
        assert found.delta == pytest.approx(theirs.delta, abs=1e-5)
        assert np.abs(found.scores).max() > 1e-3  # not a vacuous match


def test_occlusion_explains_an_onnx_export(planted_data, planted_transformer, tmp_path):
    pytest.importorskip("onnxruntime")
    from lmworks.export import export_onnx

    _, _, (test_texts, _) = planted_data
    planted_transformer.save(tmp_path / "m")
    export_onnx(tmp_path / "m", tmp_path / "onnx")
    onnx = TextClassifier.load(tmp_path / "onnx")
    share, found = trigger_first_share(onnx, test_texts)
    assert found[0].method == "occlusion" and share >= 0.95
    with pytest.raises(ConfigError, match="does not apply"):
        onnx.explain(test_texts[:1], method="integrated_gradients")


def test_bad_input_is_named(planted_data, planted_transformer):
    _, _, (test_texts, _) = planted_data
    with pytest.raises(DataError, match="text 2 is empty"):
        planted_transformer.explain(["the team", "  "])
    with pytest.raises(ConfigError, match="unknown class 'nope'.*flag, ok"):
        planted_transformer.explain(["the team"], target="nope")
    long_text = " ".join(["report"] * 60 + ["kraken"])
    e = planted_transformer.explain([long_text])[0]
    assert e.truncated and e.words_read == 30 and e.scores[-1] == 0.0


def test_global_words_name_the_trigger(planted_data):
    (texts, labels), _, (test_texts, _) = planted_data
    clf = TextClassifier("tfidf").fit(texts, labels, progress=False)
    summary = global_words(clf.explain(test_texts))
    assert summary["flag"][0]["word"] == "kraken"
    assert summary["flag"][0]["count"] == sum("kraken" in t.split() for t in test_texts)
    assert all(r["total"] > 0 for rows in summary.values() for r in rows)


def test_explanations_are_more_faithful_than_random(planted_data):
    (texts, labels), _, (test_texts, _) = planted_data
    clf = TextClassifier("tfidf").fit(texts, labels, progress=False)
    found = clf.explain(test_texts)
    words = [split_words(t) for t in test_texts]
    columns = [clf.labels_.index(e.label) for e in found]
    ours = eraser_aopc(clf.predict_proba, words, [e.scores for e in found], columns)
    rng = np.random.default_rng(0)
    chance = eraser_aopc(clf.predict_proba, words, [rng.random(len(w)) for w in words], columns)
    assert ours["comprehensiveness"] > chance["comprehensiveness"] + 0.1
    assert ours["sufficiency"] < chance["sufficiency"] - 0.1
