"""Plan and execute the runs of a grid: (model x task x language x seed), each stored once.

The plan is every model of the grid (teachers, extra models, compressed points) crossed with the
grid's tasks, languages that have data for the task (a compressed point only its own language) and
seeds. Runs already 'done' in the store are skipped; 'running' rows are the trace of an interrupted
grid and are re-run; 'failed' rows are retried only when asked. A run that fails is stored with its
traceback and the grid goes on. Several workers may share one grid and database: each run is
claimed atomically before it starts (see Store.claim_run).
"""
from __future__ import annotations

import sys
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Sequence

from core import interrupt
from core.errors import DataError, UserError
from core.progress import bar
from harness.grid import Grid
from harness.store import ModelRecord, RunInfo, RunKey, Store
from tasks.fetch import check_present_files, fetch
from tasks.registry import get_task, has_data, load_task_data, required_files


@dataclass(frozen=True)
class EvalModel:
    """A model to evaluate, before or after its source is resolved to a local directory."""
    key: str
    name: str
    kind: str                       # 'teacher' | 'compressed' | 'model'
    source: str
    teacher_key: str | None
    revision: str | None = None
    language: str | None = None     # only this language (compressed points, pinned models)
    teacher_data: str | None = None
    path: Path | None = None
    manifest: dict | None = None
    stage_chain: str = ""
    compression_ratio: float | None = None


@dataclass(frozen=True)
class PlannedRun:
    model: EvalModel
    task: str
    language: str
    seed: int
    protocol_hash: str

    @property
    def key(self) -> RunKey:
        return RunKey(self.model.key, self.task, self.language, self.seed, self.protocol_hash)


@dataclass
class GridOutcome:
    planned: int = 0
    skipped_done: int = 0
    skipped_other: int = 0          # claimed or finished by another worker sharing the grid
    done: int = 0
    failed: list[tuple[RunKey, str]] = field(default_factory=list)
    no_data: list[tuple[str, str]] = field(default_factory=list)  # (task, language) without data

    def merged(self, other: "GridOutcome") -> "GridOutcome":
        """The outcome of two batches of runs of one grid together."""
        return GridOutcome(self.planned + other.planned, self.skipped_done + other.skipped_done,
                           self.skipped_other + other.skipped_other, self.done + other.done,
                           self.failed + other.failed, self.no_data + other.no_data)


def models_from_grid(grid: Grid) -> list[EvalModel]:
    """Teachers and extra models named in the grid (compressed points are added by the builder)."""
    out = [EvalModel(key=t.name, name=t.name, kind="teacher", source=t.source, revision=t.revision,
                     teacher_key=t.name, teacher_data=t.teacher_data) for t in grid.teachers]
    for m in grid.models:
        teacher_data = grid.teacher(m.teacher).teacher_data if m.teacher else None
        out.append(EvalModel(key=m.name, name=m.name, kind="model", source=m.source,
                             revision=m.revision, teacher_key=m.teacher, language=m.language,
                             teacher_data=teacher_data))
    return out


def resolve_models(models: Iterable[EvalModel]) -> list[EvalModel]:
    """Turn every source into a local Hugging Face directory (fails fast, before any run)."""
    from models.sources import resolve

    out = []
    for m in models:
        if m.path is None:
            resolved = resolve(m.source, revision=m.revision)
            m = replace(m, path=Path(resolved.path))
        out.append(m)
    return out


def model_record(m: EvalModel, teacher_params: int | None) -> ModelRecord:
    from models.loading import describe

    facts = describe(m.path)
    counts = facts["params"]
    ratio = m.compression_ratio
    if ratio is None and teacher_params:
        ratio = teacher_params / counts["total"]
    return ModelRecord(
        model_key=m.key, name=m.name, kind=m.kind, source=m.source,
        teacher_key=m.teacher_key or m.key, language=m.language, teacher_data=m.teacher_data,
        stage_chain=m.stage_chain, manifest=m.manifest, params_total=counts["total"],
        params_embedding=counts["embedding"], params_non_embedding=counts["non_embedding"],
        vocab_size=facts.get("vocab_size_tokenizer"), hidden_size=facts.get("hidden_size"),
        num_layers=facts.get("num_layers"), ffn_size=facts.get("intermediate_size"),
        compression_ratio=ratio, path=str(m.path),
    )


def register_models(store: Store, models: list[EvalModel]) -> None:
    records: dict[str, ModelRecord] = {}
    # teachers first, so a compressed point's ratio can refer to its teacher's count
    for m in sorted(models, key=lambda m: m.kind != "teacher"):
        teacher = records.get(m.teacher_key) if m.teacher_key and m.teacher_key != m.key else None
        rec = model_record(m, teacher.params_total if teacher else None)
        records[m.key] = rec
        store.upsert_model(rec)


