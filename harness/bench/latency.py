"""Latency: time a callable the way optimum-benchmark's LatencyTracker does, on CPU or CUDA.

Rules (what a reported latency means):

- `measure_latency` runs `warmup` untimed calls, then timed calls until *both* `min_iterations`
  calls and `min_duration_s` seconds of timed work are reached, and keeps every raw value.
- CPU: each call is timed with `time.perf_counter` around the call (wall clock).
- CUDA: each call is timed with a pair of CUDA events recorded on the current stream around it,
  and the end event is synchronised before the next call, so the value is the device time of
  the call's work, queueing of the next call does not overlap it, and the stop rule counts
  finished work.
- `time_once` (model load, first forward) is a wall-clock time with the device synchronised
  before and after: a cold call is dominated by host work (disk, kernel selection, allocation)
  that CUDA events would not see.

Statistics are over the raw values in milliseconds: mean, population std, and p50/p90/p95/p99
(linear interpolation, numpy's default). Throughput divides the work of one call (sequences,
non-pad tokens) by the mean latency.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np

PERCENTILES = (50, 90, 95, 99)


@dataclass(frozen=True)
class LatencyStats:
    values_ms: tuple[float, ...]
    count: int
    total_s: float
    mean_ms: float
    std_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float

    @classmethod
    def from_values(cls, values_ms: list[float] | tuple[float, ...]) -> "LatencyStats":
        if not values_ms:
            raise ValueError("no latency values to summarise")
        arr = np.asarray(values_ms, dtype=np.float64)
        if (arr < 0).any():
            raise ValueError("negative latency: the timer went backwards")
        p50, p90, p95, p99 = (float(v) for v in np.percentile(arr, PERCENTILES))
        return cls(values_ms=tuple(float(v) for v in arr), count=int(arr.size),
                   total_s=float(arr.sum()) / 1e3, mean_ms=float(arr.mean()),
                   std_ms=float(arr.std()) if arr.size > 1 else 0.0,
                   p50_ms=p50, p90_ms=p90, p95_ms=p95, p99_ms=p99)

    def throughput(self, per_call: float) -> float:
        """Units of work per second, given the work done by one call."""
        return per_call / (self.mean_ms / 1e3) if self.mean_ms > 0 else float("inf")

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["values_ms"] = list(self.values_ms)
        return d


def _is_cuda(device: str) -> bool:
    return str(device).startswith("cuda")


def _sync(device: str) -> None:
    if _is_cuda(device):
        import torch

        torch.cuda.synchronize()


def time_once(fn: Callable[[], Any], device: str = "cpu") -> tuple[float, Any]:
    """Wall-clock milliseconds of one call (device synchronised around it) and its result."""
    _sync(device)
    start = time.perf_counter()
    result = fn()
    _sync(device)
    return (time.perf_counter() - start) * 1e3, result


def _timed_call_cuda(fn: Callable[[], Any]) -> float:
    import torch

    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    end.synchronize()
    return float(start.elapsed_time(end))  # already milliseconds


def _timed_call_cpu(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def measure_latency(fn: Callable[[], Any], *, device: str = "cpu", warmup: int = 2,
                    min_iterations: int = 10, min_duration_s: float = 1.0,
                    max_iterations: int | None = None, multiple_of: int = 1) -> LatencyStats:
    """Warm up, then time calls of `fn` until both minimums are met (see the module docstring).

    `max_iterations` caps the count for callables so fast that `min_duration_s` would need
    millions of calls; the cap never drops the count below `min_iterations`. `multiple_of`
    makes the count a multiple of it (a callable that cycles through k different batches stops
    after whole passes, so every batch weighs the same).
    """
    if min_iterations < 1 or multiple_of < 1:
        raise ValueError("min_iterations and multiple_of must be at least 1")
    timed_call = _timed_call_cuda if _is_cuda(device) else _timed_call_cpu
    for _ in range(warmup):
        fn()
    _sync(device)
    cap = max(max_iterations, min_iterations) if max_iterations is not None else None
    values: list[float] = []
    started = time.perf_counter()
    while True:
        values.append(timed_call(fn))
        if len(values) % multiple_of:
            continue
        enough = len(values) >= min_iterations and time.perf_counter() - started >= min_duration_s
        if enough or (cap is not None and len(values) >= cap):
            break
    return LatencyStats.from_values(values)
