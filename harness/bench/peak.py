"""The device's measured matrix-multiply peak per dtype: the bound that a throughput figure (a
distillation's TFLOP/s, a forward pass's tokens per second) is read against.

Shapes are those of the encoders measured here (4096 tokens through FFN and attention projections of
a hidden-384 model); each product is repeated until `min_duration_s` has passed, after a warm-up, and
the best of `rounds` rounds is reported (a peak, not a mean: other work can only slow it down).
A measurement takes ~10 s per device, so `harness bench` stores it with a fingerprint of what it
depends on (peak_fingerprint) and reuses it until that changes or --force asks again.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

PEAK_SHAPES = ((4096, 384, 1536), (4096, 1536, 384), (4096, 384, 384))
PEAK_DTYPES = ("fp32", "bf16")


@dataclass(frozen=True)
class PeakRow:
    device: str
    dtype: str
    m: int
    k: int
    n: int
    gflops: float

    def as_dict(self) -> dict:
        return asdict(self)


def matmul_gflops(m: int, k: int, n: int, dtype: str, device: str = "cpu", *, min_duration_s: float = 0.5,
                  rounds: int = 3, threads: int | None = None) -> float:
    """Best GFLOP/s of (m x k) @ (k x n) in `dtype` on `device`."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    a = torch.randn(m, k, dtype=torch_dtype, device=device)
    b = torch.randn(k, n, dtype=torch_dtype, device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for _ in range(3):
        a @ b
    sync()
    best = 0.0
    for _ in range(rounds):
        count, t0 = 0, time.perf_counter()
        while True:
            a @ b
            count += 1
            sync()
            elapsed = time.perf_counter() - t0
            if elapsed >= min_duration_s:
                break
        best = max(best, 2.0 * m * k * n * count / elapsed / 1e9)
    return best


def measure_peak(device: str = "cpu", dtypes=PEAK_DTYPES, shapes=PEAK_SHAPES, **kwargs) -> list[PeakRow]:
    return [PeakRow(device, dtype, m, k, n, matmul_gflops(m, k, n, dtype, device, **kwargs))
            for dtype in dtypes for (m, k, n) in shapes]


def peak_fingerprint(env: dict[str, Any], device: str, threads: int | None) -> dict[str, Any]:
    """What a stored peak is valid for: the processor (or GPU) measured, the cores this process may
    use, the torch version and the thread count; a peak measured under another of these is stale."""
    hw = env["hardware"]
    chip = ([g["name"] for g in hw.get("gpus") or []] if device.startswith("cuda") else hw.get("cpu_model"))
    return {"device": device, "chip": chip, "cpu_affinity": hw.get("cpu_affinity"),
            "torch": env["versions"].get("torch"), "threads": threads or hw.get("torch_threads")}


def format_peak(rows: list[PeakRow]) -> str:
    """'cpu matmul peak (GFLOP/s): fp32 75 | bf16 174 (2.3x)' per device, the best shape of each dtype."""
    lines = []
    for device in dict.fromkeys(r.device for r in rows):
        best = {}
        for r in rows:
            if r.device == device:
                best[r.dtype] = max(best.get(r.dtype, 0.0), r.gflops)
        parts = [f"{d} {g:,.0f}" for d, g in best.items()]
        if "fp32" in best and "bf16" in best and best["fp32"] > 0:
            parts[-1] += f" ({best['bf16'] / best['fp32']:.1f}x fp32)"
        shapes = ", ".join(sorted({f"{r.m}x{r.k}@{r.k}x{r.n}" for r in rows if r.device == device}))
        lines.append(f"{device} matmul peak, GFLOP/s (best of {shapes}): " + " | ".join(parts))
    return "\n".join(lines)
