"""The sequence: every step in order, each timed, a failure recorded and the next step run."""
from __future__ import annotations

import dataclasses
import datetime as _dt
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from harness.doctor.base import FULL_GPU_BUDGET_S, REPORT_VERSION, DoctorConfig, Skipped, State, error_line
from harness.doctor.benchmark import step_bench
from harness.doctor.device import device_facts
from harness.doctor.report import summary
from harness.doctor.steps import (step_compress, step_data, step_distill_bf16, step_finetune_bf16,
                                  step_finetune_fp32, step_teacher)
from harness.doctor.trackers import step_trackers


# (name, what it makes for later steps, function), in order
STEPS: list[tuple[str, tuple[str, ...], Callable[[State], dict[str, Any]]]] = [
    ("teacher", ("teacher", "teacher_shape"), step_teacher),
    ("data", ("task_data", "task_spec", "text"), step_data),
    ("finetune_bf16", (), step_finetune_bf16),
    ("finetune_fp32", (), step_finetune_fp32),
    ("compress", ("point",), step_compress),
    ("distill_bf16", (), step_distill_bf16),
    ("trackers", (), step_trackers),
    ("bench", (), step_bench),
]


def run_doctor(cfg: DoctorConfig, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every step on `cfg.device`; returns the report (see the module docstring)."""
    import tempfile

    import torch

    from harness.env import environment

    sizes = cfg.resolved_sizes
    if cfg.device.startswith("cuda") and torch.device(cfg.device).index is not None:
        torch.cuda.set_device(torch.device(cfg.device))  # CUDA events and peak statistics use the current device
    threads_before = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    started = _dt.datetime.now(_dt.timezone.utc)
    t0 = time.perf_counter()
    report: dict[str, Any] = {
        "report_version": REPORT_VERSION, "started_at": started.isoformat(timespec="seconds"),
        "mode": {"device": cfg.device, "quick": cfg.quick, "teacher": cfg.teacher, "task": cfg.task,
                 "language": cfg.language, "threads": cfg.threads, "seed": cfg.seed,
                 "sizes": dataclasses.asdict(sizes)},
        "device": device_facts(cfg.device), "environment": environment(), "steps": [],
    }
    tmp = None if cfg.work_dir is not None else tempfile.TemporaryDirectory(prefix="harness-doctor-")
    work = Path(cfg.work_dir) if cfg.work_dir is not None else Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    state = State(cfg, sizes, work, echo)
    try:
        for i, (name, makes, fn) in enumerate(STEPS, 1):
            echo(f"[{i}/{len(STEPS)}] {name}: {fn.__doc__.strip().splitlines()[0]}")
            report["steps"].append(run_step(state, name, makes, fn))
            entry = report["steps"][-1]
            if entry["status"] == "passed":
                echo(f"      passed in {entry['seconds']:.1f} s: {summary(entry)}")
            else:
                echo(f"      {entry['status']} after {entry['seconds']:.1f} s: {entry['error']}")
    finally:
        torch.set_num_threads(threads_before)
        if tmp is not None:
            tmp.cleanup()
    report["wall_seconds"] = round(time.perf_counter() - t0, 2)
    report["ok"] = all(s["status"] == "passed" for s in report["steps"])
    report["warnings"] = []
    if report["mode"]["device"].startswith("cuda") and not cfg.quick and report["wall_seconds"] > FULL_GPU_BUDGET_S:
        report["warnings"].append(f"the full check took {report['wall_seconds']:.0f} s, more than the "
                                  f"{FULL_GPU_BUDGET_S} s it is sized for on one GPU")
    return report


def run_step(state: State, name: str, makes: tuple[str, ...], fn) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "status": "passed", "seconds": 0.0, "error": None,
                             "result": None, "warnings": []}
    t0 = time.perf_counter()
    try:
        result = fn(state)
        entry["result"] = result
        entry["warnings"] = result.pop("warnings", [])
        failed = [c for c in result.get("checks", []) if c["status"] == "failed"]
        if failed:
            entry["status"] = "failed"
            entry["error"] = "; ".join(f"{c['name']}: {c['detail']}" for c in failed)
    except Skipped as why:
        entry.update(status="skipped", error=str(why))
    except Exception as exc:  # noqa: BLE001 - a failing step is recorded, the next one runs
        entry.update(status="failed", error=error_line(exc), traceback=traceback.format_exc())
    entry["seconds"] = round(time.perf_counter() - t0, 3)
    if entry["status"] != "passed":
        for what in makes:
            state.failed.setdefault(what, name)
    from harness.bench.measure import free_memory

    free_memory(state.cfg.device)
    return entry
