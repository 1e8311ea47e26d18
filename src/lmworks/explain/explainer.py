"""Which words made the decision: one explanation per input, by the method that suits the model.

``explain(classifier, texts)`` picks the method from the model kind and names it in the
result:

=====================  ==================================================================
model                  method
=====================  ==================================================================
transformer            ``integrated_gradients`` on the embedding layer (:mod:`.gradients`)
TF-IDF                 ``tfidf_exact``: coefficient x feature value (:mod:`.linear`)
blend (log mix)        both, weighted by the blend's own weight: the blend averages the
                       two models' log-probabilities, whose centred form is exactly what
                       both methods attribute, so the sum explains the decision made
anything else          ``occlusion`` (ONNX / int8 exports, a probability-space blend)
multimodal             occlusion on the text columns, plus each modality's share
=====================  ==================================================================

Scores are in the class's centred logit (log-probability minus the mean over classes;
a multi-label model's logit), positive where a word supports the explained class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from ..modes import BlendMix
from .explanation import Explanation
from .occlusion import occlusion
from .words import Words, split_words

METHODS = ("auto", "integrated_gradients", "tfidf_exact", "occlusion")


@dataclass
class _Scores:
    """Per-text word scores for one class each, with what the method reports besides."""

    scores: list[np.ndarray]
    method: str
    words_read: list[int] | None = None
    delta: list[float] | None = None


def class_column(labels: Sequence[str], name: str | None) -> int | None:
    """The column of class ``name`` (``None`` for "the predicted class"); an unknown name is an error."""
    if name is None:
        return None
    if name not in labels:
        raise ConfigError(f"unknown class {name!r}: the model's classes are {', '.join(map(str, labels))}")
    return list(labels).index(name)


def check_texts(texts: Sequence[Any]) -> list[str]:
    """Texts as strings; an empty one is an error naming its position (1-based)."""
    out = []
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"text {i + 1} is empty: there is nothing to explain")
        out.append(text)
    return out


def attribute(backend: Any, words: Sequence[Words], columns: Sequence[int], *, multi_label: bool,
              method: str = "auto", steps: int = 8, baseline: str = "absent") -> _Scores:
    """Word scores of ``backend`` for class ``columns[i]`` of text ``i`` (see the module doc)."""
    from ..backends.blend import BlendBackend
    from ..backends.tfidf import TfidfBackend
    from ..backends.transformer import TransformerBackend

    if method not in METHODS:
        raise ConfigError(f"unknown explanation method {method!r}: choose {', '.join(METHODS)}")
    if isinstance(backend, BlendBackend) and method == "auto":
        return _blend(backend, words, columns, multi_label=multi_label, steps=steps, baseline=baseline)
    if isinstance(backend, TransformerBackend) and method in ("auto", "integrated_gradients"):
        from .gradients import integrated_gradients

        found = integrated_gradients(backend, words, columns, steps=steps, baseline=baseline)
        return _Scores([a.scores for a in found], "integrated_gradients", [a.words_read for a in found],
                       [a.delta for a in found])
    if isinstance(backend, TfidfBackend) and method in ("auto", "tfidf_exact"):
        exact = _tfidf(backend, words, columns, multi_label=multi_label)
        if exact is not None:
            return exact
    if method not in ("auto", "occlusion"):
        raise ConfigError(f"method {method!r} does not apply to a {backend.name} model; use auto or occlusion")
    proba_fn = lambda texts: backend.predict_proba_counted(texts)[0]  # noqa: E731 - truncation reported elsewhere
    return _Scores(occlusion(proba_fn, words, columns, multi_label=multi_label), "occlusion")


def _tfidf(backend: Any, words: Sequence[Words], columns: Sequence[int], *, multi_label: bool) -> _Scores | None:
    from .linear import linear_parts

    found = [linear_parts(backend.pipeline, w, c, multi_label=multi_label) for w, c in zip(words, columns)]
    if any(f is None for f in found):
        return None
    return _Scores([f[0] for f in found if f is not None], "tfidf_exact")


def _blend(backend: Any, words: Sequence[Words], columns: Sequence[int], *, multi_label: bool, steps: int,
           baseline: str) -> _Scores:
    w = backend.weight
    if w == 0:
        return attribute(backend.primary, words, columns, multi_label=multi_label, steps=steps, baseline=baseline)
    if backend.kind is not BlendMix.LOG:  # averaged probabilities are not a sum of the two explanations
        proba_fn = lambda texts: backend.predict_proba_counted(texts)[0]  # noqa: E731
        return _Scores(occlusion(proba_fn, words, columns, multi_label=multi_label), "occlusion")
    secondary = attribute(backend.secondary, words, columns, multi_label=multi_label)
    if w >= 1:
        return _Scores(secondary.scores, f"blend: 1.00 x {secondary.method}")
    primary = attribute(backend.primary, words, columns, multi_label=multi_label, steps=steps, baseline=baseline)
    return _Scores([(1 - w) * a + w * b for a, b in zip(primary.scores, secondary.scores)],
                   f"blend: {1 - w:.2f} x {primary.method} + {w:.2f} x {secondary.method}",
                   primary.words_read, primary.delta)


def explain(classifier: Any, inputs: Sequence[Any], *, target: str | None = None, all_classes: bool = False,
            method: str = "auto", steps: int = 8, baseline: str = "absent") -> list[Explanation]:
    """Explain ``classifier``'s decision on every input (texts; rows for a multimodal model).

    ``target`` explains that class instead of the predicted one; ``all_classes`` adds every
    class's scores (``Explanation.classes``). See the module doc for the methods.
    """
    classifier.check_fitted()
    backend, labels = classifier.backend_, list(classifier.labels_)
    multi_label = bool(classifier.config.multi_label)
    asked = class_column(labels, target)
    if backend.name == "multimodal":
        from .rows import explain_rows

        return explain_rows(classifier, inputs, asked, method=method)
    texts = check_texts(inputs)
    proba = classifier.predict_proba(texts)
    decided = classifier.decide(proba)
    columns = [asked if asked is not None else int(np.argmax(row)) for row in proba]
    words = [split_words(t) for t in texts]
    found = attribute(backend, words, columns, multi_label=multi_label, method=method, steps=steps, baseline=baseline)
    per_class = _every_class(backend, words, columns, found, labels, multi_label, method, steps, baseline) \
        if all_classes else None
    out = []
    for i, (w, column) in enumerate(zip(words, columns)):
        read = found.words_read[i] if found.words_read else _words_read(backend, w)
        out.append(Explanation(
            labels[column], decided[i], float(proba[i, column]), w.words, found.scores[i].tolist(), found.method,
            truncated=read < len(w), words_read=read, delta=found.delta[i] if found.delta else None,
            classes=per_class[i] if per_class else None))
    return out


def _every_class(backend: Any, words: Sequence[Words], columns: Sequence[int], found: _Scores, labels: list[str],
                 multi_label: bool, method: str, steps: int, baseline: str) -> list[dict[str, list[float]]]:
    """Scores for every class; for two single-label classes the other class's are the negation (exact)."""
    out: list[dict[str, list[float]]] = [{} for _ in words]
    for k, name in enumerate(labels):
        if len(labels) == 2 and not multi_label:
            scores = [s if c == k else -s for s, c in zip(found.scores, columns)]
        elif all(c == k for c in columns):
            scores = found.scores
        else:
            scores = attribute(backend, words, [k] * len(words), multi_label=multi_label, method=method, steps=steps,
                               baseline=baseline).scores
        for i, s in enumerate(scores):
            out[i][name] = [round(float(x), 6) for x in s]
    return out


def _words_read(backend: Any, words: Words) -> int:
    """Words within the model's token limit (every word for a model without one)."""
    limited = getattr(backend, "primary", backend)
    tokenizer, limit = getattr(limited, "tokenizer", None), getattr(limited, "max_length", None)
    if tokenizer is None or limit is None:
        return len(words)
    offsets = tokenizer(words.text, truncation=True, max_length=limit, return_offsets_mapping=True,
                        verbose=False)["offset_mapping"]
    end = max((e for _, e in offsets), default=0)
    return int(np.sum(words.starts < end))
