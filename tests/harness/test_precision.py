"""The precision policy on the CPU path: detection, resolution, autocast."""
import pytest
import torch

from core import precision as prec


def test_detection_follows_what_torch_reports(monkeypatch):
    monkeypatch.delenv(prec.CPU_BF16_ENV, raising=False)
    prec.cpu_bf16_features.cache_clear()
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": False, "amx_bf16": False})
    assert prec.resolve_precision("auto", "cpu") == "fp32"
    prec.cpu_bf16_features.cache_clear()
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": True, "amx_bf16": False})
    assert prec.cpu_bf16_features() == ("avx512_bf16",)
    assert prec.resolve_precision("auto", "cpu") == "bf16"
    assert "avx512_bf16" in prec.describe("cpu")
    prec.cpu_bf16_features.cache_clear()


def test_environment_override_and_forced_settings(monkeypatch):
    monkeypatch.setenv(prec.CPU_BF16_ENV, "0")
    assert prec.resolve_precision("auto", "cpu") == "fp32"
    assert prec.resolve_precision("bf16", "cpu") == "bf16"  # forcing works even where bf16 is slow
    monkeypatch.setenv(prec.CPU_BF16_ENV, "1")
    assert prec.resolve_precision(None, "cpu") == "bf16"
    assert prec.resolve_precision("fp32", "cpu") == "fp32"
    assert prec.resolve_precision(True, "cpu") == "bf16" and prec.resolve_precision(False, "cpu") == "fp32"
    with pytest.raises(ValueError, match="precision must be one of"):
        prec.resolve_precision("fp16", "cpu")


def test_autocast_runs_matmuls_in_bf16_and_fp32_stays_fp32():
    lin = torch.nn.Linear(8, 4)
    x = torch.randn(3, 8)
    with prec.autocast("bf16", "cpu"):
        assert lin(x).dtype == torch.bfloat16
    with prec.autocast("fp32", "cpu"):
        assert lin(x).dtype == torch.float32
    assert lin.weight.dtype == torch.float32  # master weights untouched
