"""``TextRecommender``: fit, rank, evaluate, save and load the two-tower model.

The saved directory holds everything needed to answer for a user without the
encoder: the trained towers, the item text vectors, the item catalogue, the
training interactions (histories and what each user has already seen) and the
held-out sets, so ``lmworks recommend evaluate DIR`` re-measures exactly what
training reported.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..atomic import atomic_dir
from ..errors import ConfigError, DataError
from ..model_dir import check_output_dir, read_manifest, write_manifest
from ..training.keep_best import KeepBest
from .metrics import evaluate_ranking
from .model import RecommenderConfig, TwoTower, cosine_lr, pad_histories, train_epoch, training_examples
from .split import Dataset, Holdout

LOGGER = logging.getLogger("lmworks")

META_FILE = "recommender.json"
FORMAT = "lmworks-recommender"
WEIGHTS_FILE = "towers.safetensors"
TEXT_FILE = "item_text.npy"
ITEMS_FILE = "items.jsonl"
USERS_FILE = "users.json"
TRAIN_FILE = "train.npz"
VALID_FILE = "valid.npz"
HOLDOUT_FILE = "holdout.json"


@dataclass
class Recommendation:
    """Top items for one request; ``fallback`` says when they are not personalised."""

    items: list[dict[str, Any]]
    user: str | None = None
    fallback: str | None = None
    message: str | None = None
    ignored_history: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly form (the service and ``for-user`` print this)."""
        return asdict(self)


