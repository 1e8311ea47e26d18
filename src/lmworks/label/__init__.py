"""Active-learning labelling: a page that asks for the most informative texts and retrains as you go.

``LabelProject.start(directory, pool, LabelConfig(labels=[...]))`` creates (or reopens) a
project; :func:`lmworks.label.service.create_label_app` serves its page and JSON API.
"""

from .config import LabelConfig
from .loop import PoolModel, Strategy
from .project import LabelProject, NotFound

__all__ = ["LabelConfig", "LabelProject", "NotFound", "PoolModel", "Strategy"]
