"""Plan and run the benchmarks of a set of models; store one row per (model, target, device,
dtype, batch, length).

Planning: for every model, device and dtype, each synthetic shape of the grid is one job (one
fresh child process: load, first forward, steady forward) and each real batch size is one job.
Every job loads the model, so the 'load' row (batch 0, length 0) summarises the load times of
all jobs of its group; a group whose other rows are all stored gets one load-only job.

Rows already stored as 'done' are skipped unless `force`; 'failed' rows are measured again (the
cause may be gone: more memory, a data directory). A failing target is stored as 'failed' with
its error, and the rest goes on.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Sequence

from harness.bench.config import BenchSection, device_type
from harness.bench.isolate import ChildFailed, run_in_child
from harness.bench.latency import LatencyStats
from harness.bench.measure import Job, run_job
from harness.bench.results import RowKey, stored_done, write_rows
from harness.bench.shapes import check_length, shape_grid
from harness.env import environment
from harness.progress import bar
from harness.store import ModelRecord, Store

LOAD_SHAPE = (0, 0)  # the load row's (batch_size, seq_len): loading has no input shape
SYNTHETIC_TARGETS = ("first_forward", "forward")


class BenchModel(NamedTuple):
    model_key: str
    path: Path                 # a local Hugging Face directory
    teacher_key: str           # itself for a teacher
    language: str | None = None


def real_target(task: str, language: str) -> str:
    """Target name of a real-data row; teacher and students share it so the view can join them."""
    return f"real:{task}:{language}"


@dataclass
class PlannedJob:
    job: Job
    keys: dict[str, RowKey]    # job target ('first_forward', 'forward', 'real') -> row key


@dataclass
class Group:
    """One model on one device in one dtype."""
    model: BenchModel
    device: str
    dtype: str
    jobs: list[PlannedJob] = field(default_factory=list)
    load_key: RowKey | None = None   # None: the load row is not wanted or already stored


@dataclass
class Plan:
    groups: list[Group]
    notes: list[str]

    @property
    def n_jobs(self) -> int:
        return sum(len(g.jobs) for g in self.groups)


def real_languages(model: BenchModel, models: Sequence[BenchModel], section: BenchSection) -> list[str]:
    """A compressed model runs its own language; a teacher runs the configured languages and
    those of its students in this batch (so every speed-up has its teacher row)."""
    if model.language:
        return [model.language]
    langs = list(section.real_languages)
    langs += [m.language for m in models if m.teacher_key == model.model_key
              and m.model_key != model.model_key and m.language]
    return list(dict.fromkeys(langs))


def plan_jobs(models: Sequence[BenchModel], section: BenchSection, done: set[RowKey],
              *, data_dir: Path | None = None, cuda_available: bool | None = None) -> Plan:
    devices = section.resolved_devices(cuda_available)
    shapes = shape_grid(section.batch_sizes, section.seq_lens)
    wanted = set(section.targets)
    groups: list[Group] = []
    notes: list[str] = []
    common = dict(warmup=section.warmup, min_iterations=section.min_iterations,
                  min_duration_s=section.min_duration_s, threads=section.threads, seed=section.seed)
    for model in models:
        langs = real_languages(model, models, section) if "real" in wanted else []
        if "real" in wanted and not langs:
            notes.append(f"{model.model_key}: no language for the 'real' target; set "
                         f"benchmark.real_languages")
        for device in devices:
            for dtype in section.resolved_dtypes(device):
                group = Group(model, device, dtype)
                key = lambda target, b, s: RowKey(model.model_key, target, device_type(device),  # noqa: E731
                                                  dtype, b, s)
                for shape in shapes:
                    keys = {t: key(t, shape.batch_size, shape.seq_len)
                            for t in SYNTHETIC_TARGETS if t in wanted}
                    keys = {t: k for t, k in keys.items() if k not in done}
                    if keys:
                        group.jobs.append(PlannedJob(
                            Job(str(model.path), device, dtype, shape.batch_size, shape.seq_len,
                                tuple(keys), **common), keys))
                for lang in langs:
                    for b in section.batch_sizes:
                        k = key(real_target(section.real_task, lang), b, section.real_max_length)
                        if k in done:
                            continue
                        group.jobs.append(PlannedJob(
                            Job(str(model.path), device, dtype, b, section.real_max_length, ("real",),
                                real_task=section.real_task, real_language=lang,
                                data_dir=str(data_dir) if data_dir is not None else None, **common),
                            {"real": k}))
                load_key = key("load", *LOAD_SHAPE)
                if "load" in wanted and load_key not in done:
                    group.load_key = load_key
                    if not group.jobs:
                        group.jobs.append(PlannedJob(
                            Job(str(model.path), device, dtype, 0, 0, (), **common), {}))
                if group.jobs:
                    groups.append(group)
    return Plan(groups, notes)


# -- turning child results into rows ---------------------------------------------------------------

def _row(key: RowKey, measured: dict[str, Any] | None, env: dict[str, Any], *,
         error: str | None = None, extra_env: dict[str, Any] | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {"bench_id": key.bench_id, "model_key": key.model_key, "target": key.target,
                           "device": key.device, "dtype": key.dtype, "batch_size": key.batch_size,
                           "seq_len": key.seq_len}
    memory = (measured or {}).get("memory") or {}
    error = error or (measured or {}).get("error")
    row_env = {**env, **(extra_env or {})}
    if memory.get("notes"):
        row_env["memory_notes"] = memory["notes"]
    row["environment"] = row_env
    for col in ("cpu_peak_rss_mb", "cpu_baseline_rss_mb", "cuda_peak_allocated_mb",
                "cuda_peak_reserved_mb", "nvml_process_mb"):
        row[col] = memory.get(col)
    if error or not measured or not measured.get("values_ms"):
        row.update(status="failed", error=error or "no measurement came back")
        return row
    stats = LatencyStats.from_values(measured["values_ms"])
    row.update(
        status="done", error=None, n_iterations=stats.count,
        latency_mean_ms=stats.mean_ms, latency_std_ms=stats.std_ms, latency_p50_ms=stats.p50_ms,
        latency_p90_ms=stats.p90_ms, latency_p95_ms=stats.p95_ms, latency_p99_ms=stats.p99_ms,
        throughput_seq_s=(measured["n_sequences"] / stats.total_s) if measured.get("n_sequences") else None,
        throughput_tok_s=(measured["n_tokens"] / stats.total_s) if measured.get("n_tokens") else None,
        raw_latencies_ms=list(stats.values_ms),
    )
    for k in ("n_examples", "n_batches"):
        if k in measured:
            row["environment"][k] = measured[k]
    return row


def _load_row(key: RowKey, samples: list[dict[str, Any]], errors: list[str],
              env: dict[str, Any], process: dict[str, Any]) -> dict[str, Any]:
    """The load row: one latency value per child that loaded the model; memory is the largest
    peak seen while loading (they agree to within noise: every child loads the same files)."""
    if not samples:
        return _row(key, None, env, error=errors[0] if errors else "the model was never loaded",
                    extra_env={"process": process})
    merged: dict[str, Any] = {"values_ms": [v for s in samples for v in s["values_ms"]],
                              "n_sequences": 0, "n_tokens": 0}
    memories = [s.get("memory") or {} for s in samples]
    memory: dict[str, Any] = {}
    for col in ("cpu_peak_rss_mb", "cuda_peak_allocated_mb", "cuda_peak_reserved_mb", "nvml_process_mb"):
        values = [m[col] for m in memories if m.get(col) is not None]
        memory[col] = max(values) if values else None
    baselines = [m["cpu_baseline_rss_mb"] for m in memories if m.get("cpu_baseline_rss_mb") is not None]
    memory["cpu_baseline_rss_mb"] = min(baselines) if baselines else None
    memory["notes"] = sorted({n for m in memories for n in m.get("notes") or []})
    merged["memory"] = memory
    return _row(key, merged, env, extra_env={"process": process})


def _register_model(store: Store, model: BenchModel, params: dict[str, int] | None,
                    params_by_key: dict[str, dict[str, int]]) -> None:
    """Add a minimal `models` row when the model is unknown, so v_bench_vs_teacher can pair it
    with its teacher. A row written by `harness eval` (richer) is never overwritten."""
    if params is None or store.model(model.model_key) is not None:
        return
    config: dict[str, Any] = {}
    config_path = Path(model.path) / "config.json"
    if config_path.is_file():
        config = json.loads(config_path.read_text(encoding="utf-8"))
    is_teacher = model.teacher_key == model.model_key
    teacher_total = (params_by_key.get(model.teacher_key) or {}).get("total")
    if teacher_total is None and not is_teacher:
        teacher_row = store.model(model.teacher_key)
        teacher_total = teacher_row["params_total"] if teacher_row else None
    store.upsert_model(ModelRecord(
        model_key=model.model_key, name=model.model_key, kind="teacher" if is_teacher else "compressed",
        source=str(model.path), teacher_key=model.teacher_key, params_total=params["total"],
        params_embedding=params["embedding"], params_non_embedding=params["non_embedding"],
        language=model.language, vocab_size=config.get("vocab_size"),
        hidden_size=config.get("hidden_size"), num_layers=config.get("num_hidden_layers"),
        ffn_size=config.get("intermediate_size"),
        compression_ratio=teacher_total / params["total"] if teacher_total and params["total"] else None,
        path=str(model.path),
    ))


def _length_problem(job: Job, configs: dict[str, Any]) -> str | None:
    """Why the job's length cannot run on its model, found without starting a process."""
    if not job.targets:
        return None
    if job.model_path not in configs:
        from transformers import AutoConfig

        try:
            configs[job.model_path] = AutoConfig.from_pretrained(job.model_path, trust_remote_code=False)
        except (OSError, ValueError):
            configs[job.model_path] = None  # the child reports why the model does not load
    config = configs[job.model_path]
    return check_length(config, job.seq_len) if config is not None else None