def plan_runs(grid: Grid, models: list[EvalModel]) -> tuple[list[PlannedRun], list[tuple[str, str]]]:

    runs, no_data = [], []
    for task in grid.tasks:
        proto_hash = grid.protocol.resolve(task).hash()
        for language in grid.languages:
            if not has_data(task, language):
                no_data.append((task, language))
                continue
            for m in models:
                if m.language is not None and m.language != language:
                    continue
                for seed in grid.seeds.values():
                    runs.append(PlannedRun(m, task, language, seed, proto_hash))
    return runs, no_data


def register_protocol(store: Store, grid: Grid) -> str:
    """Store the grid's protocol family (its tasks' resolved protocols); returns its id."""
    family = grid.protocol.family_id()
    rows = []
    for task in grid.tasks:
        resolved = grid.protocol.resolve(task)
        rows.append((task, resolved.hash(), resolved.profile, resolved.as_dict()))
    store.register_protocol(family, rows)
    return family


def ensure_data(grid: Grid, data_dir: Path, *, offline: bool = False, mirrors: tuple[str, ...] = ()) -> None:
    """Verify the data files the grid needs (checksums, before the first run) and fetch the
    missing ones; stop with one message naming every corrupt or missing file."""

    entries = {}
    for task in grid.tasks:
        for language in grid.languages:
            if has_data(task, language):
                for e in required_files(task, language):
                    entries[e.path] = e
    lacking = check_present_files(list(entries.values()), data_dir)
    if not lacking:
        return
    if offline:
        names = ", ".join(e.path for e in lacking[:6]) + (" ..." if len(lacking) > 6 else "")
        raise DataError(f"{len(lacking)} data file(s) missing from {data_dir}: {names}; point --data-dir "
                        "(or HARNESS_DATA_DIR) at a copy, or run `harness data fetch` with network")
    fetch(lacking, data_dir, mirrors=list(mirrors))


def _task_data(cache: dict, task: str, language: str, data_dir: Path):
    """(TaskData, None), or (None, error message) when the files do not read; loaded once."""

    if (task, language) not in cache:
        try:
            cache[(task, language)] = (load_task_data(task, language, data_dir), None)
        except UserError as exc:
            cache[(task, language)] = (None, str(exc))
    return cache[(task, language)]


def _environment() -> tuple[dict, str | None, dict]:
    from harness.env import git_revision, hardware, versions
    return versions(), git_revision(), hardware()


def runs_to_do(runs: list[PlannedRun], store: Store, outcome: GridOutcome, *, retry_failed: bool,
               log: Callable[[str], None]) -> list[PlannedRun]:
    """The runs the store does not hold as done (nor as failed, unless retry_failed); counts the
    others in `outcome`."""
    statuses = store.statuses([r.key for r in runs])
    todo = []
    for r in runs:
        status = statuses.get(r.key.run_id)
        if status == "done" or (status == "failed" and not retry_failed):
            outcome.skipped_done += 1
            if status == "failed":
                outcome.failed.append((r.key, "stored as failed (use --retry-failed to run it again)"))
        else:
            todo.append(r)
    skipped = len(runs) - len(todo)
    if skipped:
        log(f"{skipped} of {len(runs)} runs already stored; {len(todo)} to go")
    return todo


class RunSetup:
    """What every run's record needs: the environment (read once) and the task data (loaded once
    per task and language)."""

    def __init__(self, grid: Grid, data_dir: Path):
        self.grid, self.data_dir = grid, data_dir
        self.versions, self.git_rev, self.hardware = _environment()
        self._data: dict[tuple[str, str], tuple] = {}
        self._lines: dict[tuple[str, int], tuple[str, ...]] = {}

    def label_job(self, r: PlannedRun, proto):
        """Task-specific distillation (protocol `teacher_labels`): the teacher's run writes soft labels,
        a compressed point's run reads its teacher's; None for plain fine-tuning."""
        from harness.finetune.teacher_labels import LabelJob, labels_path, unlabeled_lines

        opts = proto.teacher_labels
        if opts is None:
            return None
        if r.model.kind == "teacher":
            mode, teacher = "write", r.model.key
        elif r.model.teacher_key:  # a compressed point, or a listed model that names its teacher
            mode, teacher = "read", r.model.teacher_key
        else:
            return None
        if (r.language, opts.lines) not in self._lines:
            self._lines[(r.language, opts.lines)] = tuple(unlabeled_lines(r.language, self.data_dir, opts.lines, 0))
        return LabelJob(mode, labels_path(teacher, r.task, r.language, r.seed, r.protocol_hash),
                        self._lines[(r.language, opts.lines)], opts.weight, opts.temperature)

    def prepare(self, r: PlannedRun) -> tuple[RunInfo, object, object, str | None]:
        """(RunInfo, task data or None, resolved protocol, data error or None) for a run."""
        spec = get_task(r.task)
        proto = self.grid.protocol.resolve(r.task)
        data, load_error = _task_data(self._data, r.task, r.language, self.data_dir)
        info = RunInfo(
            key=r.key, dataset=getattr(data, "dataset", "?"), derived=bool(getattr(data, "derived", False)),
            derivation=getattr(data, "derivation", None),
            config={"protocol": proto.as_dict(), "model_source": r.model.source,
                    "model_path": str(r.model.path), "task": spec.to_config(r.language),
                    "license": getattr(data, "license", None)},
            versions=self.versions, git_rev=self.git_rev, hardware=self.hardware)
        return info, data, proto, load_error


