"""Knowledge distillation: a small student learns a large teacher's predictions.

The teacher is any lmworks model directory (typically ``--model mpnet``, often blended
with TF-IDF): accurate but several times slower to run. Its probabilities over the
training texts, and over extra unlabelled in-domain texts when there are some, are
computed once and cached; the student (MiniLM by default) then trains on the one
training engine with a loss mixing the true labels and the teacher's
temperature-softened probabilities (Hinton et al. 2015), chooses its checkpoint on
dev data as ``lmworks train`` does, and is saved as an ordinary model directory:
``predict``, ``export`` and ``serve`` treat it like any other. Unlabelled text is where
distillation earns most: the student sees how the teacher reads texts it has no label
for (DistilBERT, TinyBERT and their successors all lean on it).

Teacher probabilities are cached under ``$LMWORKS_CACHE/teacher/`` (or ``cache_dir``),
keyed by a SHA-256 of the teacher's file checksums and of the texts, and checked
when read: a retrained teacher, other texts or a damaged cache file recompute them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_file
from .augment import fragments
from .classifier import TextClassifier
from .errors import ConfigError, Rule, check_rules
from .models import cache_dir as default_cache_dir
from .predictor import Predictor
from .teacher import TeacherSignal

LOGGER = logging.getLogger("lmworks")

_RULES: tuple[Rule, ...] = (
    (lambda c: 0 <= c.alpha <= 1, "alpha must be in [0, 1], got {alpha}"),
    (lambda c: c.temperature > 0, "temperature must be > 0, got {temperature}"),
    (lambda c: c.augment >= 0, "augment must be >= 0, got {augment}"),
    (lambda c: c.unlabeled_limit is None or c.unlabeled_limit >= 0,
     "unlabeled_limit must be >= 0, got {unlabeled_limit}"),
)


@dataclass
class DistillConfig:
    """How the student learns from the teacher.

    Attributes
    ----------
    alpha:
        Weight of the true labels' loss; ``1 - alpha`` goes to matching the teacher.
        Unlabelled texts only have the teacher's part.
    temperature:
        Both distributions are softened by it before they are compared: above 1 the
        student also learns how the teacher ranks the classes it did not pick.
    cache_dir:
        Where teacher probabilities are cached (default ``$LMWORKS_CACHE/teacher``).
    teacher_threads:
        Threads the teacher predicts with (default: the usable CPUs).
    augment:
        Fragments per training text (:func:`lmworks.augment.fragments`) that the teacher
        labels and the student learns like unlabelled text; 0 for none.
    unlabeled_limit:
        Use a random sample of this many unlabelled texts (``None``: all). The time
        budget's knob: each unlabelled text costs one teacher prediction and a student
        step's share per epoch. The sample is drawn with a fixed seed, not the
        student's, so students of several seeds share the teacher's cached predictions.

    The temperature was chosen on the Rotten Tomatoes dev split (2 over 4); ``alpha`` 0.5
    is the usual even mix and was not varied; ``augment`` 1 added 0.16 dev points at
    twice the cost, so it stays off by default (``docs/research-log/benchmarks-history.md``).
    """

    alpha: float = 0.5
    temperature: float = 2.0
    cache_dir: str | None = None
    teacher_threads: int | None = None
    augment: int = 0
    unlabeled_limit: int | None = None

    def __post_init__(self) -> None:
        check_rules(self, _RULES)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return dataclasses.asdict(self)


def teacher_fingerprint(teacher_dir: str | Path) -> str:
    """SHA-256 of the teacher's ``lmworks.json`` checksums: changes whenever any of its files does."""
    meta = json.loads((Path(teacher_dir) / "lmworks.json").read_text(encoding="utf-8"))
    payload = json.dumps({"files": meta.get("files", {}), "labels": meta.get("labels")}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def _texts_digest(texts: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8", errors="replace"))
        digest.update(b"\0")
    return digest.hexdigest()


def teacher_probabilities(teacher: Predictor, texts: Sequence[str], *, cache: Path | None,
                          teacher_id: str) -> np.ndarray:
    """The teacher's probabilities for ``texts`` (columns in ``teacher.labels`` order), cached.

    A cache file holds the probabilities and the SHA-256 of its own content under the
    key; one that fails the check is recomputed, not trusted.
    """
    key = hashlib.sha256(f"{teacher_id}:{_texts_digest(texts)}".encode()).hexdigest()[:32]
    path = cache / f"{key}.npz" if cache is not None else None
    if path is not None and path.is_file():
        try:
            with np.load(path) as stored:
                proba, check = stored["proba"], str(stored["sha256"])
            if hashlib.sha256(proba.tobytes()).hexdigest() == check and proba.shape == (len(texts),
                                                                                        len(teacher.labels)):
                LOGGER.info("teacher probabilities for %d texts read from the cache (%s)", len(texts), path)
                return proba
        except (OSError, ValueError, KeyError):
            pass
        LOGGER.warning("teacher cache %s is damaged; recomputing", path)
    started = time.perf_counter()
    proba = np.asarray(teacher.predict_proba(list(texts)), dtype=np.float32)
    LOGGER.info("teacher predicted %d texts in %.0f s", len(texts), time.perf_counter() - started)
    if path is not None:
        with atomic_file(path, "wb") as fh:
            np.savez(fh, proba=proba, sha256=np.asarray(hashlib.sha256(proba.tobytes()).hexdigest()))
    return proba


def distill(
    teacher_dir: str | Path,
    texts: Sequence[str],
    labels: Sequence[Any],
    eval_texts: Sequence[str] | None = None,
    eval_labels: Sequence[Any] | None = None,
    *,
    unlabeled: Sequence[str] = (),
    student: TextClassifier | None = None,
    config: DistillConfig | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    columns: dict[str, Any] | None = None,
) -> TextClassifier:
    """Train ``student`` (default: ``TextClassifier("minilm")``) on the labels and the teacher's predictions.

    The teacher's label set must be the data's. Returns the fitted student; its
    ``train_info_["distillation"]`` records the teacher (path, fingerprint, dev scores)
    and the settings, and ``save`` writes them to ``lmworks.json``.
    """
    config = config or DistillConfig()
    student = student if student is not None else TextClassifier("minilm")
    if student.model == "tfidf":
        raise ConfigError("the student must be an encoder (minilm, mpnet or a directory): TF-IDF cannot learn "
                          "from soft targets")
    teacher = Predictor.load(teacher_dir, num_threads=config.teacher_threads)
    if teacher.task != "single_label":
        raise ConfigError(f"{teacher_dir}: distillation supports single-label teachers")
    cache = Path(config.cache_dir) if config.cache_dir else default_cache_dir() / "teacher"
    teacher_id = teacher_fingerprint(teacher_dir)
    # the student's dev split made here, as fit makes it, so no augmented fragment comes from a dev text
    texts, labels, eval_texts, eval_labels, _ = student.split(texts, labels, eval_texts, eval_labels)
    unlabeled = sample_texts([str(t) for t in unlabeled], config.unlabeled_limit)
    if config.augment:
        extra = fragments(texts, config.augment, seed=student.config.seed)
        LOGGER.info("%d fragments of the training texts added for the teacher to label", len(extra))
        unlabeled += extra
    signal = TeacherSignal(
        labels=list(teacher.labels),
        proba=teacher_probabilities(teacher, texts, cache=cache, teacher_id=teacher_id),
        unlabeled_texts=unlabeled,
        unlabeled_proba=teacher_probabilities(teacher, unlabeled, cache=cache, teacher_id=teacher_id)
        if unlabeled else None,
        alpha=config.alpha, temperature=config.temperature,
        record={"teacher": str(Path(teacher_dir).resolve()), "teacher_fingerprint": teacher_id,
                "teacher_base_model": teacher.meta.get("base_model"), "augment": config.augment,
                "unlabeled_limit": config.unlabeled_limit,
                "teacher_dev": {k: v for k, v in ((teacher.meta.get("metrics") or {}).get("dev") or {}).items()
                                if k in ("accuracy", "macro_f1", "log_loss", "n")}},
    )
    del teacher  # free the teacher's weights before the student trains
    return student.fit(texts, labels, eval_texts, eval_labels, checkpoint_dir=checkpoint_dir, resume=resume,
                       progress=progress, teacher=signal, columns=columns)


def sample_texts(texts: list[str], limit: int | None, *, seed: int = 0) -> list[str]:
    """``limit`` of ``texts`` drawn at random (in their original order), or all of them."""
    if limit is None or limit >= len(texts):
        return texts
    keep = np.random.default_rng(seed).choice(len(texts), limit, replace=False)
    return [texts[i] for i in sorted(keep)]
