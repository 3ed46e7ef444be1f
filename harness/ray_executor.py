"""`--executor ray`: a grid's compression stages and fine-tuning runs as Ray tasks.

The driver (this process) plans the grid as the local executor does and skips what the store
has; it is the only process that writes the DuckDB file (DuckDB is a single-machine database).
Each compression stage is a task whose parent stages are task dependencies, so independent
points build in parallel; a point's runs are submitted the moment its last stage is built. Each
fine-tuning run is a task that returns its scores; the driver stores them as they arrive.

- A task that raises is stored as failed with its traceback and the grid goes on.
- A worker that dies mid-task is retried by Ray (`ray.max_retries` in the grid); only the driver
  writes and a run's row is keyed by its id, so a retry leaves no duplicate.
- Ctrl-C on the driver cancels the outstanding tasks; their runs stay 'running' in the store and
  a rerun does them (as with the local executor).

Task data are read by the driver and shipped with each task; model directories (the stage cache,
teachers, local models) must be on storage every node sees, which `check_shared_storage` verifies
on every node before the first task.
"""
from __future__ import annotations

import re
import sys
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from compression.build import BuiltPoint, StageJob, point_record, run_stage_job, stage_job
from compression.plan import Plan, format_plan, make_plan
from core.errors import DataError, UserError
from core.progress import bar
from harness.compressed_models import eval_model_of
from harness.grid import Grid, RaySection, TaskResources
from harness.runner import (EvalModel, GridOutcome, PlannedRun, RunSetup, first_line, plan_runs,
                            register_models, runs_to_do)
from harness.store import Store
from tasks.registry import get_task

Log = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def require_ray():
    try:
        import ray
    except ImportError:
        raise UserError("--executor ray needs Ray: pip install -e '.[ray]' (or pip install ray)") from None
    return ray


WORKER_ENV = {"HF_HUB_DISABLE_PROGRESS_BARS": "1"}


def connect(address: str | None = None, *, log: Log = _stderr):
    """Join the cluster at `address` ('auto': the one this machine belongs to; 'ray://host:port':
    a remote one), or start a local instance when None; a session already connected is reused."""
    ray = require_ray()
    if ray.is_initialized():
        return ray
    try:
        # workers print what they log to this terminal: turn off the progress bars transformers
        # shows per save ("Writing model shards"), as the CLI does for its own process
        ray.init(address=address, include_dashboard=False, configure_logging=False, log_to_driver=True,
                 runtime_env={"env_vars": WORKER_ENV})
    except ConnectionError as err:
        raise UserError(f"cannot reach the Ray cluster at {address!r}: {first_line(err)} "
                        "(start it with `ray start --head`, or drop --address for a local instance)") from None
    res = ray.cluster_resources()
    log(f"ray: {len(ray.nodes())} node(s), {res.get('CPU', 0):g} CPU, {res.get('GPU', 0):g} GPU")
    return ray


def _resources(res: TaskResources, device: str | None, max_retries: int) -> dict:
    gpus = res.num_gpus if res.num_gpus is not None else (1 if (device or "").startswith("cuda") else 0)
    return {"num_cpus": res.num_cpus, "num_gpus": gpus, "max_retries": max_retries}


# -- what runs on the workers --------------------------------------------------------------------

def finetune_task(model_path: Path, spec, data, proto, seed: int, device: str | None, label_job=None):
    """One fine-tuning run on a worker: its RunResult (scores and timings)."""
    from harness.finetune.train import finetune_and_score

    result, _report = finetune_and_score(Path(model_path), spec, data, proto, seed, device=device,
                                         label_job=label_job)
    return result


def _sees(markers: dict[str, str]) -> list[str]:
    """The marker files (path -> content) this node cannot read as written."""
    bad = []
    for path, content in markers.items():
        try:
            if Path(path).read_text() != content:
                bad.append(path)
        except OSError:
            bad.append(path)
    return bad


