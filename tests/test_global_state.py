"""Library calls leave the process as they found it: loggers, warning filters, torch threads."""

from __future__ import annotations

import logging
import warnings

import pandas as pd
import pytest
import torch

from conftest import make_sentiment
from lmworks import TextClassifier
from lmworks.data import read_dataset
from lmworks.export import ExportOptions, export_onnx
from lmworks.inference.files import predict_file
from lmworks.runtime import logging_state

pytest.importorskip("onnxruntime")


def _logger_state(name: str | None):
    lg = logging.getLogger(name)
    return lg.level, list(lg.handlers), list(lg.filters), lg.propagate, lg.disabled


def _snapshot():
    names = [None, "lmworks", "onnxruntime", "transformers", "efficientnet_lite_pytorch"]
    return ({name: _logger_state(name) for name in names}, list(warnings.filters), torch.get_num_threads(),
            logging.root.manager.disable)


def test_int8_export_training_and_prediction_leave_no_global_state(tiny_encoder, tiny_fast_options, tmp_path):
    texts, labels = make_sentiment(120, seed=3)
    pd.DataFrame({"text": texts, "label": labels}).to_csv(tmp_path / "data.csv", index=False)
    before = _snapshot()

    clf = TextClassifier(str(tiny_encoder), **tiny_fast_options)
    clf.fit(texts, labels, progress=False)
    model = clf.save(tmp_path / "model")
    export_onnx(model, tmp_path / "int8", ExportOptions(quantize="int8"), read_dataset(tmp_path / "data.csv"))
    predict_file(TextClassifier.load(tmp_path / "int8"), tmp_path / "data.csv", tmp_path / "out.csv", progress=False)

    assert _snapshot() == before
    # and a warning from user code still reaches the root logger's handlers as before
    assert logging.getLogger().level == before[0][None][0]


def test_logging_state_restores_level_handlers_and_propagation():
    lib = logging.getLogger("some.library")
    lib.setLevel(logging.INFO)
    before_root, before_lib = _logger_state(None), _logger_state("some.library")
    with logging_state({"root": logging.ERROR, "some.library": logging.CRITICAL}):
        assert logging.getLogger().level == logging.ERROR and lib.level == logging.CRITICAL
        logging.getLogger().addHandler(logging.NullHandler())  # what logging.warning() does via basicConfig
        lib.propagate = False
    assert _logger_state(None) == before_root and _logger_state("some.library") == before_lib
