"""The XLM-R tokenizer rebuilt from an E5S1 vocabulary (synthetic file written by the test)."""
from __future__ import annotations

import json

import pytest
from tokenizers import normalizers

from core.errors import ModelLoadError
from models import e5_tokenizer
from models.e5_tokenizer import (NORMALIZER_NFKC, NORMALIZER_PRECOMPILED, _protobuf_bytes_field,
                                         build_backend_tokenizer, build_normalizer, save_tokenizer)
from models.e5file import read_e5_file

from models_helpers import NORM_MAP, write_synthetic_e5


@pytest.fixture
def vocab(synthetic_e5):
    return read_e5_file(synthetic_e5.path).vocab


def _ids(tok, text):
    return tok.encode(text).ids


@pytest.mark.parametrize("charsmap", ["precompiled", "nfkc"])
def test_normaliser_reproduces_the_file_map(monkeypatch, charsmap):
    if charsmap == "nfkc":
        monkeypatch.setattr(e5_tokenizer, "compile_charsmap", lambda norm_map: None)
    else:
        pytest.importorskip("sentencepiece")
    normalizer, kind = build_normalizer(NORM_MAP)
    assert kind == (NORMALIZER_PRECOMPILED if charsmap == "precompiled" else NORMALIZER_NFKC)
    for cp, out in NORM_MAP.items():
        assert normalizer.normalize_str(f"x{chr(cp)}y") == f"x{out}y".replace("  ", " ")
    assert normalizer.normalize_str("a \t  b") == "a b"          # tab -> space, then runs collapse
    assert normalizer.normalize_str("plain text") == "plain text"


def test_a_charsmap_that_disagrees_with_the_map_is_not_used(monkeypatch):
    pytest.importorskip("sentencepiece")
    wrong = e5_tokenizer.compile_charsmap({0xFF21: "B"})
    monkeypatch.setattr(e5_tokenizer, "compile_charsmap", lambda norm_map: wrong)
    normalizer, kind = build_normalizer(NORM_MAP)
    assert kind == NORMALIZER_NFKC
    assert normalizer.normalize_str("\uff21") == "A"


def test_tokenizes_like_the_engine(vocab):
    tok, _ = build_backend_tokenizer(vocab)
    p = {piece: i for i, piece in enumerate(vocab.pieces)}
    hello, world = p["\u2581hello"], p["\u2581world"]
    assert _ids(tok, "hello world") == [0, hello, world, 2]
    assert _ids(tok, "hello\tworld") == _ids(tok, "hello   world") == [0, hello, world, 2]
    assert _ids(tok, "\uff21") == [0, p["\u2581A"], 2]                     # fullwidth A -> A
    assert _ids(tok, "hel\x07lo") == [0, hello, 2]                          # control char dropped
    assert _ids(tok, "hello ") == [0, hello, p["\u2581"], 2]               # the engine keeps a trailing space
    assert _ids(tok, " hello") == [0, hello, 2]                             # no second prefix space
    assert _ids(tok, "hello@") == [0, hello, vocab.unk, 2]                  # unknown character
    assert tok.encode("hello", "world").ids == [0, hello, 2, 2, world, 2]  # XLM-R pairs


def test_special_tokens_and_mask(vocab):
    tok, _ = build_backend_tokenizer(vocab)
    assert tok.token_to_id("<mask>") == len(vocab.pieces) - 1
    assert _ids(tok, "hello <mask>") == [0, tok.token_to_id("\u2581hello"), len(vocab.pieces) - 1, 2]
    assert [tok.token_to_id(t) for t in ("<s>", "<pad>", "</s>", "<unk>")] == [0, 1, 2, 3]


def test_mask_must_be_last(tmp_path):
    f = write_synthetic_e5(tmp_path / "x.bin", pieces=["<s>", "<pad>", "</s>", "<unk>", "<mask>", "\u2581a"])
    with pytest.raises(ModelLoadError, match="last piece"):
        build_backend_tokenizer(read_e5_file(f.path).vocab)


def test_saved_directory_loads_with_auto_tokenizer(vocab, tmp_path):
    from transformers import AutoTokenizer

    save_tokenizer(vocab, tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast" and config["model_max_length"] == 512
    assert json.loads((tmp_path / "special_tokens_map.json").read_text())["mask_token"] == "<mask>"
    tok = AutoTokenizer.from_pretrained(tmp_path)
    assert tok.is_fast and tok.model_max_length == 512
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    assert tok.mask_token_id == len(vocab.pieces) - 1
    assert tok("hello world")["input_ids"] == [0, 5, 6, 2]
    assert "token_type_ids" not in tok("hello")
    batch = tok(["hello", "hello world"], padding=True)
    assert batch["input_ids"][0][-1] == 1 and batch["attention_mask"][0][-1] == 0


def test_protobuf_field_reader():
    # field 1 varint 150, field 2 bytes b"abc", field 5 fixed32
    message = bytes([0x08, 0x96, 0x01, 0x12, 0x03]) + b"abc" + bytes([0x2D, 1, 2, 3, 4])
    assert _protobuf_bytes_field(message, 2) == b"abc"
    assert _protobuf_bytes_field(message, 3) is None


def test_nfkc_fallback_is_a_normalizer(monkeypatch):
    monkeypatch.setattr(e5_tokenizer, "compile_charsmap", lambda norm_map: None)
    normalizer, _ = build_normalizer({0x2028: " ", 0x200B: " ", 0x7F: ""})
    assert isinstance(normalizer, normalizers.Sequence)
    assert normalizer.normalize_str("a\u2028b\u200bc\x7fd") == "a b cd"
