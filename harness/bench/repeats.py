"""Running planned jobs in repeats: interleaved rounds of fresh processes, and their rows.

Round r runs every job once, in plan order, so a slow drift of the host (a shared machine
warming up, another job starting) touches every model alike instead of the one measured at that
moment. With `memory_mmap_threshold` set, each round runs every job twice: a latency process (the
allocator as users have it) and a memory process (glibc's mmap threshold fixed, few calls); see
docs/benchmarks.md for why.

Rows: a row is written when its last repeat is done, its figures combined by `combine`. A row
with a failed repeat is failed (with that repeat's error), and a job all of whose rows have
failed is not repeated further: its rows are written at once. An interruption loses only the
rows not written yet.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

from core import interrupt
from core.progress import bar
from harness.bench.combine import combine
from harness.bench.config import BenchSection
from harness.bench.isolate import ChildFailed, run_in_child
from harness.bench.measure import Job, run_job
from harness.bench.results import RowKey


def _key_columns(key: RowKey) -> dict[str, Any]:
    return {"bench_id": key.bench_id, "model_key": key.model_key, "target": key.target,
            "device": key.device, "dtype": key.dtype, "batch_size": key.batch_size,
            "seq_len": key.seq_len}


def failed_row(key: RowKey, error: str, env: dict[str, Any],
               extra_env: dict[str, Any] | None = None) -> dict[str, Any]:
    return {**_key_columns(key), "status": "failed", "error": error,
            "environment": {**env, **(extra_env or {})}}


def done_row(key: RowKey, samples: Sequence[dict[str, Any]], env: dict[str, Any],
             extra_env: dict[str, Any] | None = None,
             memories: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The row of one target from its per-process results (see `combine`)."""
    columns = combine(samples, memories)
    row_env = {**env, **(extra_env or {})}
    notes = columns.pop("memory_notes")
    if notes:
        row_env["memory_notes"] = notes
    for k in ("n_examples", "n_batches"):
        if k in samples[-1]:
            row_env[k] = samples[-1][k]
    return {**_key_columns(key), "status": "done", "error": None, **columns,
            "environment": row_env}


# What a measuring process is for: both latency and memory (no separate memory processes), or one.
BOTH, LATENCY, MEMORY = "both", "latency", "memory"


@dataclass
class JobRepeats:
    """The repeats of one planned job so far."""
    group: Group
    planned: PlannedJob
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)   # latency, per process
    memories: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # memory, per process
    errors: dict[str, str] = field(default_factory=dict)  # target -> its first failure
    load_failed: bool = False
    process: dict[str, Any] = field(default_factory=dict)  # facts of the latest process
    closed: bool = False

    @property
    def settled(self) -> bool:
        """Every row of the job has failed already: more repeats cannot change that."""
        if not self.planned.keys:
            return self.load_failed
        return all(t in self.errors for t in self.planned.keys)


@dataclass
class GroupLoads:
    """The loads of a group's processes, for its 'load' row."""
    samples: list[dict[str, Any]] = field(default_factory=list)   # from latency processes
    memories: list[dict[str, Any]] = field(default_factory=list)  # from memory processes
    errors: list[str] = field(default_factory=list)   # a load that raised
    deaths: list[str] = field(default_factory=list)   # a process that died without an answer
    process: dict[str, Any] = field(default_factory=dict)
    open_jobs: int = 0


def load_row(key: RowKey, loads: GroupLoads, env: dict[str, Any],
             separate_memory: bool = False) -> dict[str, Any]:
    """The load row: one value per measuring process that loaded the model, over all jobs and
    repeats of its group (memory from the memory processes when `separate_memory`). Failed when
    a load raised in any process; a process that died without an answer adds nothing (its own
    rows carry the death), unless no process of the kind needed loaded at all."""
    extra = {"process": loads.process}
    if loads.errors:
        return failed_row(key, loads.errors[0], env, extra)
    if not loads.samples or (separate_memory and not loads.memories):
        return failed_row(key, loads.deaths[0] if loads.deaths else "the model was never loaded",
                          env, extra)
    return done_row(key, loads.samples, env, extra,
                    memories=loads.memories if separate_memory else None)


