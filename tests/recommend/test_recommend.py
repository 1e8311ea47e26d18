"""The text-aware recommender: readers, splits, model, persistence, CLI and HTTP service.

The data is generated: items belong to genres named in their text, and each user
likes one or two genres. A model that reads text must then rank unseen items of
a user's genres above the rest, which is what the cold-start test checks.
"""

from __future__ import annotations

import csv
import json
import random
import subprocess
import sys

import numpy as np
import pytest

from lmworks.errors import DataError, ModelDirError
from lmworks.recommend import (
    TextRecommender,
    align_items,
    build_dataset,
    read_interactions,
    read_items,
)
from lmworks.recommend.baselines import Popularity
from lmworks.recommend.metrics import evaluate_ranking

GENRES = ["action", "comedy", "horror", "romance", "documentary", "animation", "western", "musical"]
WORDS = ["night", "river", "city", "star", "road", "storm", "garden", "king", "winter", "secret", "game", "fire"]


def make_catalogue(tmp_path, *, users: int = 80, per_genre: int = 15, seed: int = 0):
    """Write interactions.csv and items.csv; return their paths."""
    rng = random.Random(seed)
    items = []
    for g, genre in enumerate(GENRES):
        for j in range(per_genre):
            title = " ".join(rng.sample(WORDS, 2)).title()
            items.append({"item_id": f"i{g * per_genre + j}", "title": f"{title} {j}", "genre": f"{genre} film"})
    by_genre = {genre: [it["item_id"] for it in items if it["genre"].startswith(genre)] for genre in GENRES}
    rows = []
    for u in range(users):
        liked = rng.sample(GENRES, rng.choice([1, 2]))
        t = 1_000_000 + u
        picks = rng.sample([i for g in liked for i in by_genre[g]], 14)
        others = rng.sample([i for g in GENRES if g not in liked for i in by_genre[g]], 4)
        sequence = [(i, 5) for i in picks] + [(i, 2) for i in others]
        rng.shuffle(sequence)
        for item, rating in sequence:
            t += rng.randint(60, 3600)
            rows.append({"user_id": f"u{u}", "item_id": item, "rating": rating, "timestamp": t})
    inter_path, items_path = tmp_path / "interactions.csv", tmp_path / "items.csv"
    for path, data in ((inter_path, rows), (items_path, items)):
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(data[0]))
            writer.writeheader()
            writer.writerows(data)
    return inter_path, items_path


FAST = {"epochs": 25, "patience": 25, "dim": 32, "batch_size": 64, "negatives": 32, "lr": 5e-3}


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    return make_catalogue(tmp_path_factory.mktemp("rec-data"))


@pytest.fixture(scope="module")
def text_vectors(catalogue):
    from lmworks.recommend.recommender import encode_items

    inter, items = catalogue
    catalogue_items = align_items(read_interactions(inter), read_items(items))
    return encode_items(catalogue_items.texts, "minilm", 32)


def load(catalogue, protocol="leave-last-out"):
    inter, items = catalogue
    interactions = read_interactions(inter)
    return build_dataset(interactions, align_items(interactions, read_items(items)), protocol=protocol)


@pytest.fixture(scope="module")
def trained(catalogue, text_vectors):
    data = load(catalogue)
    return TextRecommender(**FAST).fit(data, text_vectors=text_vectors, progress=False)


# -- readers -----------------------------------------------------------------------------
def test_duplicates_keep_the_latest_row(tmp_path):
    path = tmp_path / "inter.csv"
    path.write_text("user_id,item_id,timestamp,rating\nu1,a,10,5\nu1,a,20,1\nu1,b,15,4\n", encoding="utf-8")
    inter = read_interactions(path)
    assert inter.n_duplicates == 1
    assert len(inter) == 2
    a = inter.frame[inter.frame["item"] == "a"].iloc[0]
    assert a["timestamp"] == 20 and not a["positive"]  # the later re-rating replaced the 5


