"""The fine-tuning protocol: hyper-parameters, profiles and the protocol hash that keys runs.

Three profiles:

- `standard` (the default, and the headline comparison of teachers and compressed points): the
  whole training split of topic classification, POS and Maltese/Swahili sentiment, with caps only
  where a 2-core CPU cannot afford a whole split (sentiment and NER at 2,000 training examples,
  dev splits at 500), 5 epochs, the best dev epoch kept, bf16 where the processor has it.
- `fewshot` (formerly `quick`, which is still accepted): a fixed sample of 256 training examples
  and 200 dev examples, 5 epochs (8 for token tasks). It answers another question, how
  sample-hungry a model is, and is never mixed with `standard` (a profile is part of the hash).
- `full`: whole training and dev splits, 10 epochs with early stopping (meant for a GPU).

A profile may set defaults per task kind
(token tasks learn more slowly from a few hundred sentences: NER sits at entity F1 0 for its first
epochs while it learns to leave 'O'). Explicit fields override the profile, and `tasks:` overrides
per task. The hash covers every resolved field plus PROTOCOL_VERSION, which is
bumped whenever the training code changes what a given configuration computes.
"""
from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import Field, field_validator

from core.errors import UserError
from core.model import StrictModel
from core.precision import resolve_precision
from tasks.registry import get_task


PROTOCOL_VERSION = 2  # 2: precision and embedding freezing are part of the protocol

_COMMON = dict(learning_rate=1e-4, head_learning_rate=2e-3, batch_size=16, eval_batch_size=64, max_length=128,
               patience=0, freeze_encoder=False, freeze_embeddings=False, weight_decay=0.01, warmup_ratio=0.1,
               pooling="mean", precision="auto")

PROFILES: dict[str, dict] = {
    "standard": dict(_COMMON, epochs=5, max_train_examples=None, max_dev_examples=500),
    "fewshot": dict(_COMMON, epochs=5, max_train_examples=256, max_dev_examples=200),
    "full": dict(_COMMON, learning_rate=5e-5, head_learning_rate=1e-3, epochs=10, batch_size=32,
                 eval_batch_size=128, max_length=256, patience=3, max_train_examples=None, max_dev_examples=None),
}
PROFILE_ALIASES = {"quick": "fewshot"}

# Per task kind, on top of the profile (before the grid's own fields).
PROFILE_KIND_DEFAULTS: dict[str, dict[str, dict]] = {
    "standard": {},
    "fewshot": {"token": dict(epochs=8)},
    "full": {},
}
# Per task, on top of the kind's defaults: the caps a 2-core CPU needs under `standard`. Set from the
# split sizes (a whole split wherever it is no bigger than about three topic runs' worth of
# examples), not yet from measured run times; docs/results.md has the topic runs' cost.
PROFILE_TASK_DEFAULTS: dict[str, dict[str, dict]] = {
    "standard": {"sentiment": dict(max_train_examples=2000), "ner": dict(max_train_examples=2000)},
    "fewshot": {},
    "full": {},
}


def _task_kind(task: str) -> str | None:
    try:
        return get_task(task).kind
    except UserError:  # an unknown task is reported by the grid's own validation
        return None


class TeacherLabels(StrictModel):
    """Task-specific distillation (harness.finetune.teacher_labels): the fine-tuned teacher labels
    `lines` lines of the language's unlabeled raw text; a compressed point learns from those soft
    labels (KL at `temperature`, times `weight`) beside the gold examples: one distribution per line
    for sequence tasks, one per word for token tasks."""
    lines: int = Field(2000, ge=1, le=1_000_000)
    weight: float = Field(1.0, gt=0, le=100)
    temperature: float = Field(2.0, gt=0, le=100)


def _without_unset_options(dump: dict) -> dict:
    """A dump without options that are off (None), so adding an option leaves the hashes of
    protocols that do not use it unchanged."""
    return {k: v for k, v in dump.items() if not (k in _OPTIONAL and v is None)}


_OPTIONAL = ("teacher_labels",)


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
    freeze_embeddings: bool | None = None  # word embeddings not trained (a cheaper optimizer step)
    precision: Literal["auto", "fp32", "bf16"] | None = None
    teacher_labels: TeacherLabels | None = None


class TaskOverrides(_Overrides):
    """Per-task overrides (e.g. more epochs for NER)."""


class Protocol(_Overrides):
    """The `protocol:` section of the grid file."""
    profile: Literal["standard", "fewshot", "quick", "full"] = "standard"
    tasks: dict[str, TaskOverrides] = Field(default_factory=dict)

    @field_validator("profile")
    @classmethod
    def _alias(cls, value: str) -> str:
        return PROFILE_ALIASES.get(value, value)

    def family_id(self) -> str:
        """The hash of the whole section (profile, overrides, per-task overrides): the runs of a
        grid's tasks under one section form a protocol family, which is what a leaderboard
        compares (each task has its own resolved protocol within it)."""
        precisions = sorted({self.resolve(t).precision for t in self.tasks} | {self.resolve(None).precision})
        dump = _without_unset_options(self.model_dump(mode="json"))
        dump["tasks"] = {t: _without_unset_options(o) for t, o in dump["tasks"].items()}
        blob = json.dumps({"version": PROTOCOL_VERSION, **dump, "precisions": precisions},
                          sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def resolve(self, task: str | None, device: str | None = None) -> "ResolvedProtocol":
        """The task's concrete protocol; `auto` precision resolved for `device` (default: the device
        a run uses here, CUDA when present)."""
        values = dict(PROFILES[self.profile])
        if task is not None:
            values.update(PROFILE_KIND_DEFAULTS[self.profile].get(_task_kind(task), {}))
            values.update(PROFILE_TASK_DEFAULTS[self.profile].get(task, {}))
        for source in (self, self.tasks.get(task) if task is not None else None):
            if source is None:
                continue
            for name in _Overrides.model_fields:
                v = getattr(source, name)
                if v is not None:
                    values[name] = v
        values["precision"] = resolve_precision(values["precision"], device or _run_device())
        return ResolvedProtocol(profile=self.profile, **values)


def _run_device() -> str:
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"


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
    freeze_embeddings: bool  # the word-embedding matrix gets no updates
    precision: Literal["fp32", "bf16"]  # resolved: bf16 autocast with fp32 weights, or plain fp32
    teacher_labels: TeacherLabels | None = None  # task-specific distillation

    def as_dict(self) -> dict:
        return {"version": PROTOCOL_VERSION, **_without_unset_options(self.model_dump())}

    def hash(self) -> str:
        blob = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]
