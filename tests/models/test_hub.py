"""Hugging Face Hub sources through the real snapshot_download, against a loopback server that
imitates the Hub (tests/hub_helpers.FakeHub), with a temporary HF cache."""
from __future__ import annotations

import socket

import pytest

from core.errors import ModelLoadError
from models import hub
from models.sources import load_encoder, resolve


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_downloads_only_model_files_and_pins_the_commit(fake_hub, tiny_xlmr, tmp_path):
    commit = fake_hub.add_repo("org/tiny", tiny_xlmr, extra={"pytorch_model.bin": b"pickle!",
                                                            "README.md": b"# tiny", "onnx/model.onnx": b"x"})
    resolved = resolve("hf:org/tiny", cache_dir=tmp_path / "hf")
    assert resolved.kind == "hub" and resolved.source == "hf:org/tiny" and resolved.revision == commit
    assert resolved.path.is_relative_to(tmp_path / "hf")
    assert fake_hub.downloaded() == {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"}
    assert not (resolved.path / "pytorch_model.bin").exists()
    assert load_encoder(resolved.path).config.model_type == "xlm-roberta"
    # an id without the hf: prefix, and an explicit revision, reach the same snapshot
    assert resolve("org/tiny", revision=commit, cache_dir=tmp_path / "hf").path == resolved.path


def test_offline_mode_uses_the_cache(fake_hub, tiny_xlmr, tmp_path, monkeypatch):
    fake_hub.add_repo("org/tiny", tiny_xlmr)
    online = resolve("org/tiny", cache_dir=tmp_path / "hf")
    served = len(fake_hub.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    offline = resolve("org/tiny", cache_dir=tmp_path / "hf")
    assert offline.path == online.path and len(fake_hub.requests) == served   # no request made
    with pytest.raises(ModelLoadError, match="HF_HUB_OFFLINE is set and the cache does not hold it"):
        resolve("org/other", cache_dir=tmp_path / "hf")


def test_cached_model_survives_an_unreachable_hub(fake_hub, tiny_xlmr, tmp_path, monkeypatch):
    fake_hub.add_repo("org/tiny", tiny_xlmr)
    online = resolve("org/tiny", cache_dir=tmp_path / "hf")
    monkeypatch.setenv("HF_ENDPOINT", _closed_port_url())
    assert resolve("org/tiny", cache_dir=tmp_path / "hf").path == online.path


def test_unreachable_hub_names_the_ways_out(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", _closed_port_url())
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(ModelLoadError) as info:
        resolve("org/absent-model", cache_dir=tmp_path / "hf")
    message = str(info.value)
    assert "'org/absent-model'" in message and "HF_HUB_OFFLINE=1" in message
    assert "pass the directory instead" in message and "\n" not in message


def test_repo_without_safetensors_is_refused(fake_hub, tiny_bert, tmp_path):
    (tiny_bert / "model.safetensors").rename(tiny_bert / "pytorch_model.bin")
    fake_hub.add_repo("org/pickled", tiny_bert)
    with pytest.raises(ModelLoadError, match="has no safetensors weights"):
        resolve("hf:org/pickled", cache_dir=tmp_path / "hf")
    assert "pytorch_model.bin" not in fake_hub.downloaded()


def test_unknown_repo_and_revision(fake_hub, tiny_bert, tmp_path):
    fake_hub.add_repo("org/tiny", tiny_bert)
    with pytest.raises(ModelLoadError, match="'org/nope' does not exist"):
        resolve("org/nope", cache_dir=tmp_path / "hf")
    with pytest.raises(ModelLoadError, match="has no revision 'v9'"):
        resolve("org/tiny", revision="v9", cache_dir=tmp_path / "hf")


def test_snapshot_revision():
    from pathlib import Path

    commit = "a" * 40
    assert hub.snapshot_revision(Path(f"/c/models--o--n/snapshots/{commit}")) == commit
    assert hub.snapshot_revision(Path("/some/dir")) is None
