"""Building a grid's compressed points through the stage cache.

    build_grid(grid, data_dir=..., dry_run=False) -> list[BuiltPoint]

Stages are built in plan order, each at most once (points sharing a prefix share its entries);
a stage that fails marks the points that need it as failed and the others go on.
"""
from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from compression.cache import StageCache
from compression.manifest import read_manifest
from compression.plan import Plan, PlannedPoint, format_plan, format_table, human, make_plan
from compression.stages import StageContext, run_stage
from core.errors import UserError


@dataclass
class BuiltPoint:
    model_key: str                   # f"{teacher}--{language}--{point}--{hash of the final stage key}"
    teacher: str
    language: str
    point: str
    path: Path | None                # the Hugging Face directory (None when not built)
    manifest: dict | None
    params: dict                     # total / embedding / non_embedding (real when built, else predicted)
    compression_ratio: float         # teacher total / total
    stage_chain: str
    built: bool = False
    error: str | None = None
    stage_keys: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The readable name (the key without its build hash)."""
        return f"{self.teacher}--{self.language}--{self.point}"


TARGET_STORE_DIR = ".teacher-targets"  # inside the stage cache: shared by every distillation of the cache


def point_record(p: PlannedPoint, plan: Plan, error: str | None = None) -> BuiltPoint:
    path = plan.cache.path(p.key)
    manifest = read_manifest(path) if plan.cache.has(p.key) else None
    if manifest is not None:
        params, ratio = manifest["params"], manifest["compression_ratio"]
    else:
        params, ratio = p.params.as_dict(), round(p.compression_ratio, 4)
    return BuiltPoint(p.model_key, p.teacher, p.language, p.point, path if manifest else None, manifest,
                      params, ratio, p.stage_chain, built=manifest is not None, error=error,
                      stage_keys=[s.key for s in p.stages])


@dataclass
class StageJob:
    """One stage to build, with everything but its parent directories (which may come from other
    jobs): picklable, so an executor can run it in another process or on another machine."""
    key: str
    cfg: object
    cache_root: Path
    context: dict                    # StageContext fields except distill_teacher_dir
    resumable: bool


def stage_job(p: PlannedPoint, s, plan: Plan, device: str | None) -> StageJob:
    text = plan.texts[p.language]
    context = dict(seed=plan.section.seed, device=device, language=p.language, texts=text.texts, dev=text.dev,
                   data_fingerprint=s.data_fingerprint, teacher=plan.teacher_sources[p.teacher], key=s.key,
                   parent_key=s.parent_key, distill_teacher_key=s.distill_teacher_key, text=text.inputs(),
                   target_store_dir=plan.cache.root / TARGET_STORE_DIR)
    return StageJob(s.key, s.cfg, plan.cache.root, context, resumable=s.cfg.stage == "distill")


def run_stage_job(job: StageJob, parent: Path, distill_teacher: Path | None = None) -> Path:
    """Build the job's cache entry (or find it built) from `parent`; return its directory."""
    ctx = StageContext(**job.context, distill_teacher_dir=distill_teacher)
    return StageCache(job.cache_root).build(job.key, lambda work: run_stage(parent, job.cfg, ctx, work),
                                            resumable=job.resumable)


def _build_point(p: PlannedPoint, plan: Plan, device: str | None, progress: Callable[[str], None],
                 counter: list[int], total: int) -> None:
    dirs = [plan.teacher_dirs[p.teacher]]
    for s in p.stages:
        missing = not plan.cache.has(s.key)
        if missing:
            counter[0] += 1
            progress(f"[{counter[0]}/{total}] {s.cfg.label()} for {p.model_key} ({s.key})")
        start = time.perf_counter()
        teacher = dirs[s.distill_teacher_index] if s.distill_teacher_index is not None else None
        path = run_stage_job(stage_job(p, s, plan, device), dirs[-1], teacher)
        if missing:
            progress(f"      done in {time.perf_counter() - start:.1f}s -> {path}")
        dirs.append(path)


def build_grid(grid, *, data_dir: Path | str | None, cache_dir: Path | str | None = None,
               dry_run: bool = False, device: str | None = None,
               resolve: Callable[[str, str | None], Path] | None = None,
               echo: Callable[[str], None] = print) -> list[BuiltPoint]:
    """Build (or, with dry_run, only plan) every compressed point of `grid.compression`."""
    plan = make_plan(grid, data_dir=data_dir, cache_dir=cache_dir, resolve=resolve)
    echo(format_plan(plan))
    if dry_run:
        return [point_record(p, plan) for p in plan.points]
    plan.cache.clean_stale()
    total, counter = len(plan.to_build()), [0]
    failed: dict[str, str] = {}
    results = []
    for p in plan.points:
        broken = next((failed[s.key] for s in p.stages if s.key in failed), None)
        if broken is None:
            try:
                _build_point(p, plan, device, echo, counter, total)
            except (KeyboardInterrupt, UserError):
                raise
            except Exception as err:  # noqa: BLE001 - recorded; the other points go on
                key = next((s.key for s in p.stages if not plan.cache.has(s.key)), p.key)
                failed[key] = f"{type(err).__name__}: {err}"
                broken = failed[key]
                echo(f"      FAILED {key}: {broken}\n{traceback.format_exc(limit=3)}")
        results.append(point_record(p, plan, error=broken))
    echo("")
    echo(format_results(results))
    return results


def format_results(points: list[BuiltPoint]) -> str:
    rows = []
    for b in points:
        m = b.manifest or {}
        rows.append([b.model_key, b.stage_chain, f"{b.params['total']:,}", human(b.params["embedding"]),
                     f"{b.compression_ratio:.2f}x", f"{1 - 1 / b.compression_ratio:.1%}",
                     f"{m.get('wall_time_s', 0):.0f}s" if m else "-",
                     "ok" if b.built else (f"failed: {b.error}"[:60] if b.error else "not built")])
    return format_table(rows, ["model", "chain", "params", "emb", "ratio", "fewer", "time", "status"])