def check_shared_storage(dirs: list[Path], *, log: Log = _stderr) -> None:
    """Every node must see each directory as this driver does: a marker written here is read back
    by a task pinned to each node. Raises UserError naming the first node that does not."""
    ray = require_ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if len(nodes) < 2:
        return  # one node: it is this machine, which sees what the driver sees
    markers: dict[str, str] = {}
    for d in dict.fromkeys(Path(x).resolve() for x in dirs):
        d.mkdir(parents=True, exist_ok=True)
        token = uuid.uuid4().hex
        marker = d / f".ray-visible-{token[:12]}"
        marker.write_text(token)
        markers[str(marker)] = token
    try:
        probe = ray.remote(num_cpus=0)(_sees)
        refs = {n["NodeManagerAddress"]: probe.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(markers)
            for n in nodes}
        for host, ref in refs.items():
            missing = ray.get(ref)
            if missing:
                raise UserError(f"node {host} does not see {Path(missing[0]).parent} as this machine does: "
                                "put the stage cache (HARNESS_CACHE_DIR) and model directories on a filesystem "
                                "every node mounts at the same path")
        log(f"ray: {len(nodes)} nodes see the stage cache and model directories")
    finally:
        for marker in markers:
            Path(marker).unlink(missing_ok=True)


# -- the driver ------------------------------------------------------------------------------------

def _plan_graph(grid, *, data_dir: Path | None, device: str | None, resources: dict, ray, log: Log,
                extra_dirs: Sequence[Path] = (), cache_dir: Path | None = None,
                resolve: Callable[[str, str | None], Path] | None = None) -> "StageGraph":
    """The grid's compression plan, printed and checked (every node sees the stage cache, the
    teachers and `extra_dirs`), as a graph of stage tasks ready to submit."""
    plan = make_plan(grid, data_dir=data_dir, cache_dir=cache_dir, resolve=resolve)
    log(format_plan(plan))
    check_shared_storage([plan.cache.root, *plan.teacher_dirs.values(), *extra_dirs], log=log)
    plan.cache.clean_stale()
    return StageGraph(plan, device, resources, ray)


def _as_completed(ray, pending: dict) -> Iterator[tuple[Any, Any]]:
    """(ref, what it stands for) of each task of `pending` as it finishes, removed from `pending`;
    tasks added to `pending` meanwhile are waited for too."""
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            yield ref, pending.pop(ref)


@contextmanager
def _cancel_on_interrupt(ray, pending: dict, log: Log, note: str = ""):
    """Ctrl-C cancels every task still in `pending` (then re-raises)."""
    try:
        yield
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        log(f"interrupted: {len(pending)} outstanding task(s) cancelled{note}")
        raise


@dataclass
class _Pending:
    kind: str                              # 'stage' | 'run'
    stage_key: str | None = None
    run: PlannedRun | None = None


@dataclass
class StageGraph:
    """A plan's missing stages submitted as Ray tasks, each depending on its parent's task."""
    plan: Plan
    device: str | None
    resources: dict
    ray: Any
    refs: dict[str, Any] = field(default_factory=dict)       # stage key -> ObjectRef or built Path
    errors: dict[str, str] = field(default_factory=dict)     # stage key -> error line

    def submit(self) -> dict[Any, str]:
        """Submit every stage not in the cache; returns {ObjectRef: stage key}."""
        remote = self.ray.remote(run_stage_job).options(**self.resources)
        submitted = {}
        for p in self.plan.points:
            dirs: list[Any] = [self.plan.teacher_dirs[p.teacher]]
            for s in p.stages:
                if s.key not in self.refs:
                    if self.plan.cache.has(s.key):
                        self.refs[s.key] = self.plan.cache.path(s.key)
                    else:
                        teacher = dirs[s.distill_teacher_index] if s.distill_teacher_index is not None else None
                        job: StageJob = stage_job(p, s, self.plan, self.device)
                        ref = remote.remote(job, dirs[-1], teacher)
                        self.refs[s.key] = ref
                        submitted[ref] = s.key
                dirs.append(self.refs[s.key])
        return submitted

    def points_ready(self, done_key: str | None = None) -> list[BuiltPoint]:
        """Points whose last stage is `done_key` (or, with None, already in the cache)."""
        return [point_record(p, self.plan) for p in self.plan.points
                if (p.key == done_key if done_key is not None else self.plan.cache.has(p.key))]

    def failed_points(self, stage_key: str) -> list[str]:
        return self.plan.users(stage_key)