def first_line(exc: BaseException) -> str:
    line = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


def execute_runs(runs: list[PlannedRun], store: Store, data_dir: Path, grid: Grid, *,
                 device: str | None = None, retry_failed: bool = False,
                 log: Callable[[str], None] = lambda s: print(s, file=sys.stderr)) -> GridOutcome:
    """The local executor: the runs one after another in this process."""
    from harness.finetune.train import finetune_and_score

    outcome = GridOutcome(planned=len(runs))
    worker_started = store.now()
    todo = runs_to_do(runs, store, outcome, retry_failed=retry_failed, log=log)
    setup = RunSetup(grid, data_dir)

    with bar(total=len(todo), desc="runs", unit="run", leave=True) as pbar:
        for r in todo:
            interrupt.check()
            pbar.set_postfix_str(f"{r.model.key} {r.task}/{r.language} seed {r.seed}")
            info, data, proto, load_error = setup.prepare(r)
            if not store.claim_run(info, worker_started, retry_failed=retry_failed):
                outcome.skipped_other += 1  # another worker has it, or finished it meanwhile
                pbar.update(1)
                continue
            try:
                if data is None:
                    raise DataError(load_error)
                result, report = finetune_and_score(r.model.path, get_task(r.task), data, proto, r.seed,
                                                    device=device, label_job=setup.label_job(r, proto))
            except KeyboardInterrupt:
                log(f"interrupted during {r.model.key} {r.task}/{r.language} seed {r.seed}: "
                    "it stays 'running' and is re-run next time")
                raise
            except Exception as exc:  # the grid goes on; the store keeps the traceback
                store.fail_run(r.key, traceback.format_exc())
                outcome.failed.append((r.key, first_line(exc)))
                log(f"FAILED {r.model.key} {r.task}/{r.language} seed {r.seed}: {first_line(exc)}")
            else:
                store.finish_run(r.key, result)
                outcome.done += 1
            pbar.update(1)
    return outcome


def format_summary(columns: list[str], rows: list[tuple], model_keys: Iterable[str] | None = None) -> str:
    """The summary table: mean, std and n per model, task, language, protocol (profile/precision and
    the start of its hash: runs under different protocols are never pooled) and metric."""
    keep = set(model_keys) if model_keys is not None else None
    idx = {c: i for i, c in enumerate(columns)}
    width = max([5] + [len(r[idx["model_key"]]) for r in rows])   # keys are unique only in full
    lines = []
    pwidth = max([8] + [len(r[idx["protocol"]]) for r in rows])
    header = (f"{'model':<{width}} {'task':<12} {'language':<9} {'protocol':<{pwidth}} "
              f"{'metric':<15} {'mean':>7} {'std':>7} {'n':>3}")
    lines += [header, "-" * len(header)]
    for row in rows:
        if keep is not None and row[idx["model_key"]] not in keep:
            continue
        std = row[idx["std"]]
        flag = "  (derived split)" if row[idx["derived"]] else ""
        lines.append(
            f"{row[idx['model_key']]:<{width}} {row[idx['task']]:<12} {row[idx['language']]:<9} "
            f"{row[idx['protocol']]:<{pwidth}} {row[idx['metric']]:<15} {row[idx['mean']]:>7.4f} "
            f"{(f'{std:.4f}' if std is not None else '-'):>7} {row[idx['n']]:>3}{flag}")
    return "\n".join(lines)


def grid_summary(store: Store, grid: Grid, model_keys: Sequence[str]) -> str:
    """What `harness eval` prints at the end: this grid's runs only (its models, tasks, languages,
    seeds and protocol), then each compressed point's change against the teacher, paired by seed,
    with the protocol named and, with one seed, the warning that it is no finding."""
    from harness.paired import Scope
    from harness.report import point_changes

    hashes = sorted({grid.protocol.resolve(task).hash() for task in grid.tasks})
    seeds = grid.seeds.values()
    columns, rows = store.summary(model_keys=list(model_keys), tasks=list(grid.tasks),
                                  languages=list(grid.languages), seeds=seeds, protocol_hashes=hashes)
    if not rows:
        return f"no finished runs of this grid in {store.path}"
    parts = [format_summary(columns, rows)]
    scope = Scope(frozenset(model_keys), frozenset(grid.tasks), frozenset(grid.languages), frozenset(seeds),
                  frozenset(hashes))
    changes = point_changes(store, scope=scope)
    if changes:
        parts += ["", "Change against the teacher (test scores, paired by seed; protocol as labelled):", changes]
        if len(seeds) == 1:
            parts.append("One seed: no interval, and a one-seed difference is not a finding. The headline "
                         "(examples/headline.yaml, 3 seeds) is reported by `harness report`.")
    return "\n".join(parts)


def elapsed(t0: float) -> str:
    s = int(time.perf_counter() - t0)
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