class TextRecommender:
    """Two-tower recommender over item text (see :mod:`lmworks.recommend.model`).

    Examples
    --------
    >>> data = build_dataset(read_interactions("ml-100k.inter"), align_items(..., read_items("ml-100k.item")))
    >>> rec = TextRecommender().fit(data)
    >>> rec.evaluate("test")["ndcg@10"]
    >>> rec.recommend("196", k=10).items
    """

    def __init__(self, config: RecommenderConfig | None = None, **overrides: Any) -> None:
        self.config = dataclasses.replace(config or RecommenderConfig(), **overrides)
        self.meta_: dict[str, Any] = {}

    # -- training ---------------------------------------------------------------------
    def fit(self, data: Dataset, *, text_vectors: np.ndarray | None = None, progress: bool = True) -> TextRecommender:
        """Train on ``data.train``; stop early on ``data.valid`` when it has users.

        ``text_vectors`` (items x dim) skips encoding when the caller already has them
        (the benchmark reuses one encoding across seeds and protocols).
        """
        from ..runtime import seed_everything, torch_threads

        cfg = self.config
        if data.n_items == 0:
            raise DataError("no items to recommend")
        self.data_ = data
        self.text_ = text_vectors if text_vectors is not None else encode_items(data.texts, cfg.model, cfg.max_length)
        if self.text_.shape[0] != data.n_items:
            raise ConfigError(f"text_vectors has {self.text_.shape[0]} rows for {data.n_items} items")
        self._prepare(data)
        seed_everything(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        model = self._new_model()
        examples = training_examples(self.train_histories_, cfg.history)
        if not len(examples[1]):
            raise DataError("no positive interactions to train on")
        train_items = np.flatnonzero(self.has_id_)
        started = time.perf_counter()
        with torch_threads(None):
            history, best_epoch = self._train_epochs(model, examples, train_items, rng, progress)
        self.model_ = model
        self._refresh()
        self.training_ = {"epochs_run": len(history), "best_epoch": best_epoch or len(history),
                          "seconds": round(time.perf_counter() - started, 1), "history": history,
                          "examples": int(len(examples[1]))}
        return self

    def _train_epochs(self, model: TwoTower, examples: tuple[np.ndarray, np.ndarray], train_items: np.ndarray,
                      rng: np.random.Generator, progress: bool) -> tuple[list[dict[str, float]], int]:
        """Epochs with a half-cosine rate until validation NDCG stops improving; keeps the best weights.

        Returns the per-epoch history and the best epoch (0 without validation users).
        """
        cfg = self.config
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        keeper = KeepBest(patience=cfg.patience)
        history: list[dict[str, float]] = []
        bar = _progress(cfg.epochs, progress)
        for epoch in range(cfg.epochs):
            cosine_lr(optimizer, cfg.lr, epoch, cfg.epochs)
            loss = train_epoch(model, optimizer, examples, train_items, cfg, rng)
            self.model_ = model
            self._refresh()
            record = {"epoch": epoch + 1, "loss": round(loss, 4)}
            if self.data_.valid.relevant:
                score = self.evaluate("valid")[f"ndcg@{cfg.k}"]
                record[f"valid_ndcg@{cfg.k}"] = round(score, 4)
                keeper.update(score, model.state_dict, epoch + 1)
            history.append(record)
            if bar is not None:
                bar.update(1)
                bar.set_postfix({k: v for k, v in record.items() if k != "epoch"})
            if keeper.exhausted:
                break
        if bar is not None:
            bar.close()
        keeper.restore(model.load_state_dict)
        return history, keeper.best_at

    def _prepare(self, data: Dataset) -> None:
        """Index structures: what trains (``train_*``) and what answers requests and the test set.

        Requests and the test set see validation interactions as history too;
        popularity counts them as well.
        """
        self.has_id_ = np.zeros(data.n_items, dtype=bool)
        self.has_id_[data.train.loc[data.train["positive"], "item"].to_numpy()] = True
        self.train_histories_, self.train_seen_ = data.histories(), data.seen_matrix()
        current = data.with_valid()
        self.histories_, self.seen_ = current.histories(), current.seen_matrix()
        self.popularity_ = np.asarray(current.positive_matrix().sum(axis=0)).ravel().astype(np.float64)
        self.user_index_ = {u: i for i, u in enumerate(data.user_ids)}
        self.item_index_ = {it: i for i, it in enumerate(data.item_ids)}

    def _new_model(self) -> TwoTower:
        cfg = self.config
        return TwoTower(torch.from_numpy(self.text_), torch.from_numpy(self.has_id_), cfg.dim, cfg.history,
                        cfg.use_ids)

    @torch.no_grad()
    def _refresh(self) -> None:
        """Precompute item tables (retrieval is then a matrix product per user)."""
        self.model_.eval()
        hist, cand, bias = self.model_.item_tables()
        self._hist_table, self._cand, self._bias = hist, cand.numpy(), bias.numpy()

    # -- scoring ----------------------------------------------------------------------
    @torch.no_grad()
    def user_vectors(self, histories: list[np.ndarray]) -> np.ndarray:
        """User vectors for item-index histories (oldest first)."""
        padded = pad_histories(histories, self.config.history)
        return self.model_.users(self._hist_table, padded).numpy()

    def scores(self, histories: list[np.ndarray]) -> np.ndarray:
        """``(len(histories), n_items)`` scores: user vectors against the precomputed item table."""
        return self.user_vectors(histories) @ self._cand.T + self._bias

    def scorer(self, histories: list[np.ndarray]):
        """``scores(user_indices)`` over every item, given each user's history (the metrics' Scorer)."""
        return lambda users: self.scores([histories[int(u)] for u in users])

    def evaluate(self, split: str = "test", *, k: int | None = None) -> dict[str, float]:
        """HR@k, NDCG@k, MRR and coverage on the held-out ``"valid"`` or ``"test"`` set.

        For the test set the validation interactions are history (they happened
        first), as they are for the baselines; the model is not retrained on them.
        """
        if split not in ("valid", "test"):
            raise ConfigError(f"split must be 'valid' or 'test', got {split!r}")
        holdout: Holdout = getattr(self.data_, split)
        if not holdout.relevant:
            raise ConfigError(f"no {split} set: train with a hold-out protocol (leave-last-out or cold-start)")
        if split == "valid":
            return evaluate_ranking(self.scorer(self.train_histories_), holdout, self.train_seen_,
                                    k=k or self.config.k)
        return evaluate_ranking(self.scorer(self.histories_), holdout, self.seen_, k=k or self.config.k)

    def recommend(
        self,
        user: str | None = None,
        *,
        history: list[str] | None = None,
        k: int = 10,
        exclude: list[str] | None = None,
    ) -> Recommendation:
        """Top ``k`` items for a known user, or for an explicit ``history`` of item IDs.

        An unknown user, or one with no positives yet, gets the most popular items,
        and the answer says so in ``fallback`` and ``message``.
        """
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        seen: set[int] = set()
        ignored: list[str] = []
        items: np.ndarray
        message = None
        if history is not None:
            known = [self.item_index_[i] for i in history if i in self.item_index_]
            ignored = [i for i in history if i not in self.item_index_]
            items = np.asarray(known, dtype=np.int64)
            seen.update(known)
        elif user is not None and user in self.user_index_:
            index = self.user_index_[user]
            items = self.histories_[index]
            seen.update(self.seen_[index].indices.tolist())
        else:
            items = np.zeros(0, dtype=np.int64)
            message = f"unknown user {user!r}: showing the most popular items" if user is not None else None
        for item in exclude or []:
            if item in self.item_index_:
                seen.add(self.item_index_[item])
        fallback = None
        if len(items):
            scores = self.scores([items])[0]
        else:
            fallback = "popular"
            message = message or "no positive interactions in the history: showing the most popular items"
            scores = self.popularity_.copy()
        if seen:
            scores[list(seen)] = -np.inf
        k = min(k, int(np.isfinite(scores).sum()))
        top = np.argsort(-scores, kind="stable")[:k]  # ties in catalogue order, so answers are repeatable
        out = [{"item_id": self.data_.item_ids[i], "score": round(float(scores[i]), 4),
                "text": self.data_.texts[i]} for i in top]
        return Recommendation(out, user, fallback, message, ignored)

    # -- persistence ------------------------------------------------------------------
    def save(self, directory: str | Path, *, extra: dict[str, Any] | None = None) -> Path:
        """Write the recommender directory atomically (``extra`` goes into the manifest)."""
        from safetensors.torch import save_file

        directory = Path(directory)
        check_output_dir(directory, meta_file=META_FILE)
        data = self.data_
        with atomic_dir(directory) as tmp:
            state = {k: v.contiguous() for k, v in self.model_.state_dict().items()}
            save_file(state, str(tmp / WEIGHTS_FILE))
            np.save(tmp / TEXT_FILE, self.text_)
            with open(tmp / ITEMS_FILE, "w", encoding="utf-8") as fh:
                for item, text in zip(data.item_ids, data.texts):
                    fh.write(json.dumps({"item_id": item, "text": text}, ensure_ascii=False) + "\n")
            (tmp / USERS_FILE).write_text(json.dumps(data.user_ids), encoding="utf-8")
            for name, rows in ((TRAIN_FILE, data.train), (VALID_FILE, data.valid_rows)):
                if rows is not None:
                    np.savez_compressed(tmp / name, **{c: rows[c].to_numpy() for c in ("user", "item", "timestamp",
                                                                                       "positive")})
            (tmp / HOLDOUT_FILE).write_text(json.dumps(
                {"protocol": data.protocol, "valid": data.valid.to_json(), "test": data.test.to_json()}),
                encoding="utf-8")
            write_manifest(tmp, META_FILE, {
                "format": FORMAT, "config": asdict(self.config), "protocol": data.protocol, "n_users": data.n_users,
                "n_items": data.n_items, "training": self.training_, **(extra or {})})
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> TextRecommender:
        """Load and verify a directory written by :meth:`save` (the encoder is not needed)."""
        from safetensors.torch import load_file

        directory = Path(directory)
        meta = read_manifest(directory, META_FILE, FORMAT, "a recommender directory")
        known = {f.name for f in fields(RecommenderConfig)}
        self = cls(RecommenderConfig(**{k: v for k, v in meta["config"].items() if k in known}))
        items = [json.loads(line) for line in (directory / ITEMS_FILE).read_text(encoding="utf-8").splitlines()]
        train, valid_rows = (_read_rows(directory / name) for name in (TRAIN_FILE, VALID_FILE))
        holdout = json.loads((directory / HOLDOUT_FILE).read_text(encoding="utf-8"))
        assert train is not None, "checked by the manifest"
        self.data_ = Dataset(json.loads((directory / USERS_FILE).read_text(encoding="utf-8")),
                             [i["item_id"] for i in items], [i["text"] for i in items], train,
                             Holdout.from_json(holdout["valid"]), Holdout.from_json(holdout["test"]),
                             holdout["protocol"], valid_rows)
        self.text_ = np.load(directory / TEXT_FILE)
        self._prepare(self.data_)
        model = self._new_model()
        model.load_state_dict(load_file(str(directory / WEIGHTS_FILE)))
        self.model_ = model
        self._refresh()
        self.training_ = meta.get("training", {})
        self.meta_ = meta
        return self


def _read_rows(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    with np.load(path) as npz:
        return pd.DataFrame({name: npz[name] for name in npz.files})


def encode_items(texts: list[str], model: str, max_length: int) -> np.ndarray:
    """Sentence vectors of item texts; items without text get a zero vector."""
    from ..embed import SentenceEncoder

    encoder = SentenceEncoder(model, max_length=max_length)
    out = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    with_text = [i for i, t in enumerate(texts) if t.strip()]
    if with_text:
        out[with_text] = encoder.encode([texts[i] for i in with_text], what="item texts")
    return out


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="epochs", unit="epoch", leave=False)
