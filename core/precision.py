"""The precision policy: which dtype the matrix work of training, distillation and benchmarks uses.

    precision = resolve_precision("auto", device)      # -> "bf16" or "fp32"
    with autocast(precision, device): loss = model(**batch).loss

`auto` takes bf16 autocast (fp32 master weights, fp32 losses and metrics) where the device
multiplies bf16 matrices fast, and fp32 elsewhere:

- CUDA: when torch reports bf16 support for the GPU (Ampere and later);
- CPU: when torch reports AMX-BF16 or AVX512-BF16 (`torch.cpu.get_capabilities()`); without them
  bf16 is emulated and slower than fp32. The detection asks the processor through torch, never
  guesses from a model or host name. `HARNESS_CPU_BF16=0|1` overrides it (e.g. to check fp32 on a
  machine that has bf16).

`fp32` and `bf16` force a precision. The resolved precision (never `auto`) is what is stored with a
run, a stage manifest or a benchmark row, so runs of different precisions are never mixed.
"""
from __future__ import annotations

import contextlib
import functools
import os
from typing import Literal

import torch

Precision = Literal["fp32", "bf16"]
PrecisionSetting = Literal["auto", "fp32", "bf16"]
PRECISION_SETTINGS = ("auto", "fp32", "bf16")
CPU_BF16_ENV = "HARNESS_CPU_BF16"


@functools.lru_cache(maxsize=1)
def cpu_bf16_features() -> tuple[str, ...]:
    """The processor's bf16 matrix features as torch reports them ('amx_bf16', 'avx512_bf16')."""
    try:
        caps = torch.cpu.get_capabilities()
    except (AttributeError, RuntimeError):  # an older torch: ask the individual probes
        caps = {"avx512_bf16": bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()),
                "amx_bf16": bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())}
    return tuple(name for name in ("amx_bf16", "avx512_bf16") if caps.get(name))


def fast_bf16(device: torch.device | str) -> bool:
    """Whether bf16 matrix products are native (and so faster than fp32) on `device`."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        forced = os.environ.get(CPU_BF16_ENV)
        if forced in ("0", "1"):
            return forced == "1"
        return bool(cpu_bf16_features())
    return False


def resolve_precision(setting: str | bool | None, device: torch.device | str) -> Precision:
    """'auto' (or None) -> what `device` does fast; 'fp32' / 'bf16' as given. Legacy booleans
    (the old `bf16: true/false` switch) map to 'bf16' / 'fp32'."""
    if setting is True:
        return "bf16"
    if setting is False:
        return "fp32"
    if setting in (None, "auto"):
        return "bf16" if fast_bf16(device) else "fp32"
    if setting in ("fp32", "bf16"):
        return setting  # type: ignore[return-value]
    raise ValueError(f"precision must be one of {', '.join(PRECISION_SETTINGS)}, got {setting!r}")


def autocast(precision: Precision, device: torch.device | str):
    """bf16 autocast on the device for 'bf16'; a no-op context for 'fp32'."""
    device = torch.device(device)
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def describe(device: torch.device | str) -> str:
    """One line for logs: what `auto` picks here and why."""
    device = torch.device(device)
    if device.type == "cpu":
        feats = cpu_bf16_features()
        why = f"CPU with {', '.join(feats)}" if feats else "CPU without AMX-BF16 / AVX512-BF16"
    else:
        why = f"{device.type} (bf16 supported: {fast_bf16(device)})"
    return f"precision auto -> {resolve_precision('auto', device)} ({why})"