class RayExecutor:
    """Runs a grid's stages and fine-tuning runs on a Ray cluster; the caller's store is written
    only from this process. `finetune` is the function each run task calls (a test may wrap it)."""

    def __init__(self, grid: Grid, store: Store, data_dir: Path, *, device: str | None = None,
                 retry_failed: bool = False, log: Log = _stderr, finetune: Callable = finetune_task):
        self.ray = require_ray()
        self.grid, self.store, self.data_dir, self.device = grid, store, data_dir, device
        self.retry_failed, self.log = retry_failed, log
        self.outcome = GridOutcome()
        self.setup = RunSetup(grid, data_dir)
        self.worker_started = store.now()
        ray_cfg = grid.ray
        self._run_remote = self.ray.remote(finetune).options(
            **_resources(ray_cfg.finetune, device, ray_cfg.max_retries))
        self._stage_resources = _resources(ray_cfg.stage, device, ray_cfg.max_retries)
        self.pending: dict[Any, _Pending] = {}
        self.models: list[EvalModel] = []
        self._data_refs: dict[tuple[str, str], Any] = {}

    # -- submitting
    def _submit_runs(self, models: list[EvalModel], phase: str) -> int:
        if not models:
            return 0
        self.models += models
        register_models(self.store, models)
        runs, no_data = plan_runs(self.grid, models)
        self.outcome.planned += len(runs)
        self.outcome.no_data += [nd for nd in no_data if nd not in self.outcome.no_data]
        self.log(f"{phase}: {len(models)} model(s), {len(runs)} run(s) planned; results in {self.store.path}")
        todo = runs_to_do(runs, self.store, self.outcome, retry_failed=self.retry_failed, log=self.log)
        n = 0
        for r in todo:
            info, data, proto, load_error = self.setup.prepare(r)
            if not self.store.claim_run(info, self.worker_started, retry_failed=self.retry_failed):
                self.outcome.skipped_other += 1
                continue
            try:
                if data is None:
                    raise DataError(load_error)
                label_job = self.setup.label_job(r, proto)
            except DataError as exc:
                self._failed(r, exc, f"DataError: {exc}")
                continue
            key = (r.task, r.language)
            if key not in self._data_refs:  # each task's data goes to the object store once
                self._data_refs[key] = self.ray.put(data)
            ref = self._run_remote.remote(r.model.path, get_task(r.task), self._data_refs[key], proto, r.seed,
                                          self.device, label_job)
            self.pending[ref] = _Pending("run", run=r)
            n += 1
        return n

    def _failed(self, r: PlannedRun, exc: BaseException, trace: str) -> None:
        self.store.fail_run(r.key, trace)
        self.outcome.failed.append((r.key, first_line(exc)))
        self.log(f"FAILED {r.model.key} {r.task}/{r.language} seed {r.seed}: {first_line(exc)}")

    # -- the loop
    def run(self, models: list[EvalModel], *, compress: bool = True) -> GridOutcome:
        """Evaluate `models` (teachers and listed models, resolved) and, with `compress`, the grid's
        compressed points, building the missing ones as tasks."""
        graph = None
        model_dirs = [m.path for m in models if m.path is not None]
        if compress and self.grid.compression is not None:
            graph = _plan_graph(self.grid, data_dir=self.data_dir, device=self.device,
                                resources=self._stage_resources, ray=self.ray, log=self.log, extra_dirs=model_dirs)
        elif models:
            check_shared_storage(model_dirs, log=self.log)
        self._submit_runs(models, "models")
        stages = 0
        if graph is not None:
            for ref, key in graph.submit().items():
                self.pending[ref] = _Pending("stage", stage_key=key)
                stages += 1
            ready = [eval_model_of(p, self.grid) for p in graph.points_ready()]
            self._submit_runs(ready, "compressed points (cached)")
        self._drain(graph, stages)
        return self.outcome

    def _drain(self, graph: StageGraph | None, stages: int) -> None:
        total = sum(p.kind == "run" for p in self.pending.values()) + stages
        with _cancel_on_interrupt(self.ray, self.pending, self.log,
                                  "; their runs stay 'running' and are re-run next time"), \
                bar(total=total, desc="ray tasks", unit="task", leave=True) as pbar:
            for ref, item in _as_completed(self.ray, self.pending):
                if item.kind == "stage":
                    pbar.total += self._stage_done(graph, item.stage_key, ref)
                    pbar.refresh()
                else:
                    self._run_done(item.run, ref)
                pbar.update(1)

    def _stage_done(self, graph: StageGraph, key: str, ref) -> int:
        try:
            path = self.ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - the points that need it are not evaluated
            graph.errors[key] = first_line(_cause(exc))
            for model_key in graph.failed_points(key):
                self.log(f"note: compressed point {model_key} was not built ({graph.errors[key]}); not evaluated")
            return 0
        self.log(f"built {key} -> {path}")
        ready = [eval_model_of(p, self.grid) for p in graph.points_ready(key)]
        return self._submit_runs(ready, "compressed point")

    def _run_done(self, r: PlannedRun, ref) -> None:
        try:
            result = self.ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - stored with its traceback; the grid goes on
            self._failed(r, _cause(exc), task_traceback(exc))
        else:
            self.store.finish_run(r.key, result)
            self.outcome.done += 1


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def task_traceback(exc: BaseException) -> str:
    """The traceback of a failed task as text: Ray's error message carries the worker's frames
    (with terminal colours, which are dropped here)."""
    text = _ANSI.sub("", str(exc)).strip()
    return text if text.startswith("Traceback") else f"Traceback (most recent call last, in a Ray task):\n{text}"


