"""Plan and run the benchmarks of a set of models; store one row per (model, target, device,
dtype, batch, length).

Planning: for every model, device and dtype, each synthetic shape of the grid is one job (a
fresh child process: load, first forward, steady forward) and each real batch size is one job.
Running: every job is run in `repeats` fresh processes, round by round across all models (see
`bench_models`); `combine` turns a row's per-process results into its figures. Every process
loads the model, so the 'load' row (batch 0, length 0) has one value per process of its group
(all jobs, all repeats); a group whose other rows are all stored gets one load-only job.

Rows already stored as 'done' are skipped unless `force`; 'failed' rows are measured again (the
cause may be gone: more memory, a data directory). A failing target is stored as 'failed' with
its error, and the rest goes on.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple, Sequence

from harness.bench.config import BenchSection, device_type
from harness.bench.measure import Job
from harness.bench.repeats import Rounds, failed_row
from harness.bench.results import RowKey, stored_done, write_rows
from harness.bench.shapes import check_length, shape_grid
from harness.env import environment
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


def load_only(job: Job) -> Job:
    """The job reduced to loading its model (for a load row whose other jobs cannot run)."""
    return replace(job, batch_size=0, seq_len=0, targets=(), real_task=None, real_language=None,
                   data_dir=None)


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

    Every job runs in `section.repeats` fresh processes, in rounds interleaved across all the
    models of the call (round 1: every job once, in plan order; round 2: every job again; ...),
    so a slow drift of the host touches every model alike. A row is written when its last repeat
    is done (or at once when it has failed: a row with a failed repeat is failed, and a job all
    of whose rows failed is not repeated further).

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
    env = {**environment(), "repeats": section.repeats, "memory_env": section.memory_env()}
    written: list[dict[str, Any]] = []
    params_by_key: dict[str, dict[str, int]] = {}
    configs: dict[str, Any] = {}

    def write(rows: list[dict[str, Any]]) -> None:
        write_rows(store, rows)
        written.extend(rows)

    def on_params(model: BenchModel, params: dict[str, int]) -> None:
        params_by_key.setdefault(model.model_key, params)
        _register_model(store, model, params, params_by_key)

    rounds = Rounds(section, env, write, on_params)
    # Teachers first, so a student's compression ratio can use its teacher's count.
    for group in sorted(plan.groups, key=lambda g: g.model.teacher_key != g.model.model_key):
        runnable = []
        for planned in group.jobs:
            problem = _length_problem(planned.job, configs)
            if problem:  # known before any process: failed at once, never repeated
                write([failed_row(k, problem, env) for k in planned.keys.values()])
            else:
                runnable.append(planned)
        if not runnable and group.load_key is not None:
            runnable.append(PlannedJob(load_only(group.jobs[0].job), {}))
        rounds.add_group(group, runnable)
    rounds.run()
    return written
