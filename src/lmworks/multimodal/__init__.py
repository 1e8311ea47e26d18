"""Multimodal joint prediction: text, image, numeric and categorical columns fused late.

:mod:`.columns` says which columns a model reads and reads them into checked rows;
:mod:`.tabular` standardises numbers and indexes categories (training statistics only);
:mod:`.network` is the fusion network; :mod:`.backend` trains it on the one engine and
saves it. Images are read by :mod:`lmworks.images` (EfficientNet-Lite0, features cached).
The estimator users fit is :class:`lmworks.fusion.MultimodalClassifier`.
"""

from .columns import MultimodalConfig, RowDataset, read_rows

__all__ = ["MultimodalConfig", "RowDataset", "read_rows"]
