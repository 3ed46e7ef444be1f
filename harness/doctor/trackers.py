"""The `trackers` step: the latency and memory trackers of harness.bench against known work."""
from __future__ import annotations

import time
from typing import Any

from harness.doctor.base import State, check, skipped

TOLERANCE = 0.10  # the trackers' tests: known work measured within 10%
SLEEP_S = 0.05


def _within(measured: float | None, expected: float) -> bool:
    return measured is not None and expected * (1 - TOLERANCE) < measured < expected * (1 + TOLERANCE)


# Work done in fresh processes (module level, so that a spawned child can import it).

def cpu_allocate_and_measure(size_mb: int) -> dict:
    """RSS added by a numpy buffer of `size_mb` MB, between the CPU tracker's marks."""
    import numpy as np

    from harness.bench.memory import MB, MemoryTracker

    tracker = MemoryTracker("cpu")
    tracker.start()
    buf = np.ones(int(size_mb * MB) // 8)  # np.ones writes every page: all of it is resident
    figures = tracker.read()
    del buf
    return figures.as_dict()


def cuda_allocate_and_measure(size_mb: int, device: str) -> dict:
    """The CUDA tracker's figures around a float32 tensor of `size_mb` MB."""
    import torch

    from harness.bench.memory import MB, MemoryTracker

    if torch.device(device).index is not None:  # the tracker reads the current device's statistics
        torch.cuda.set_device(torch.device(device))
    torch.zeros(1, device=device)  # the context first, as run_job does
    tracker = MemoryTracker(device)
    tracker.start()
    buf = torch.ones(int(size_mb * MB) // 4, dtype=torch.float32, device=device)
    figures = tracker.read()
    del buf
    return figures.as_dict()


def _sleep() -> None:
    time.sleep(SLEEP_S)


def _time_matmul(n: int, device: str):
    """The latency tracker's figures for an n x n fp32 matmul on `device`."""
    import torch

    from harness.bench.latency import measure_latency

    x = torch.randn(n, n, device=device)
    return measure_latency(lambda: x @ x, device=device, warmup=2, min_iterations=5, min_duration_s=0.0)


def step_trackers(state: State) -> dict[str, Any]:
    """check the latency and memory trackers against known work (harness.bench)"""
    import torch

    from harness.bench.isolate import run_in_child
    from harness.bench.latency import measure_latency, time_once

    sizes, device = state.sizes, state.cfg.device
    want_ms = SLEEP_S * 1e3
    checks = []
    stats = measure_latency(_sleep, device="cpu", warmup=1, min_iterations=5, min_duration_s=0.0)
    checks.append(check("cpu latency: 50 ms sleep", _within(stats.p50_ms, want_ms),
                         f"p50 {stats.p50_ms:.2f} ms (expected {want_ms:.0f} ms ±10%)",
                         measured_ms=stats.p50_ms, expected_ms=want_ms))
    ms, _ = time_once(_sleep, device="cpu")
    checks.append(check("cpu time_once: 50 ms sleep", _within(ms, want_ms),
                         f"{ms:.2f} ms (expected {want_ms:.0f} ms ±10%)", measured_ms=ms, expected_ms=want_ms))
    figures = run_in_child(cpu_allocate_and_measure, sizes.cpu_alloc_mb, timeout_s=300)
    rss = figures["cpu_model_rss_mb"]
    checks.append(check(f"cpu memory: {sizes.cpu_alloc_mb} MB buffer", _within(rss, sizes.cpu_alloc_mb),
                         f"RSS added {rss:.1f} MB (expected {sizes.cpu_alloc_mb} MB ±10%)",
                         measured_mb=rss, expected_mb=sizes.cpu_alloc_mb, notes=figures["notes"]))

    cuda_names = ("cuda latency: 50 ms sleep", "cuda latency: device work, not launch",
                  f"cuda memory: {sizes.cuda_alloc_mb} MB tensor", "cuda memory: reserved >= allocated",
                  "cuda memory: NVML >= reserved")
    if not state.is_cuda:
        why = "no CUDA" if not torch.cuda.is_available() else "--device cpu"
        checks += [skipped(name, why) for name in cuda_names]
        return {"checks": checks}
    stats = measure_latency(_sleep, device=device, warmup=1, min_iterations=5, min_duration_s=0.0)
    checks.append(check(cuda_names[0], _within(stats.p50_ms, want_ms),
                         f"CUDA-event p50 {stats.p50_ms:.2f} ms (expected {want_ms:.0f} ms ±10%)",
                         measured_ms=stats.p50_ms, expected_ms=want_ms))
    n = sizes.matmul_n
    small, big = _time_matmul(n, device), _time_matmul(2 * n, device)
    ratio = big.p50_ms / small.p50_ms if small.p50_ms > 0 else float("inf")
    checks.append(check(cuda_names[1], ratio > 4,
                         f"{2 * n}^3 matmul {big.p50_ms:.3f} ms vs {n}^3 {small.p50_ms:.3f} ms: "
                         f"{ratio:.1f}x for 8x the FLOPs (needs > 4x)",
                         small_ms=small.p50_ms, big_ms=big.p50_ms, ratio=ratio))
    figures = run_in_child(cuda_allocate_and_measure, sizes.cuda_alloc_mb, device, timeout_s=300)
    allocated, reserved, nvml = (figures["cuda_peak_allocated_mb"], figures["cuda_peak_reserved_mb"],
                                 figures["nvml_process_mb"])
    checks.append(check(cuda_names[2], _within(allocated, sizes.cuda_alloc_mb),
                         f"peak allocated {allocated:.1f} MB (expected {sizes.cuda_alloc_mb} MB ±10%)",
                         measured_mb=allocated, expected_mb=sizes.cuda_alloc_mb))
    checks.append(check(cuda_names[3], reserved is not None and reserved >= allocated,
                         f"reserved {reserved} MB, allocated {allocated:.1f} MB", reserved_mb=reserved))
    if nvml is None:
        checks.append(skipped(cuda_names[4], "; ".join(n for n in figures["notes"] if "nvml" in n)
                               or "NVML gave no figure"))
    else:
        checks.append(check(cuda_names[4], nvml >= reserved, f"NVML {nvml:.1f} MB, reserved {reserved:.1f} MB",
                             nvml_mb=nvml))
    return {"checks": checks}

