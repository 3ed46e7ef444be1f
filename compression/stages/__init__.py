"""Running one stage: (parent model dir, stage config, context) -> model dir with a manifest.

Each stage module of this package (vocab, depth, ffn, hidden, distill) provides
`apply(parent_dir, cfg, ctx, out_dir) -> report`, `check(shape, cfg)` (raises ConfigError when the
config cannot apply to a parent of that shape) and `predict_shape(shape, cfg) -> ModelShape`.
`run_stage` times `apply`, then writes compression_manifest.json and the provenance in
config.json.
"""
from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from compression.manifest import write_manifest
from core.errors import UserError
from core.registry import unknown_name_message

STAGE_MODULES = {"vocab": "compression.stages.vocab", "depth": "compression.stages.depth", "ffn": "compression.stages.ffn",
                 "hidden": "compression.stages.hidden", "distill": "compression.stages.distill"}


def stage_module(name: str):
    """The module implementing a stage (imported on first use)."""
    if name not in STAGE_MODULES:
        raise UserError(unknown_name_message("stage", name, list(STAGE_MODULES)))
    return importlib.import_module(STAGE_MODULES[name])


def uses_data(cfg) -> bool:
    """Whether the stage's output depends on the language's training text."""
    if cfg.stage == "hidden":
        return cfg.init == "importance"
    return cfg.stage in ("vocab", "ffn", "distill")


def uses_seed(cfg) -> bool:
    if cfg.stage == "hidden":
        return cfg.init == "importance"
    return cfg.stage in ("ffn", "distill")


TextsLike = list[str] | Callable[[], list[str]] | None


@dataclass
class StageContext:
    """What a stage may use besides its parent and config. Texts may be given lazily."""
    seed: int = 42
    device: str | None = None
    language: str | None = None
    texts: TextsLike = None
    dev: TextsLike = None
    data_fingerprint: str | None = None
    teacher: dict | None = None            # {"name", "source", "revision"} of the original teacher
    key: str | None = None                 # this stage's cache key
    parent_key: str | None = None
    distill_teacher_dir: Path | None = None
    distill_teacher_key: str | None = None
    text: dict | None = None               # which text `texts` comes from (compression.texts.text_inputs)
    target_store_dir: Path | None = None    # where distillation may keep the teacher's targets on disk
    _resolved: dict = field(default_factory=dict, repr=False)

    def _get(self, name: str) -> list[str]:
        if name not in self._resolved:
            value = getattr(self, name)
            self._resolved[name] = list(value() if callable(value) else (value or []))
        return self._resolved[name]

    def training_texts(self) -> list[str]:
        return self._get("texts")

    def dev_texts(self) -> list[str]:
        return self._get("dev")

    def torch_device(self) -> torch.device:
        if self.device:
            return torch.device(self.device)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def run_stage(parent_dir: Path, cfg, ctx: StageContext, out_dir: Path) -> Path:
    """Apply one stage to `parent_dir`, writing the child and its manifest into `out_dir`."""
    module = stage_module(cfg.stage)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    report = module.apply(Path(parent_dir), cfg, ctx, out_dir)
    wall = time.perf_counter() - start
    write_manifest(out_dir, parent_dir=Path(parent_dir), cfg=cfg, ctx=ctx, report=report,
                   wall_time_s=wall, data_used=uses_data(cfg), seed_used=uses_seed(cfg))
    return out_dir