def test_clicks_iso_times_and_numeric_ids(tmp_path):
    path = tmp_path / "clicks.jsonl"
    rows = [{"user_id": 7, "item_id": 12, "timestamp": "2024-01-02T10:00:00Z", "click": 1},
            {"user_id": 7, "item_id": 13.0, "timestamp": "2024-01-01T10:00:00+00:00", "click": "false"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    inter = read_interactions(path)
    assert inter.frame["item"].tolist() == ["13", "12"]  # sorted by time; 13.0 is item "13"
    assert inter.frame["positive"].tolist() == [False, True]


def test_recbole_atomic_files(tmp_path):
    inter = tmp_path / "x.inter"
    inter.write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t2\t4\t100\n", encoding="utf-8")
    items = tmp_path / "x.item"
    items.write_text("item_id:token\tmovie_title:token_seq\tclass:token_seq\n2\tHeat\tCrime Thriller\n",
                     encoding="utf-8")
    assert read_interactions(inter).frame["positive"].tolist() == [True]
    assert read_items(items).texts == ["movie title: Heat; class: Crime Thriller"]


@pytest.mark.parametrize("content, message", [
    ("user_id,item_id,rating\nu,a,5\n", "column 'timestamp' not found"),
    ("user_id,item_id,timestamp,rating\nu,a,10,five\n", "row 1: column 'rating' is not a number"),
    ("user_id,item_id,timestamp,rating\nu,a,10,5\nu,,11,5\n", "row 2: column 'item_id' is empty"),
    ("user_id,item_id,timestamp,rating\nu,a,yesterday,5\n", "row 1: column 'timestamp' is not a Unix time"),
    ("user_id,item_id,timestamp,click\nu,a,10,maybe\n", "row 1: column 'click' must be 1/0"),
])
def test_bad_interactions_name_row_and_column(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        read_interactions(path)


def test_items_without_text_and_items_missing_from_the_item_file(tmp_path):
    inter = tmp_path / "i.csv"
    inter.write_text("user_id,item_id,timestamp,rating\nu,a,1,5\nu,z,2,5\n", encoding="utf-8")
    items = tmp_path / "items.csv"
    items.write_text("item_id,title\na,Alpha\nb,\n", encoding="utf-8")
    catalogue = align_items(read_interactions(inter), read_items(items))
    assert catalogue.ids == ["a", "b", "z"]
    assert catalogue.texts == ["title: Alpha", "", ""]


def test_duplicate_item_rows_are_refused(tmp_path):
    items = tmp_path / "items.csv"
    items.write_text("item_id,title\na,Alpha\na,Again\n", encoding="utf-8")
    with pytest.raises(DataError, match="row 2: item 'a' appears twice"):
        read_items(items)


# -- splits ------------------------------------------------------------------------------
def test_leave_last_out_holds_out_the_last_two_positives(catalogue):
    data = load(catalogue)
    interactions = read_interactions(catalogue[0])
    positives = interactions.positives
    for user, group in positives.groupby("user"):
        u = data.user_ids.index(user)
        last, second = group["item"].iloc[-1], group["item"].iloc[-2]
        assert [data.item_ids[i] for i in data.test.relevant[u]] == [last]
        assert [data.item_ids[i] for i in data.valid.relevant[u]] == [second]
        trained_items = set(data.train.loc[data.train["user"] == u, "item"])
        assert data.item_ids.index(last) not in trained_items
        assert data.item_ids.index(second) not in trained_items


def test_cold_start_items_never_train(catalogue):
    data = load(catalogue, "cold-start")
    new_items = set(data.test.candidates) | set(data.valid.candidates)
    assert new_items and not new_items & set(data.train["item"])
    assert set(data.test.candidates).isdisjoint(data.valid.candidates)
    assert not set(data.test.candidates) & set(data.with_valid().train["item"])


# -- model -------------------------------------------------------------------------------
def test_text_model_beats_popularity_on_held_out_users(catalogue, trained):
    data = trained.data_
    current = data.with_valid()
    popularity = evaluate_ranking(Popularity().fit(current).scores, data.test, current.seen_matrix())
    ours = trained.evaluate("test")
    assert ours["hr@10"] > popularity["hr@10"] + 0.1, (ours, popularity)
    assert 0 < ours["coverage"] <= 1


def test_cold_start_ranks_new_items_from_their_text(catalogue, text_vectors):
    data = load(catalogue, "cold-start")
    rec = TextRecommender(**FAST).fit(data, text_vectors=text_vectors, progress=False)
    ours = rec.evaluate("test")
    current = data.with_valid()
    popularity = evaluate_ranking(Popularity().fit(current).scores, data.test, current.seen_matrix())
    # Popularity has no counts for new items: chance level. Text knows the genre.
    assert ours["ndcg@10"] > popularity["ndcg@10"] * 1.5, (ours, popularity)


def test_unknown_user_falls_back_to_popular_items_and_says_so(trained):
    result = trained.recommend("nobody", k=5)
    assert result.fallback == "popular"
    assert "unknown user 'nobody'" in result.message
    counts = trained.popularity_
    assert [r["item_id"] for r in result.items] == [trained.data_.item_ids[i] for i in np.argsort(-counts,
                                                                                               kind="stable")[:5]]


def test_empty_history_falls_back(trained):
    result = trained.recommend(history=[], k=3)
    assert result.fallback == "popular" and "no positive interactions" in result.message
    result = trained.recommend(history=["not-an-item"], k=3)
    assert result.fallback == "popular" and result.ignored_history == ["not-an-item"]


def test_known_user_gets_unseen_personal_items(trained):
    data = trained.data_
    user = data.user_ids[0]
    result = trained.recommend(user, k=10)
    assert result.fallback is None and len(result.items) == 10
    seen = {data.item_ids[i] for i in trained.seen_[0].indices}
    assert not seen & {r["item_id"] for r in result.items}
    scores = [r["score"] for r in result.items]
    assert scores == sorted(scores, reverse=True)
    excluded = trained.recommend(user, k=10, exclude=[result.items[0]["item_id"]])
    assert result.items[0]["item_id"] not in {r["item_id"] for r in excluded.items}


def test_history_request_matches_the_known_user(trained):
    data = trained.data_
    history = [data.item_ids[i] for i in trained.histories_[3]]
    by_user = trained.recommend(data.user_ids[3], k=5)
    by_history = trained.recommend(history=history, k=5,
                                   exclude=[data.item_ids[i] for i in trained.seen_[3].indices])
    assert [r["item_id"] for r in by_user.items] == [r["item_id"] for r in by_history.items]


def test_save_load_round_trip(tmp_path, trained):
    directory = trained.save(tmp_path / "rec")
    loaded = TextRecommender.load(directory)
    assert loaded.evaluate("test") == trained.evaluate("test")
    user = trained.data_.user_ids[5]
    assert loaded.recommend(user).items == trained.recommend(user).items
    (directory / "towers.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelDirError, match="checksum mismatch"):
        TextRecommender.load(directory)


def test_item_without_text_is_still_ranked(tmp_path, catalogue, text_vectors):
    data = load(catalogue)
    data.texts[0] = ""
    vectors = text_vectors.copy()
    vectors[0] = 0
    rec = TextRecommender(**{**FAST, "epochs": 2}).fit(data, text_vectors=vectors, progress=False)
    assert np.isfinite(rec.scorer(rec.histories_)(np.array([0]))[0, 0])


# -- CLI and service ---------------------------------------------------------------------
def run_cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "lmworks", *map(str, args)], capture_output=True, text=True,
                          **kwargs)


@pytest.fixture(scope="module")
def cli_model(tmp_path_factory, catalogue):
    inter, items = catalogue
    out = tmp_path_factory.mktemp("rec-cli") / "model"
    proc = run_cli("recommend", "train", inter, "--items", items, "--output", out,
                   "--epochs", 8, "--dim", 32, "--batch-size", 64, "--negatives", 32, "--baselines", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "implicit-als" in proc.stdout and "popularity" in proc.stdout and "lmworks" in proc.stdout
    assert "OpenBLAS" not in proc.stderr and "threadpool" not in proc.stderr  # BLAS threads limited where ALS runs
    return out


def test_cli_evaluate_and_for_user(tmp_path, cli_model):
    proc = run_cli("recommend", "evaluate", cli_model, "--json", tmp_path / "m.json")
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((tmp_path / "m.json").read_text())
    meta = json.loads((cli_model / "recommender.json").read_text())
    assert metrics["lmworks"] == meta["metrics"]["lmworks"]  # the saved split re-measures the same numbers
    proc = run_cli("recommend", "for-user", cli_model, "u1", "-k", "3", "--json", "-")
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)["items"]) == 3
    proc = run_cli("recommend", "for-user", cli_model, "ghost", "-k", "3")
    assert proc.returncode == 0 and "unknown user 'ghost'" in proc.stderr
    assert len(proc.stdout.strip().splitlines()) == 3


def test_cli_bad_input_is_one_line(tmp_path, catalogue):
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,item_id\nu,a\n", encoding="utf-8")
    proc = run_cli("recommend", "train", bad, "--output", tmp_path / "o")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("lmworks: error:") and "timestamp" in proc.stderr
    assert not (tmp_path / "o").exists()


def test_service(cli_model):
    import httpx

    from conftest import free_port, start_process, stop_process

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_process(["recommend", "serve", str(cli_model), "--port", str(port), "--max-k", "20"],
                         url + "/healthz")
    try:
        r = httpx.post(url + "/v1/recommend", json={"user_id": "u2", "k": 4})
        assert r.status_code == 200 and len(r.json()["items"]) == 4 and r.json()["fallback"] is None
        r = httpx.post(url + "/v1/recommend", json={"user_id": "ghost"})
        assert r.status_code == 200 and r.json()["fallback"] == "popular"
        r = httpx.post(url + "/v1/recommend", json={"history": ["i1", "i2"], "k": 2})
        assert r.status_code == 200 and len(r.json()["items"]) == 2
        assert httpx.post(url + "/v1/recommend", json={"user_id": "u2", "k": 21}).status_code == 413
        assert httpx.post(url + "/v1/recommend", json={"k": 3}).status_code == 422
        assert httpx.post(url + "/v1/recommend", json={"user_id": 5}).status_code == 422
        r = httpx.post(url + "/v1/recommend", content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 422 and "error" in r.json()
        assert httpx.get(url + "/v1/model").json()["items"] == 120
        from conftest import schemathesis_run

        schemathesis_run(url)
    finally:
        assert stop_process(proc) == 0
