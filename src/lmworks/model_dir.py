"""The model directory: ``lmworks.json`` plus the backend's files.

``lmworks.json`` is the contract other tools read: task type, label order,
thresholds, max length, head, training config, metrics, package versions and a
SHA-256 of every file. Loading checks all of it before any weight is touched, so a
truncated download, a hand-edited ``config.json`` or a directory that is not a
model at all is refused with one clear line.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import ModelDirError

META_FILE = "lmworks.json"
FORMAT = "lmworks-model"
FORMAT_VERSION = 1


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_fingerprint(*parts: Sequence[Any] | None) -> str:
    """SHA-256 over texts and labels, to tell whether a checkpoint belongs to this data.

    Values JSON cannot write (an image reference in a multimodal row) count by their ``str``.
    """
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(list(part) if part is not None else None, ensure_ascii=False, default=str).encode())
    return digest.hexdigest()


def package_versions() -> dict[str, str]:
    """Versions of the packages that decide whether a model loads and predicts the same."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("lmworks", "torch", "transformers", "tokenizers", "scikit-learn", "numpy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def file_checksums(directory: Path, *, skip: str = META_FILE) -> dict[str, str]:
    """SHA-256 of every file under ``directory`` (relative POSIX paths), except ``skip``."""
    return {
        p.relative_to(directory).as_posix(): sha256_file(p)
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != skip
    }


def verify_checksums(directory: Path, files: dict[str, str]) -> None:
    """Raise :class:`ModelDirError` naming the first missing or modified file."""
    for name, expected in files.items():
        file = directory / name
        if not file.is_file():
            raise ModelDirError(f"{directory}: {name} is missing")
        if sha256_file(file) != expected:
            raise ModelDirError(f"{file}: checksum mismatch, the file is corrupt or was modified")


def read_manifest(directory: str | Path, meta_file: str, fmt: str, what: str) -> dict[str, Any]:
    """Read an application directory's JSON manifest (``format == fmt``) and verify its files.

    The assistant index and the recommender directory use this; the classifier's
    ``lmworks.json`` has more to check and goes through :func:`read_meta`.
    """
    directory = Path(directory)
    path = directory / meta_file
    if not path.is_file():
        raise ModelDirError(f"{directory}: not {what} ({meta_file} is missing)")
    meta = _load_json(path)
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        raise ModelDirError(f"{path}: not {what}")
    verify_checksums(directory, meta.get("files", {}))
    return meta


def write_manifest(directory: Path, meta_file: str, meta: dict[str, Any]) -> dict[str, Any]:
    """Write an application directory's manifest last: ``meta`` plus versions and file checksums."""
    meta = {**meta, "versions": package_versions(), "files": file_checksums(directory, skip=meta_file)}
    (directory / meta_file).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return meta


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelDirError(f"{path}: corrupt ({err})") from err


def check_output_dir(directory: str | Path, *, meta_file: str = META_FILE) -> None:
    """Refuse to replace anything but an earlier model directory (or an empty folder).

    Writing a model replaces ``directory`` as a whole; a typo such as ``--output .``
    must not delete a folder of unrelated files.
    """
    directory = Path(directory)
    if not directory.exists():
        return
    if not directory.is_dir():
        raise ModelDirError(f"{directory}: exists and is not a directory")
    if any(directory.iterdir()) and not (directory / meta_file).is_file():
        raise ModelDirError(
            f"{directory}: exists and is not an lmworks {'model' if meta_file == META_FILE else 'output'} "
            "directory; refusing to replace it "
            "(choose another --output or remove it)"
        )


def write_meta(directory: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Record checksums of every file in ``directory`` and write ``lmworks.json`` last."""
    files = file_checksums(directory)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **meta,
        "versions": package_versions(),
        "files": files,
    }
    (directory / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return meta


def read_meta(directory: str | Path, *, verify: bool = True) -> dict[str, Any]:
    """Read and check ``lmworks.json``; raise :class:`ModelDirError` on any inconsistency."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ModelDirError(f"{directory}: model directory not found")
    path = directory / META_FILE
    if not path.is_file():
        hint = " (training may have been interrupted; see --resume)" if any(directory.iterdir()) else ""
        raise ModelDirError(f"{directory}: not an lmworks model directory, {META_FILE} is missing{hint}")
    meta = _load_json(path)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelDirError(f"{path}: not an lmworks model description")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise ModelDirError(
            f"{path}: format version {meta['format_version']} is newer than this lmworks "
            f"understands ({FORMAT_VERSION}); upgrade lmworks"
        )
    labels = meta.get("labels")
    if not isinstance(labels, list) or len(labels) < 1 or len(set(labels)) != len(labels):
        raise ModelDirError(f"{path}: 'labels' must be a list of distinct label names")
    if verify:
        if meta.get("backend") in ("transformer", "onnx"):
            _check_config_labels(directory / "config.json", labels)
        verify_checksums(directory, meta.get("files", {}))
    return meta


def _check_config_labels(config_path: Path, labels: list[str]) -> None:
    """``config.json``'s ``id2label`` must list the same labels in the same order."""
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ModelDirError(f"{config_path}: unreadable ({err})") from err
    id2label = config.get("id2label") or {}
    in_config = [id2label.get(str(i), id2label.get(i)) for i in range(len(id2label))]
    if in_config != labels:
        raise ModelDirError(
            f"{config_path}: id2label {in_config} disagrees with {META_FILE} labels {labels}; "
            "the directory was edited or mixed from two models"
        )
