"""Combining the repeats of one measurement (one result per measuring process) into a row.

Every row is measured in several fresh processes (`repeats`). What the row says:

- `latency_p50_ms`: the median over the processes of each process's own p50. One process that
  ran slow (the host was busy, its memory landed badly) moves it little.
- `latency_p50_spread`: (max - min) / median of the per-process p50s: how far apart the
  processes were. None with a single process (nothing to compare).
- mean, std, p90, p95, p99 and throughput: over the pooled raw values of all processes (the tail
  percentiles need many values; pooling also makes the tail include a slow process).
  Throughput = all the work done / all the timed time.
- memory columns: the median over the processes that measured memory (separate memory processes,
  see `BenchSection.memory_mmap_threshold`, or the latency processes themselves), each column on
  its own; their spreads likewise. `cpu_model_rss_spread` is over the per-process
  peak - baseline, the figure compared between models.
- `per_repeat`: every process's p50, iteration count and memory figures, in the order measured.

A target measured once per process (load, first_forward) has one value per process, so its p50
is the median over processes and its spread that of the single values.
"""
from __future__ import annotations

import statistics
from typing import Any, Sequence

import numpy as np

from harness.bench.latency import LatencyStats

MEMORY_COLUMNS = ("cpu_peak_rss_mb", "cpu_baseline_rss_mb", "cuda_peak_allocated_mb",
                  "cuda_peak_reserved_mb", "nvml_process_mb")


def spread(values: Sequence[float | None]) -> float | None:
    """(max - min) / median of the values; None for fewer than two values or a median of 0."""
    present = [float(v) for v in values if v is not None]
    if len(present) < 2:
        return None
    mid = statistics.median(present)
    if mid == 0:
        return None
    return (max(present) - min(present)) / abs(mid)


def median(values: Sequence[float | None]) -> float | None:
    """Median of the values that are present; None when none is."""
    present = [float(v) for v in values if v is not None]
    return statistics.median(present) if present else None


def _model_rss(memory: dict[str, Any]) -> float | None:
    peak, base = memory.get("cpu_peak_rss_mb"), memory.get("cpu_baseline_rss_mb")
    return peak - base if peak is not None and base is not None else None


def combine(samples: Sequence[dict[str, Any]],
            memories: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Row columns from one target's per-process results.

    Each sample is what a latency process returned for the target: `values_ms` (its raw
    latencies), `n_sequences` and `n_tokens` (the work timed; 0 or absent for none) and `memory`
    (`memory.MemoryFigures.as_dict()`). `memories`: the target's memory figures from separate
    memory processes, which then replace those of the latency processes.
    """
    if not samples:
        raise ValueError("no repeat to combine")
    if memories is None:
        memories = [s.get("memory") or {} for s in samples]
    if not memories:
        raise ValueError("no memory figures to combine")
    p50s = [float(np.percentile(np.asarray(s["values_ms"], dtype=np.float64), 50)) for s in samples]
    pooled = LatencyStats.from_values([v for s in samples for v in s["values_ms"]])
    n_sequences = sum(s.get("n_sequences") or 0 for s in samples)
    n_tokens = sum(s.get("n_tokens") or 0 for s in samples)
    row: dict[str, Any] = {
        "repeats": len(samples), "n_iterations": pooled.count,
        "latency_mean_ms": pooled.mean_ms, "latency_std_ms": pooled.std_ms,
        "latency_p50_ms": statistics.median(p50s), "latency_p90_ms": pooled.p90_ms,
        "latency_p95_ms": pooled.p95_ms, "latency_p99_ms": pooled.p99_ms,
        "throughput_seq_s": n_sequences / pooled.total_s if n_sequences and pooled.total_s else None,
        "throughput_tok_s": n_tokens / pooled.total_s if n_tokens and pooled.total_s else None,
        "raw_latencies_ms": list(pooled.values_ms),
        "latency_p50_spread": spread(p50s),
    }
    per_repeat: dict[str, list[Any]] = {"latency_p50_ms": p50s,
                                        "n_iterations": [len(s["values_ms"]) for s in samples]}
    for col in MEMORY_COLUMNS:
        values = [m.get(col) for m in memories]
        row[col] = median(values)
        if any(v is not None for v in values):
            per_repeat[col] = values
    row["cpu_peak_rss_spread"] = spread([m.get("cpu_peak_rss_mb") for m in memories])
    row["cpu_model_rss_spread"] = spread([_model_rss(m) for m in memories])
    row["cuda_peak_allocated_spread"] = spread([m.get("cuda_peak_allocated_mb") for m in memories])
    row["per_repeat"] = per_repeat
    row["memory_notes"] = sorted({n for m in memories for n in m.get("notes") or []})
    return row
