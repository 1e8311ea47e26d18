"""Customer-service assistant: answer from historical Q&A, hand off when unsure.

Build an index of past questions (:mod:`.kb`, :mod:`lmworks.embed`, :mod:`.index`), answer new
questions by nearest question with a calibrated confidence threshold and an ambiguity
margin (:mod:`.assistant`), adapt the encoder contrastively (:mod:`.tune`), and serve
it over HTTP with a chat page (:mod:`.service`).
"""

from __future__ import annotations

from .assistant import Assistant, AssistantConfig
from .kb import FaqEntry, read_faq, read_queries

__all__ = ["Assistant", "AssistantConfig", "FaqEntry", "read_faq", "read_queries"]
