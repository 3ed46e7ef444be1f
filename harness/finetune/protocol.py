"""The fine-tuning protocol: hyper-parameters, profiles and the protocol hash that keys runs.

Two profiles: `quick` caps training examples and epochs so the default example fits a 2-core CPU;
`full` trains on whole training splits (meant for a GPU). A profile may set defaults per task kind
(token tasks learn more slowly from a few hundred sentences: NER sits at entity F1 0 for its first
epochs while it learns to leave 'O'). Explicit fields override the profile, and `tasks:` overrides
per task. The hash covers every resolved field plus PROTOCOL_VERSION, which is
bumped whenever the training code changes what a given configuration computes.
"""
from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import Field

from core.errors import UserError
from core.model import StrictModel
from tasks.registry import get_task

PROTOCOL_VERSION = 1

PROFILES: dict[str, dict] = {
    "quick": dict(learning_rate=1e-4, head_learning_rate=2e-3, epochs=5, batch_size=16,
                  eval_batch_size=64, max_length=128, patience=0, freeze_encoder=False,
                  weight_decay=0.01, warmup_ratio=0.1, max_train_examples=256, max_dev_examples=200,
                  pooling="mean"),
    "full": dict(learning_rate=5e-5, head_learning_rate=1e-3, epochs=10, batch_size=32,
                 eval_batch_size=128, max_length=256, patience=3, freeze_encoder=False,
                 weight_decay=0.01, warmup_ratio=0.1, max_train_examples=None, max_dev_examples=None,
                 pooling="mean"),
}

# Per task kind, on top of the profile (before the grid's own fields).
PROFILE_KIND_DEFAULTS: dict[str, dict[str, dict]] = {
    "quick": {"token": dict(epochs=8)},
    "full": {},
}


def _task_kind(task: str) -> str | None:
    try:
        return get_task(task).kind
    except UserError:  # an unknown task is reported by the grid's own validation
        return None


class _Overrides(StrictModel):
    learning_rate: float | None = Field(None, gt=0, lt=1)
    head_learning_rate: float | None = Field(None, gt=0, lt=1)
    epochs: int | None = Field(None, ge=1, le=1000)
    batch_size: int | None = Field(None, ge=1, le=4096)
    eval_batch_size: int | None = Field(None, ge=1, le=4096)
    max_length: int | None = Field(None, ge=8, le=8192)
    patience: int | None = Field(None, ge=0, le=1000)
    freeze_encoder: bool | None = None
    weight_decay: float | None = Field(None, ge=0, le=1)
    warmup_ratio: float | None = Field(None, ge=0, le=1)
    max_train_examples: int | None = Field(None, ge=1)
    max_dev_examples: int | None = Field(None, ge=1)
    pooling: Literal["mean", "cls"] | None = None


class TaskOverrides(_Overrides):
    """Per-task overrides (e.g. more epochs for NER)."""


class Protocol(_Overrides):
    """The `protocol:` section of the grid file."""
    profile: Literal["quick", "full"] = "quick"
    tasks: dict[str, TaskOverrides] = Field(default_factory=dict)

    def family_id(self) -> str:
        """The hash of the whole section (profile, overrides, per-task overrides): the runs of a
        grid's tasks under one section form a protocol family, which is what a leaderboard
        compares (each task has its own resolved protocol within it)."""
        blob = json.dumps({"version": PROTOCOL_VERSION, **self.model_dump(mode="json")},
                          sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def resolve(self, task: str) -> "ResolvedProtocol":
        values = dict(PROFILES[self.profile])
        values.update(PROFILE_KIND_DEFAULTS[self.profile].get(_task_kind(task), {}))
        for source in (self, self.tasks.get(task)):
            if source is None:
                continue
            for name in _Overrides.model_fields:
                v = getattr(source, name)
                if v is not None:
                    values[name] = v
        return ResolvedProtocol(profile=self.profile, **values)


class ResolvedProtocol(StrictModel):
    """Every hyper-parameter of one task's fine-tuning, concrete."""

    profile: str
    learning_rate: float
    head_learning_rate: float | None  # None: same as learning_rate
    epochs: int
    batch_size: int
    eval_batch_size: int
    max_length: int
    patience: int
    freeze_encoder: bool
    weight_decay: float
    warmup_ratio: float
    max_train_examples: int | None  # None: the whole training split
    max_dev_examples: int | None
    pooling: str  # sequence tasks: 'mean' over the attention mask, or the model's own 'cls' head

    def as_dict(self) -> dict:
        return {"version": PROTOCOL_VERSION, **self.model_dump()}

    def hash(self) -> str:
        blob = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]
