"""The `bench` step: latency and peak memory of the teacher and the point, each in a fresh process."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.doctor.base import Sizes, State, check, error_line


def _bench_one(path: Path, device: str, dtype: str, sizes: Sizes, threads: int | None) -> dict[str, Any]:
    from harness.bench.combine import combine
    from harness.bench.isolate import run_in_child
    from harness.bench.measure import Job, run_job

    job = Job(str(path), device, dtype, sizes.bench_batch_size, sizes.bench_seq_len, ("first_forward", "forward"),
              warmup=2, min_iterations=sizes.bench_min_iterations, min_duration_s=sizes.bench_min_duration_s,
              threads=threads)
    out = run_in_child(run_job, job, timeout_s=600)
    targets = out["targets"]
    for name in ("load", "first_forward", "forward"):
        if "error" in targets.get(name, {}):
            why = error_line(RuntimeError(targets[name]["error"]))
            raise RuntimeError(f"{name} of {path.name} ({device}/{dtype}): {why}")
    row = combine([targets["forward"]])
    cuda = device.startswith("cuda")
    return {"dtype": dtype, "load_ms": targets["load"]["values_ms"][0],
            "first_forward_ms": targets["first_forward"]["values_ms"][0],
            "iterations": row["n_iterations"], "p50_ms": row["latency_p50_ms"], "p90_ms": row["latency_p90_ms"],
            "tokens_per_second": row["throughput_tok_s"],
            "peak_mb": row["cuda_peak_allocated_mb"] if cuda else row["cpu_peak_rss_mb"],
            "peak_kind": "cuda_peak_allocated" if cuda else "cpu_peak_rss",
            # what the model and its work add: on CUDA the allocated peak, on the CPU peak - baseline RSS
            "model_mb": row["cuda_peak_allocated_mb"] if cuda else row["cpu_peak_rss_mb"] - row["cpu_baseline_rss_mb"],
            "cuda_peak_reserved_mb": row["cuda_peak_reserved_mb"],
            "load_memory": targets["load"]["memory"], "params": out["process"].get("params")}


def step_bench(state: State) -> dict[str, Any]:
    """benchmark latency and peak memory of the teacher and the compressed point (harness.bench)"""
    from core.precision import fast_bf16

    teacher, point = state.need("teacher"), state.need("point")
    device, sizes = state.cfg.device, state.sizes
    dtypes = ["fp32", "bf16"] if state.is_cuda and fast_bf16(device) else ["fp32"]
    rows: dict[str, list[dict[str, Any]]] = {"teacher": [], "point": []}
    for dtype in dtypes:
        for which, path in (("teacher", teacher), ("point", point)):
            rows[which].append(_bench_one(path, device, dtype, sizes, state.cfg.threads))
            r = rows[which][-1]
            state.echo(f"      {which} {dtype}: p50 {r['p50_ms']:.2f} ms, peak {r['peak_mb']:.0f} MB")
    comparison = []
    for t, p in zip(rows["teacher"], rows["point"]):
        comparison.append({"dtype": t["dtype"], "speedup_p50": t["p50_ms"] / p["p50_ms"] if p["p50_ms"] else None,
                           "model_memory_ratio": t["model_mb"] / p["model_mb"] if p["model_mb"] else None})
    checks = [check(f"{which} {r['dtype']} figures are positive", r["p50_ms"] > 0 and r["peak_mb"] > 0,
                     f"p50 {r['p50_ms']} ms, peak {r['peak_mb']} MB")
              for which in rows for r in rows[which]]
    return {"device": device, "batch_size": sizes.bench_batch_size, "seq_len": sizes.bench_seq_len,
            "teacher": rows["teacher"], "point": rows["point"], "comparison": comparison, "checks": checks}