def _cause(exc: BaseException) -> BaseException:
    """The user's exception inside a Ray task error (RayTaskError wraps it as its cause)."""
    inner = getattr(exc, "cause", None)
    return inner if isinstance(inner, BaseException) else exc


def build_grid_ray(grid: Grid, *, data_dir: Path | None, cache_dir: Path | None = None, device: str | None = None,
                   resolve: Callable[[str, str | None], Path] | None = None, log: Log = _stderr) -> list[BuiltPoint]:
    """`harness compress --executor ray`: every missing stage of the grid as a task (the same
    arguments as compression.build.build_grid)."""
    ray = require_ray()
    ray_cfg = getattr(grid, "ray", None) or RaySection()
    graph = _plan_graph(grid, data_dir=data_dir, device=device, ray=ray, log=log, cache_dir=cache_dir,
                        resolve=resolve, resources=_resources(ray_cfg.stage, device, ray_cfg.max_retries))
    pending = graph.submit()
    with _cancel_on_interrupt(ray, pending, log), \
            bar(total=len(pending), desc="stages", unit="stage", leave=True) as pbar:
        for ref, key in _as_completed(ray, pending):
            try:
                log(f"built {key} -> {ray.get(ref)}")
            except Exception as exc:  # noqa: BLE001 - recorded; the other points go on
                graph.errors[key] = first_line(_cause(exc))
                log(f"FAILED {key}: {graph.errors[key]}")
            pbar.update(1)
    plan = graph.plan
    out = []
    for p in plan.points:
        error = next((graph.errors[s.key] for s in p.stages if s.key in graph.errors), None)
        out.append(point_record(p, plan, error=error))
    return out
