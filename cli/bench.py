"""`harness bench`: measure the models of a grid and print what was measured.

The CLI wiring (reading the grid, resolving model sources into BenchModels) lives in
cli/app.py; this module is the command's body and its table.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

from harness.bench.config import BenchSection
from harness.bench.peak import PeakRow, format_peak, measure_peak, peak_fingerprint
from harness.bench.results import RowKey, read_table
from harness.bench.runner import BenchModel, bench_models, plan_jobs
from harness.env import environment
from harness.store import Store

COLUMNS = ("model", "target", "device", "dtype", "batch", "length", "reps", "p50 ms", "p90 ms",
           "seq/s", "tok/s", "peak MB", "model MB", "speed-up", "mem ratio")
FIRST_NUMERIC = COLUMNS.index("reps")
# A row whose processes spread by more than this ((max - min) / median) is flagged unstable.
UNSTABLE_SPREAD = 0.10
UNSTABLE_MARK = "!"


def _num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _with_spread(value: Any, spread: float | None, digits: int) -> str:
    """'47.30 ±4%': the figure and the spread of its processes; '!' marks an unstable one."""
    text = _num(value, digits)
    if value is None or spread is None:
        return text
    mark = UNSTABLE_MARK if spread > UNSTABLE_SPREAD else ""
    return f"{text} ±{spread * 100:.0f}%{mark}"


def is_unstable(row: dict[str, Any]) -> bool:
    """Whether the latency or the memory shown for the row spread beyond UNSTABLE_SPREAD."""
    return row.get("status") == "done" and any(
        (row.get(col) or 0) > UNSTABLE_SPREAD for col in ("latency_p50_spread", _memory_spread_column(row)))


def _memory_spread_column(row: dict[str, Any]) -> str:
    return "cuda_peak_allocated_spread" if row["device"] == "cuda" else "cpu_model_rss_spread"


def _table_cells(row: dict[str, Any]) -> list[str]:
    is_teacher = row.get("teacher_key") == row["model_key"]
    cells = [row["model_key"], row["target"], row["device"], row["dtype"],
             str(row["batch_size"] or "-"), str(row["seq_len"] or "-"), str(row.get("repeats") or "-")]
    if row["status"] != "done":
        last = (row.get("error") or "").strip().splitlines()
        return cells + [f"failed: {last[-1][:90] if last else 'unknown error'}"]
    cuda = row["device"] == "cuda"
    # On CUDA the allocated peak is already the model's own; on CPU it is peak RSS - baseline.
    peak = row["cuda_peak_allocated_mb"] if cuda else row["cpu_peak_rss_mb"]
    own = row["cuda_peak_allocated_mb"] if cuda else row.get("cpu_model_rss_mb")
    mem_ratio = row["cuda_memory_ratio"] if cuda else row.get("cpu_model_memory_ratio")
    return cells + [_with_spread(row["latency_p50_ms"], row.get("latency_p50_spread"), 2),
                    _num(row["latency_p90_ms"], 2), _num(row["throughput_seq_s"]),
                    _num(row["throughput_tok_s"], 0), _num(peak, 0),
                    _with_spread(own, row.get(_memory_spread_column(row)), 0),
                    "teacher" if is_teacher else _num(row["speedup_p50"], 2),
                    "teacher" if is_teacher else _num(mem_ratio, 2)]


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A plain-text table of benchmark rows as returned by `results.read_table`."""
    body = [_table_cells(r) for r in rows]
    widths = [len(c) for c in COLUMNS]
    for cells in body:
        for i, cell in enumerate(cells[:len(COLUMNS) - 1]):
            widths[i] = max(widths[i], len(cell))
    numeric = set(range(FIRST_NUMERIC, len(COLUMNS)))

    def line(cells: Sequence[str]) -> str:
        out = []
        for i, cell in enumerate(cells):
            if i == len(cells) - 1 and len(cells) < len(COLUMNS):  # a failure message: no padding
                out.append(cell)
            else:
                out.append(cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i]))
        return "  ".join(out).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(COLUMNS), sep, *(line(c) for c in body)])


def environment_line(env: dict[str, Any], threads: int | None = None) -> str:
    hw, v = env["hardware"], env["versions"]
    gpus = ", ".join(g["name"] for g in hw.get("gpus") or []) or "no GPU"
    used = threads or f"torch's default ({hw.get('torch_threads')})"
    return (f"{hw['cpu_model']} ({hw['cpu_logical_cores']} logical cores; torch threads in the "
            f"measuring processes: {used}); {gpus}; torch {v.get('torch')}, transformers "
            f"{v.get('transformers')}, python {v.get('python')}; git {env.get('git_rev') or 'unknown'}")


def method_line(section: BenchSection) -> str:
    """How this call measures: repeats, and where memory comes from."""
    env = section.memory_env()
    where = ("memory in separate processes with " + ", ".join(f"{k}={v}" for k, v in env.items())
             if env else "memory in the latency processes (allocator defaults)")
    return (f"{section.repeats} fresh process(es) per row, in rounds interleaved across the models; "
            f"{where}")