def bench_models(models: Sequence[BenchModel], section: BenchSection, store: Store, *,
                 data_dir: Path | None = None, force: bool = False,
                 notes: list[str] | None = None) -> list[dict[str, Any]]:
    """Measure every (model, device, dtype, target, shape) of the grid that is not stored yet.

    Returns the rows written by this call (dicts of `benchmarks` columns). Notes about targets
    that could not be planned (e.g. 'real' without a language) are appended to `notes`.
    """
    store.init()
    keys = [m.model_key for m in models]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate model_key among the models to benchmark")
    done = set() if force else stored_done(store, keys)
    plan = plan_jobs(models, section, done, data_dir=data_dir)
    if notes is not None:
        notes.extend(plan.notes)
    env = environment()
    written: list[dict[str, Any]] = []
    params_by_key: dict[str, dict[str, int]] = {}
    configs: dict[str, Any] = {}
    # Teachers first, so a student's compression ratio can use its teacher's count.
    groups = sorted(plan.groups, key=lambda g: g.model.teacher_key != g.model.model_key)
    with bar(total=plan.n_jobs, desc="benchmark", unit="job") as progress:
        for group in groups:
            load_samples: list[dict[str, Any]] = []
            load_errors: list[str] = []
            process: dict[str, Any] = {}
            for planned in group.jobs:
                progress.set_postfix_str(f"{group.model.model_key} {planned.job.describe()}")
                rows: list[dict[str, Any]] = []
                problem = _length_problem(planned.job, configs)
                if problem:
                    rows = [_row(k, None, env, error=problem) for k in planned.keys.values()]
                    write_rows(store, rows)
                    written.extend(rows)
                    progress.update(1)
                    continue
                try:
                    result = run_in_child(run_job, planned.job)
                except ChildFailed as exc:
                    load_errors.append(str(exc))
                    rows = [_row(k, None, env, error=str(exc)) for k in planned.keys.values()]
                else:
                    process = result["process"]
                    load = result["targets"]["load"]
                    if "error" in load:
                        load_errors.append(load["error"])
                    else:
                        load_samples.append(load)
                    params = process.get("params")
                    if params:
                        params_by_key.setdefault(group.model.model_key, params)
                        _register_model(store, group.model, params, params_by_key)
                    for target, key in planned.keys.items():
                        measured = result["targets"].get(target)
                        if measured is None and "error" in load:
                            measured = {"error": "not run: the model did not load\n" + load["error"]}
                        rows.append(_row(key, measured, env, extra_env={"process": process}))
                write_rows(store, rows)
                written.extend(rows)
                progress.update(1)
            if group.load_key is not None:
                row = _load_row(group.load_key, load_samples, load_errors, env, process)
                write_rows(store, [row])
                written.append(row)
    return written
