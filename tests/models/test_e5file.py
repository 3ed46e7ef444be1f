"""The E5S1 reader and the Q4_0 dequantiser, on a small file written by the test."""
from __future__ import annotations

import numpy as np
import pytest

from core.errors import ModelLoadError
from models.e5file import dequantize_q4_0, read_e5_file

from models_helpers import NORM_MAP, reference_q4_0, write_synthetic_e5


def test_dequantize_matches_naive_reference():
    rng = np.random.default_rng(1)
    w = rng.normal(0, 1.0, size=(7, 64))
    w[3] = 0.0                               # an all-zero block (scale 0)
    w[5, :32] *= 1e-6                        # fp16 subnormal scales
    blob, expected = reference_q4_0(w)
    got = dequantize_q4_0(np.frombuffer(blob, dtype=np.uint8), w.size)
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == np.float32
    # the quantisation itself is close to the input, so the nibble order cannot be swapped unnoticed
    assert np.abs(got - w.reshape(-1)).max() < np.abs(w).max() / 7


def test_dequantize_chunks_agree(monkeypatch):
    import models.e5file as e5file

    blob, expected = reference_q4_0(np.random.default_rng(2).normal(size=(50, 32)))
    monkeypatch.setattr(e5file, "_DEQUANT_CHUNK", 7)     # many chunks, one partial
    np.testing.assert_array_equal(dequantize_q4_0(np.frombuffer(blob, dtype=np.uint8), 50 * 32), expected)


def test_dequantize_rejects_bad_sizes():
    with pytest.raises(ModelLoadError, match="multiple of 32"):
        dequantize_q4_0(np.zeros(18, dtype=np.uint8), 31)
    with pytest.raises(ModelLoadError, match="needs 36 bytes"):
        dequantize_q4_0(np.zeros(18, dtype=np.uint8), 64)


def test_reads_header_vocab_and_tensors(synthetic_e5):
    f = read_e5_file(synthetic_e5.path)
    h = f.header
    assert (h.hidden, h.layers, h.heads, h.ffn) == (64, 2, 4, 128)
    assert h.vocab_rows == len(synthetic_e5.pieces) + 3 and h.max_positions == 32 and h.type_vocab == 2
    assert h.eps == pytest.approx(1e-12) and h.qk == 32
    v = f.vocab
    assert v.pieces == synthetic_e5.pieces
    assert (v.bos, v.eos, v.pad, v.unk) == (0, 2, 1, 3)
    assert v.scores[0] == 0.0 and v.scores[5] == pytest.approx(-1.5)
    assert v.norm_map == NORM_MAP
    assert len(f.tensors) == 5 + 2 * 16
    for name, values in synthetic_e5.expected.items():
        np.testing.assert_array_equal(f.tensor(name), values, err_msg=name)


def test_bad_magic_and_truncation(tmp_path):
    bad = write_synthetic_e5(tmp_path / "bad.bin", magic=b"GGUF")
    with pytest.raises(ModelLoadError, match="not an E5S1 file"):
        read_e5_file(bad.path)
    good = write_synthetic_e5(tmp_path / "good.bin")
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(good.path.read_bytes()[:200])
    with pytest.raises(ModelLoadError, match="truncated"):
        read_e5_file(truncated)
    short_data = tmp_path / "short.bin"
    short_data.write_bytes(good.path.read_bytes()[:-100])
    f = read_e5_file(short_data)        # the directory is intact; the last tensor is cut
    last = list(f.tensors)[-1]
    with pytest.raises(ModelLoadError, match="past the end"):
        f.tensor(last)
    with pytest.raises(ModelLoadError, match="missing"):
        f.tensor("l9.q.w")
    with pytest.raises(ModelLoadError, match="not found"):
        read_e5_file(tmp_path / "absent.bin")
