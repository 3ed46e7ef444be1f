"""The compressed points of a grid as models to evaluate: built (or found in the stage cache) by
compression.build, then handed to the runner like any other model directory."""
from __future__ import annotations

import sys
from pathlib import Path

from compression.build import BuiltPoint, build_grid
from harness.runner import EvalModel


def eval_model_of(p: BuiltPoint, grid) -> EvalModel:
    """A built point as a model to evaluate."""
    return EvalModel(
        key=p.model_key, name=p.name, kind="compressed", source=f"compressed:{p.point}",
        teacher_key=p.teacher, language=p.language, teacher_data=grid.teacher(p.teacher).teacher_data,
        path=Path(p.path) if p.path is not None else None, manifest=p.manifest, stage_chain=p.stage_chain,
        compression_ratio=p.compression_ratio)


def compressed_eval_models(grid, *, data_dir: Path, device: str | None = None, build: bool = True,
                           **plan_options) -> list[EvalModel]:
    """The grid's points as models to evaluate: built when missing, or with `build` False only those
    already in the stage cache (the others are named and skipped). `plan_options` go to build_grid
    (cache_dir, resolve, echo)."""
    models = []
    for p in build_grid(grid, data_dir=data_dir, device=device, dry_run=not build, **plan_options):
        if not p.built or p.path is None:
            why = p.error or "not in the stage cache, and --no-compress builds nothing: drop --no-compress"
            print(f"note: compressed point {p.model_key} was not built ({why}); not evaluated", file=sys.stderr)
            continue
        models.append(eval_model_of(p, grid))
    return models
