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


def compressed_eval_models(grid, *, data_dir: Path, device: str | None = None) -> list[EvalModel]:
    models = []
    for p in build_grid(grid, data_dir=data_dir, device=device):
        if not p.built or p.path is None:
            print(f"note: compressed point {p.model_key} was not built ({p.error}); not evaluated",
                  file=sys.stderr)
            continue
        models.append(eval_model_of(p, grid))
    return models
