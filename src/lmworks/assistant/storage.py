"""The assistant's directory: entries, vectors, index, settings, calibration and a tuned encoder.

``assistant.json`` is written last, with a checksum of every file, and read first:
a half-copied or edited index is refused with one line before anything is loaded.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_dir
from ..embed import SentenceEncoder
from ..index import INDEXES, VECTORS_FILE, ExactIndex
from ..model_dir import check_output_dir, read_manifest, write_manifest
from .kb import FaqEntry
from .retrieval import Retriever

META_FILE = "assistant.json"
ENTRIES_FILE = "entries.jsonl"
ENCODER_DIR = "encoder"
FORMAT = "lmworks-assistant"
QA_VECTORS_FILE = "qa_vectors.npy"


@dataclass
class StoredIndex:
    """What an index directory holds, verified and read back."""

    directory: Path
    meta: dict[str, Any]
    entries: list[FaqEntry]
    question_vectors: np.ndarray
    qa_vectors: np.ndarray
    encoder_path: str | Path

    def load_index(self, kind: str, vectors: np.ndarray) -> ExactIndex:
        """The saved nearest-neighbour index of ``kind`` over ``vectors``."""
        index_class: Any = INDEXES[kind]
        index: ExactIndex = index_class.load(self.directory, vectors)
        return index


def write_index(directory: str | Path, retriever: Retriever, record: dict[str, Any], *,
                tuned_encoder: SentenceEncoder | None = None) -> Path:
    """Write the index directory atomically: entries, vectors, index, ``record`` (settings), tuned encoder."""
    directory = Path(directory)
    check_output_dir(directory, meta_file=META_FILE)
    with atomic_dir(directory) as tmp:
        with open(tmp / ENTRIES_FILE, "w", encoding="utf-8") as fh:
            for e in retriever.entries:
                fh.write(json.dumps(dataclasses.asdict(e), ensure_ascii=False) + "\n")
        np.save(tmp / VECTORS_FILE, retriever.question_vectors)
        np.save(tmp / QA_VECTORS_FILE, retriever.qa_vectors)
        retriever.index.save(tmp)
        encoder = str(retriever.encoder.path)
        if tuned_encoder is not None:
            tuned_encoder.save(tmp / ENCODER_DIR)
            encoder = ENCODER_DIR
        write_manifest(tmp, META_FILE, {"format": FORMAT, **record, "encoder": encoder,
                                        "n_entries": len(retriever.entries)})
    return directory


def read_index(directory: str | Path) -> StoredIndex:
    """Verify an index directory written by :func:`write_index` and read its contents."""
    directory = Path(directory)
    meta = read_manifest(directory, META_FILE, FORMAT, "an assistant index")
    with open(directory / ENTRIES_FILE, encoding="utf-8") as fh:
        entries = [FaqEntry(**json.loads(line)) for line in fh]
    encoder_path = directory / meta["encoder"] if meta["encoder"] == ENCODER_DIR else meta["encoder"]
    return StoredIndex(directory, meta, entries, np.load(directory / VECTORS_FILE),
                       np.load(directory / QA_VECTORS_FILE), encoder_path)
