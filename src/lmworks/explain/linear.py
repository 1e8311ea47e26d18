"""Exact word contributions of the TF-IDF + logistic-regression model.

The model's decision is linear in its features: ``z = W x + b``. For a class ``c`` the
explanation is each feature's ``(W[c] - mean_k W[k])[j] * x[j]`` — the class's *centred*
logit, the quantity a softmax actually depends on (for two classes it is half the log-odds,
for a multi-label model the label's own logit). Summed over the words, plus the centred
intercept, it gives the model's centred logit exactly: nothing is approximated.

Each feature is an n-gram that occurs at known places in the text: word 1-2 grams over the
vectorizer's token pattern, character 2-4 grams inside white-space separated chunks
(``char_wb``). A feature's contribution is shared equally between its occurrences and, for
each occurrence, between the characters it covers, so a character n-gram of "superb!" goes
to "superb" and "!" in proportion. The spans are rebuilt from the fitted vectorizer's own
settings and checked against its analyzer; a vectorizer this module cannot reproduce makes
:func:`linear_parts` return ``None`` and the caller falls back to occlusion.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import numpy as np

from .words import Words

Occurrence = tuple[str, list[tuple[int, int]]]


def _word_terms(vectorizer: Any, text: str) -> list[Occurrence] | None:
    if vectorizer.tokenizer is not None or vectorizer.stop_words is not None:
        return None
    pattern = re.compile(vectorizer.token_pattern)
    if pattern.groups > 1:
        return None
    tokens = [(m.group(pattern.groups), m.span(pattern.groups)) for m in pattern.finditer(text)]
    low, high = vectorizer.ngram_range
    out: list[Occurrence] = []
    for n in range(low, high + 1):
        for i in range(len(tokens) - n + 1):
            piece = tokens[i:i + n]
            out.append((" ".join(t for t, _ in piece), [span for _, span in piece]))
    return out


def _char_wb_terms(vectorizer: Any, text: str) -> list[Occurrence]:
    low, high = vectorizer.ngram_range
    out: list[Occurrence] = []
    for chunk in re.finditer(r"\S+", text):
        padded, start = f" {chunk.group()} ", chunk.start()
        for n in range(low, high + 1):
            for offset in range(max(len(padded) - n + 1, 1)):
                span = (max(start + offset - 1, chunk.start()), min(start + offset + n - 1, chunk.end()))
                out.append((padded[offset:offset + n], [span]))
            if len(padded) <= n:  # as scikit-learn: a chunk no longer than n ends its n-gram loop
                break
    return out


def term_occurrences(vectorizer: Any, text: str) -> list[Occurrence] | None:
    """Every n-gram ``vectorizer`` extracts from ``text``, with the character spans it covers.

    ``None`` when the spans cannot be rebuilt faithfully (a custom analyzer or tokenizer,
    a preprocessor that changes the text's length) or disagree with the analyzer's own output.
    """
    if callable(vectorizer.analyzer) or vectorizer.analyzer not in ("word", "char_wb"):
        return None
    prepared = vectorizer.build_preprocessor()(text)
    if len(prepared) != len(text):
        return None
    if vectorizer.analyzer == "char_wb":
        prepared = re.sub(r"\s", " ", prepared)  # sklearn collapses runs of white space; spans stay put
        found: list[Occurrence] | None = _char_wb_terms(vectorizer, prepared)
    else:
        found = _word_terms(vectorizer, prepared)
    if found is None or Counter(t for t, _ in found) != Counter(vectorizer.build_analyzer()(text)):
        return None
    return found


def class_direction(classifier: Any, column: int, *, multi_label: bool) -> tuple[np.ndarray, float] | None:
    """Weights and intercept of class ``column``'s centred logit (its own logit for multi-label)."""
    from sklearn.linear_model import LogisticRegression

    if multi_label:
        estimator = classifier.estimators_[column]
        if not isinstance(estimator, LogisticRegression):  # a label that was always on or always off
            return np.zeros(classifier.estimators_[0].coef_.shape[1] if hasattr(classifier.estimators_[0], "coef_")
                            else 0), 0.0
        return np.asarray(estimator.coef_[0], float), float(estimator.intercept_[0])
    if not isinstance(classifier, LogisticRegression):
        return None
    coef, intercept = np.asarray(classifier.coef_, float), np.asarray(classifier.intercept_, float)
    if coef.shape[0] == 1:  # binary: the decision is the log-odds of class 1; centred logits are +-half of it
        sign = 0.5 if column == 1 else -0.5
        return sign * coef[0], sign * float(intercept[0])
    return coef[column] - coef.mean(axis=0), float(intercept[column] - intercept.mean())


def linear_parts(pipeline: Any, words: Words, column: int, *, multi_label: bool) -> tuple[np.ndarray, float] | None:
    """Per-word contributions to class ``column``'s centred logit, and the intercept's share.

    ``scores.sum() + intercept`` equals the model's centred logit for the text.
    """
    from sklearn.pipeline import FeatureUnion

    steps = getattr(pipeline, "steps", None)
    if not steps or len(steps) != 2 or not isinstance(steps[0][1], FeatureUnion):
        return None
    union, classifier = steps[0][1], steps[1][1]
    direction = class_direction(classifier, column, multi_label=multi_label)
    if direction is None or union.transformer_weights:
        return None
    weights, intercept = direction
    scores, offset = np.zeros(len(words)), 0
    for _, vectorizer in union.transformer_list:
        occurrences = term_occurrences(vectorizer, words.text)
        if occurrences is None:
            return None
        row = vectorizer.transform([words.text])
        values = dict(zip(row.indices.tolist(), row.data.tolist()))
        counts = Counter(t for t, _ in occurrences)
        spans, shares = [], []
        for term, term_spans in occurrences:
            j = vectorizer.vocabulary_.get(term)
            if j is None or j not in values:
                continue
            share = weights[offset + j] * values[j] / counts[term] / len(term_spans)
            spans.extend(term_spans)
            shares.extend([share] * len(term_spans))
        scores += words.spread(spans, shares)
        offset += len(vectorizer.vocabulary_)
    return scores, intercept