def memory_job(job: Job) -> Job:
    """The job as a memory process runs it: the same targets, with only as many calls as reach
    the steady peak (one untimed warm-up call, or pass over the real batches, then one timed)."""
    return replace(job, warmup=min(job.warmup, 1), min_iterations=1, min_duration_s=0.0)


class Rounds:
    """Runs jobs in interleaved rounds of fresh processes; writes each row when it is final."""

    def __init__(self, section: BenchSection, env: dict[str, Any],
                 write: Callable[[list[dict[str, Any]]], None],
                 on_params: Callable[[Any, dict[str, int]], None]):
        self.repeats = section.repeats
        self.memory_env = section.memory_env()
        self.roles = (LATENCY, MEMORY) if self.memory_env is not None else (BOTH,)
        self.env = env
        self.write = write
        self.on_params = on_params   # (the group's BenchModel, its parameter counts)
        self.jobs: list[JobRepeats] = []
        self.loads: dict[int, GroupLoads] = {}

    def add_group(self, group: Any, planned: Sequence[Any]) -> None:
        """A group (runner.Group) and those of its planned jobs that will run."""
        self.loads[id(group)] = GroupLoads(open_jobs=len(planned))
        self.jobs.extend(JobRepeats(group, p) for p in planned)

    def run(self) -> None:
        with bar(total=len(self.jobs) * self.repeats * len(self.roles), desc="benchmark",
                 unit="process") as progress:
            for repeat in range(1, self.repeats + 1):
                for state in self.jobs:
                    for role in self.roles:
                        interrupt.check()
                        if not state.closed:
                            progress.set_postfix_str(f"{state.group.model.model_key} "
                                                     f"{state.planned.job.describe()} {role} "
                                                     f"{repeat}/{self.repeats}")
                            self._run_once(state, repeat, role)
                            if state.settled:
                                self._close(state)
                        progress.update(1)
                    if not state.closed and repeat == self.repeats:
                        self._close(state)

    def _run_once(self, state: JobRepeats, repeat: int, role: str) -> None:
        group_loads = self.loads[id(state.group)]
        prefix = f"repeat {repeat} of {self.repeats}: " if self.repeats > 1 else ""
        if role == MEMORY:
            prefix += "memory process: "
        job = memory_job(state.planned.job) if role == MEMORY else state.planned.job
        try:
            result = run_in_child(run_job, job, env=self.memory_env if role == MEMORY else None)
        except ChildFailed as exc:
            group_loads.deaths.append(prefix + str(exc))
            for target in state.planned.keys:
                state.errors.setdefault(target, prefix + str(exc))
            if not state.planned.keys:
                state.load_failed = True
            return
        if role != MEMORY:  # a row's process facts are those of its latency processes
            state.process = group_loads.process = result["process"]
        load = result["targets"]["load"]
        if "error" in load:
            state.load_failed = True
            group_loads.errors.append(prefix + load["error"])
        elif role == MEMORY:
            group_loads.memories.append(load["memory"])
        else:
            group_loads.samples.append(load)
        params = result["process"].get("params")
        if params:
            self.on_params(state.group.model, params)
        for target in state.planned.keys:
            measured = result["targets"].get(target)
            if measured is None and "error" in load:
                error = "not run: the model did not load\n" + load["error"]
            elif measured is not None and "error" in measured:
                error = measured["error"]
            elif measured is None or not measured.get("values_ms"):
                error = "no measurement came back"
            elif role == MEMORY:
                state.memories.setdefault(target, []).append(measured["memory"])
                continue
            else:
                state.samples.setdefault(target, []).append(measured)
                continue
            state.errors.setdefault(target, prefix + error)

    def _close(self, state: JobRepeats) -> None:
        state.closed = True
        extra = {"process": state.process}
        separate = self.memory_env is not None
        self.write([failed_row(key, state.errors[t], self.env, extra) if t in state.errors
                    else done_row(key, state.samples[t], self.env, extra,
                                  memories=state.memories[t] if separate else None)
                    for t, key in state.planned.keys.items()])
        group_loads = self.loads[id(state.group)]
        group_loads.open_jobs -= 1
        if group_loads.open_jobs == 0 and state.group.load_key is not None:
            self.write([load_row(state.group.load_key, group_loads, self.env, separate)])
