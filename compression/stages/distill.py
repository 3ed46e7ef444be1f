"""The distillation stage: a thin wrapper around compression.distill.loop.distill.

The student is the parent of the stage; its teacher is chosen by the stage's `teacher` field and
resolved by the builder (by default the input of the previous stage: the original teacher after
a depth reduction, the FFN-pruned model after a hidden-size reduction, as in the paper's
two-step recipe). The text is the language's training text. Distillation writes into `out_dir`,
which the cache keeps across interruptions (so a distillation that checkpoints can resume).
"""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

from compression.distill import loop
from compression.schema import DistillStage
from compression.tensors.modelio import copy_carried_files
from compression.tensors.shapes import ModelShape
from core.errors import ConfigError

# bump when a change of this module changes what it outputs: it is part of every cache key
VERSION = 1


def distill_config(settings: dict[str, Any], seed: int):
    """A validated DistillConfig from the stage's settings (the section's seed unless set)."""
    fields = loop.DistillConfig.model_fields
    values = dict(settings)
    if "seed" in fields:
        values.setdefault("seed", seed)
    try:
        return loop.DistillConfig(**values)
    except Exception as err:  # noqa: BLE001 - a pydantic ValidationError, shown as one line
        errors = getattr(err, "errors", None)
        if errors:
            first = errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "settings"
            raise ConfigError(f"distill.{where}: {first['msg']} (got {first.get('input')!r}); "
                              f"allowed fields: {', '.join(sorted(fields))}") from None
        raise ConfigError(f"distill settings: {err}") from None


def _as_dict(report: Any) -> dict:
    if report is None:
        return {}
    if hasattr(report, "model_dump"):
        return report.model_dump(mode="json")
    if dataclasses.is_dataclass(report):
        return dataclasses.asdict(report)
    if isinstance(report, dict):
        return report
    return {k: v for k, v in vars(report).items() if not k.startswith("_")}


def apply(parent_dir: Path, cfg: DistillStage, ctx, out_dir: Path) -> dict:
    if ctx.distill_teacher_dir is None:
        raise ConfigError("the distill stage has no teacher (it must follow another stage or name one)")
    dcfg = distill_config(cfg.settings, ctx.seed)
    texts = ctx.training_texts()
    out_dir = Path(out_dir)
    # beside the (resumable) work directory, so an interrupted distillation continues
    checkpoints = out_dir.parent / f"{out_dir.name}.ckpt"
    report = loop.distill(Path(parent_dir), Path(ctx.distill_teacher_dir), texts, dcfg, out_dir,
                            device=ctx.device, progress=True, checkpoint_dir=checkpoints,
                            target_store_dir=ctx.target_store_dir)
    copy_carried_files(Path(parent_dir), out_dir)  # tokenizer / vocabulary maps, if distill did not
    shutil.rmtree(checkpoints, ignore_errors=True)
    out = _as_dict(report)
    out["teacher_key"] = ctx.distill_teacher_key
    out["text_lines"] = len(texts)
    return out


def check(shape: ModelShape, cfg: DistillStage) -> None:
    return None


def predict_shape(shape: ModelShape, cfg: DistillStage) -> ModelShape:
    return shape
