"""Explanations: which words (and, for multimodal models, which inputs) made each decision.

``lmworks.explain.explain(classifier, texts)`` or ``TextClassifier.explain(texts)``;
:mod:`.faithfulness` measures how faithful an explanation is (ERASER), :mod:`.report`
writes the HTML pages and :mod:`.summary` aggregates a file's explanations per class.
"""

from .explainer import METHODS, explain
from .explanation import Explanation
from .summary import global_words

__all__ = ["METHODS", "Explanation", "explain", "global_words"]