LEGEND = ("reps: fresh measuring processes per row, run in rounds interleaved across the models; "
          "p50 ms is the median of their p50s; ±x% is their spread, (max - min) / median. "
          "peak MB: on cpu the peak resident memory of the measuring process, interpreter and "
          "libraries included; on cuda torch's peak allocated memory. model MB: what the model and "
          "its work add (cpu: peak - the process's RSS before loading); memory is the median of "
          "the memory processes (glibc's mmap threshold fixed) unless memory_mmap_threshold is "
          "null. speed-up = teacher p50 / model p50; mem ratio = model MB / teacher's model MB "
          "(same target, device, dtype, shape). 'load' times disk to ready (one value per "
          "measuring process); 'first_forward' is the cold call of a fresh process. Definitions: "
          "docs/benchmarks.md.")
UNSTABLE_LEGEND = (f"{UNSTABLE_MARK} unstable: the row's processes spread by more than "
                   f"{UNSTABLE_SPREAD:.0%}, so the figure is not yet a measurement: measure it again "
                   f"with more repeats, a longer min_duration_s, fixed threads, on a quiet machine "
                   f"(harness bench --force; docs/benchmarks.md, 'Trusting a figure').")


def dtype_ratio_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Per model, target and shape measured in fp32 and another dtype: fp32 p50 / that dtype's p50."""
    fp32 = {(r["model_key"], r["target"], r["device"], r["batch_size"], r["seq_len"]): r["latency_p50_ms"]
            for r in rows if r["dtype"] == "fp32" and r["status"] == "done" and r.get("latency_p50_ms")}
    lines = []
    for r in rows:
        key = (r["model_key"], r["target"], r["device"], r["batch_size"], r["seq_len"])
        if r["dtype"] == "fp32" or r["status"] != "done" or not r.get("latency_p50_ms") or key not in fp32:
            continue
        if r["target"] == "load":
            continue
        lines.append(f"{r['model_key']}  {r['target']} {r['device']} {r['batch_size']}x{r['seq_len']}: "
                     f"{r['dtype']} is {fp32[key] / r['latency_p50_ms']:.2f}x the speed of fp32 "
                     f"({fp32[key]:.1f} -> {r['latency_p50_ms']:.1f} ms)")
    return lines


def measure_and_store_peak(section: BenchSection, store: Store, env: dict[str, Any],
                           force: bool = False) -> str:
    """The matmul peak of every benchmarked device, one line per device: the stored measurement
    where its fingerprint (processor, cores, torch, threads) matches this call's, unless `force`;
    otherwise measured now and stored in the meta table with its fingerprint."""
    rows, reused = [], []
    for device in section.resolved_devices():
        key, fingerprint = f"matmul_peak:{device}", peak_fingerprint(env, device, section.threads)
        stored = store.get_meta(key)
        if not force and isinstance(stored, dict) and stored.get("fingerprint") == fingerprint:
            rows += [PeakRow(**r) for r in stored["rows"]]
            reused.append(f"{device} on {stored.get('measured_at', '?')}")
            continue
        measured = measure_peak(device, threads=section.threads)
        store.set_meta(key, {"fingerprint": fingerprint, "rows": [r.as_dict() for r in measured],
                             "measured_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")})
        rows += measured
    text = format_peak(rows)
    if reused:
        text += f"\n(stored peak, measured {'; '.join(reused)} on this processor, torch and thread " \
                f"count; --force measures it again)"
    return text


def wanted_keys(models: Sequence[BenchModel], section: BenchSection) -> set[RowKey]:
    """Every row key the section asks for (stored or not)."""
    plan = plan_jobs(models, section, done=set())
    keys: set[RowKey] = set()
    for group in plan.groups:
        for planned in group.jobs:
            keys.update(planned.keys.values())
        if group.load_key is not None:
            keys.add(group.load_key)
    return keys


def bench(models: list[BenchModel], section: BenchSection, store: Store,
          data_dir: Path | None = None, force: bool = False,
          echo: Callable[[str], Any] = print) -> list[dict[str, Any]]:
    """Benchmark `models` (skipping stored rows unless `force`) and print the grid's table.

    Returns the table's rows (stored rows included), in the order printed.
    """
    notes: list[str] = []
    bench_models(models, section, store, data_dir=data_dir, force=force, notes=notes)
    wanted = wanted_keys(models, section)
    rows = [r for r in read_table(store, [m.model_key for m in models])
            if RowKey(r["model_key"], r["target"], r["device"], r["dtype"], r["batch_size"],
                      r["seq_len"]) in wanted]
    env = environment()
    echo(environment_line(env, section.threads))
    echo(method_line(section))
    echo(format_table(rows))
    echo(LEGEND)
    ratios = dtype_ratio_lines(rows)
    if ratios:
        echo("precision, same model and shape (p50):")
        for line in ratios:
            echo(f"  {line}")
    echo(measure_and_store_peak(section, store, env, force=force))
    unstable = sum(is_unstable(r) for r in rows)
    if unstable:
        echo(f"{unstable} of {len(rows)} rows unstable; {UNSTABLE_LEGEND}")
    for note in notes:
        echo(f"note: {note}")
    failed = sum(r["status"] != "done" for r in rows)
    if failed:
        echo(f"{failed} of {len(rows)} rows failed; their errors are in the benchmarks table "
             f"(column error)")
    return rows
