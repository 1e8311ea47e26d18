"""The multimodal backend: rows in, probabilities out, trained on the one engine.

Text columns are joined and tokenised once, image features come from the frozen
backbone through the feature cache, numbers and categories through the training
split's statistics (:mod:`.tabular`); the fusion network (:mod:`.network`) trains with
:class:`MultimodalObjective`. The model directory holds the network's weights, the
encoder's config and tokenizer, and everything the preprocessing learnt.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..backends.base import Backend, FitRun
from ..errors import ConfigError, ModelDirError
from ..heads import activate
from ..images import FEATURE_DIM, ImageFeatures
from ..models import cache_dir, resolve_encoder
from ..modes import Adversarial, ClassWeighting
from ..runtime import quiet_transformers, seed_everything, torch_threads
from ..tokens import load_tokenizer, pad_batch, sorted_batches, tokenize
from ..training.batching import length_grouped_batches
from ..training.losses import Loss, make_loss
from ..training.objectives import Objective
from .columns import MultimodalConfig, joined_text, rows_from_records
from .network import FusionNetwork, NetworkShape
from .tabular import TabularStats

WEIGHTS_FILE = "fusion.safetensors"
PREPROCESSING_FILE = "preprocessing.json"


@dataclass
class Encoded:
    """Rows as arrays: token ids of the joined text, image features with a missing flag, numbers, categories."""

    input_ids: list[list[int]] | None
    images: np.ndarray | None
    numeric: np.ndarray | None
    categories: np.ndarray | None
    n: int

    def lengths(self) -> list[int]:
        """Token counts (1 per row without text), for length-grouped batches."""
        return [len(x) for x in self.input_ids] if self.input_ids is not None else [1] * self.n

    def batch(self, index: Sequence[int], pad_id: int) -> dict[str, torch.Tensor]:
        """The tensors :meth:`FusionNetwork.forward` reads, for rows ``index``."""
        out: dict[str, torch.Tensor] = {}
        if self.input_ids is not None:
            out["input_ids"], out["attention_mask"] = pad_batch([self.input_ids[i] for i in index], pad_id)
        if self.images is not None:
            out["images"] = torch.from_numpy(self.images[list(index)])
        if self.numeric is not None:
            out["numeric"] = torch.from_numpy(self.numeric[list(index)])
        if self.categories is not None:
            out["categories"] = torch.from_numpy(self.categories[list(index)])
        return out


class MultimodalObjective(Objective):
    """Cross-entropy (or BCE) over length-grouped batches of encoded rows."""

    def __init__(self, encoded: Encoded, targets: torch.Tensor, *, loss_fn: Loss, pad_id: int, batch_size: int,
                 seed: int) -> None:
        self.encoded, self.targets, self.loss_fn = encoded, targets, loss_fn
        self.pad_id, self.batch_size, self.seed = pad_id, batch_size, seed

    def batches(self, epoch: int) -> list[list[int]]:  # noqa: D102
        return length_grouped_batches(self.encoded.lengths(), self.batch_size, seed=self.seed + epoch)

    def loss(self, model: nn.Module, batch: list[int]) -> torch.Tensor:  # noqa: D102
        return self.loss_fn(model(self.encoded.batch(batch, self.pad_id)), self.targets[batch])


class MultimodalBackend(Backend):
    """Text, image, numeric and categorical columns fused late (see the package docstring)."""

    name = "multimodal"

    def __init__(self, model: str = "minilm", columns: MultimodalConfig | None = None) -> None:
        self.model = model
        self.columns = columns or MultimodalConfig()
        self.network: Any = None
        self.tokenizer: Any = None
        self.stats = TabularStats()
        self.max_length = 128
        self.multi_label = False
        self.num_threads: int | None = None
        self.images = ImageFeatures(self.columns.image_model, size=self.columns.image_size,
                                    cache_dir=cache_dir() / "image-features")

    @property
    def pad_id(self) -> int:
        """The tokenizer's padding id (0 without text)."""
        return int(self.tokenizer.pad_token_id) if self.tokenizer is not None else 0

    def inputs(self, texts: Any) -> list[dict[str, Any]]:
        """Rows (dicts, or a DataFrame's rows) checked and typed; relative image paths are the working folder's."""
        return rows_from_records(texts, self.columns)

    def encode(self, rows: Sequence[dict[str, Any]]) -> Encoded:
        """Arrays for ``rows`` (image features through the cache)."""
        cols = self.columns
        ids = None
        if cols.text_columns:
            ids = tokenize(self.tokenizer, [joined_text(r, cols.text_columns) or "-" for r in rows], self.max_length)
        images = None
        if cols.image_columns:
            images = np.zeros((len(rows), len(cols.image_columns), FEATURE_DIM + 1), dtype=np.float32)
            for j, column in enumerate(cols.image_columns):
                features, missing = self.images.encode([r[column] for r in rows], skip_bad=cols.skip_bad_images)
                images[:, j, :FEATURE_DIM] = features
                images[:, j, FEATURE_DIM] = missing
        numeric = self.stats.numeric_matrix(rows) if cols.numeric_columns else None
        categories = self.stats.category_indices(rows) if cols.categorical_columns else None
        return Encoded(ids, images, numeric, categories, len(rows))

    def fit(self, texts: Sequence[Any], targets: np.ndarray, run: FitRun) -> dict[str, Any]:
        """Preprocess, build the network, train it on the engine; the best dev checkpoint is kept."""
        from ..training.engine import Trainer

        rows, config = list(texts), run.config
        if config.adversarial is not Adversarial.NONE or run.soft_targets is not None:
            raise ConfigError("multimodal models do not support --adversarial or distillation yet")
        self.max_length, self.multi_label, self.num_threads = config.max_length, config.multi_label, config.num_threads
        with torch_threads(config.num_threads):
            encoder = self._text_encoder()
            self.stats = TabularStats.fit(rows, self.columns.numeric_columns, self.columns.categorical_columns)
            encoded = self.encode(rows)
            shape = NetworkShape(len(run.labels), len(self.columns.image_columns),
                                 0 if encoded.numeric is None else encoded.numeric.shape[1],
                                 tuple(len(self.stats.categories[c]) for c in self.columns.categorical_columns),
                                 dropout=config.dropout, modality_dropout=self.columns.modality_dropout)
            seed_everything(config.seed)  # the new layers' initialisation depends on it
            self.network = FusionNetwork(encoder, shape)
            loss_fn = make_loss(targets, len(run.labels), multi_label=config.multi_label,
                                balanced=config.class_weights is ClassWeighting.BALANCED,
                                label_smoothing=config.label_smoothing)
            objective = MultimodalObjective(
                encoded, torch.as_tensor(targets, dtype=torch.float32 if config.multi_label else torch.long),
                loss_fn=loss_fn, pad_id=self.pad_id, batch_size=config.batch_size, seed=config.seed)
            eval_fn = None
            if run.eval_texts and run.score_fn is not None:
                dev, score_fn = self.encode(list(run.eval_texts)), run.score_fn  # type: ignore[arg-type]
                eval_fn = lambda net: score_fn(self._proba(dev))  # noqa: E731
            trainer = Trainer(self.network, config, objective, eval_fn=eval_fn, checkpoint_dir=run.checkpoint_dir,
                              progress=run.progress)
            return trainer.train(resume=run.resume).info()

    def _text_encoder(self) -> Any:
        if not self.columns.text_columns:
            return None
        from transformers import AutoModel, AutoTokenizer

        path = resolve_encoder(self.model)
        with quiet_transformers():
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            return AutoModel.from_pretrained(path, local_files_only=True)

    def _proba(self, encoded: Encoded) -> np.ndarray:
        out = np.zeros((encoded.n, int(self.network.shape.n_labels)), dtype=np.float32)
        was_training = self.network.training
        self.network.eval()
        with torch.inference_mode():
            for batch in sorted_batches(encoded.lengths(), 4096):
                out[batch] = self.network(encoded.batch(batch, self.pad_id)).float().numpy()
        self.network.train(was_training)
        return activate(out, multi_label=self.multi_label)

    def predict_proba(self, texts: Sequence[Any]) -> np.ndarray:
        """Probabilities for rows (dicts from column to value, as :func:`.columns.check_row` makes them)."""
        if self.network is None:
            raise RuntimeError("backend is not fitted")
        with torch_threads(self.num_threads):
            return self._proba(self.encode(list(texts)))

    def describe(self) -> dict[str, Any]:
        """Columns by kind, preprocessing, network shape, text encoder."""
        return {"columns": self.columns.columns_record(), "multimodal": self.columns.to_dict(),
                "network": dataclasses.asdict(self.network.shape), "base_model": self.model,
                "max_length": self.max_length, "image_features": {"model": self.columns.image_model,
                                                                  "size": self.columns.image_size}}

    def save(self, directory: Path) -> None:
        """Fusion weights, preprocessing statistics, the encoder's config and tokenizer."""
        from safetensors.torch import save_file

        state = {k: v.detach().contiguous() for k, v in self.network.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_FILE), metadata={"format": "pt"})
        (directory / PREPROCESSING_FILE).write_text(json.dumps(self.stats.to_dict(), indent=2), encoding="utf-8")
        if self.network.encoder is not None:
            with quiet_transformers():
                self.network.encoder.config.save_pretrained(directory)
                self.tokenizer.save_pretrained(directory)

    @classmethod
    def load(cls, directory: Path, meta: dict[str, Any]) -> MultimodalBackend:
        """Rebuild the network exactly; any mismatch is a one-line :class:`ModelDirError`."""
        from safetensors.torch import load_file

        backend = cls(meta.get("base_model", "minilm"), MultimodalConfig.from_dict(meta["multimodal"]))
        backend.max_length = int(meta.get("max_length", 128))
        backend.multi_label = meta.get("task") == "multi_label"
        backend.num_threads = meta.get("num_threads")
        backend.stats = TabularStats.from_dict(json.loads((directory / PREPROCESSING_FILE).read_text("utf-8")))
        encoder = None
        if backend.columns.text_columns:
            from transformers import AutoConfig, AutoModel

            with quiet_transformers():
                encoder = AutoModel.from_config(AutoConfig.from_pretrained(directory, local_files_only=True))
            backend.tokenizer = load_tokenizer(directory)
        shape = meta["network"]
        backend.network = FusionNetwork(encoder, NetworkShape(**{**shape, "category_sizes":
                                                                 tuple(shape["category_sizes"])}))
        try:
            backend.network.load_state_dict(load_file(str(directory / WEIGHTS_FILE)), strict=True)
        except RuntimeError as err:
            raise ModelDirError(f"{directory}: fusion weights do not match lmworks.json ({str(err)[:120]})") from err
        backend.network.eval()
        return backend
