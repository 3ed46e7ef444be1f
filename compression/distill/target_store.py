"""The teacher's distillation targets on disk: computed once, stored in bf16, memory-mapped, shared.

Without an MLM loss the teacher sees unmasked text, so what it gives a distillation (the hidden
states of some layers, the queries, keys and values of others) depends only on the teacher, the
token ids of each text and the precision. Those targets are computed in one pass over the text and
written here, one file per target:

    <root>/<ids digest>/offsets.npy                          start row of every text (+ the end)
    <root>/<ids digest>/<teacher digest>-<precision>-<target>.bf16   (tokens x width) bf16 rows

so every stage and grid point that distils from the same teacher on the same text (and cut at the
same length) reads the same files, whatever else differs (the objective, the budget, the student),
and several epochs over a small language's text cost one teacher pass instead of one per epoch.
Files are written to a temporary name and renamed when complete: a reader never sees half a file,
and an interrupted build starts again. The loop uses a store only where it pays (see `worth_it`).
"""
from __future__ import annotations

import hashlib
import os
import time
import uuid
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from compression.distill.data import token_budget_batches
from core.paths import file_sha256
from core.progress import bar
from models.batching import collate

BUILD_BATCH_TOKENS = 8192  # texts per teacher pass are grouped up to this many (padded) tokens


def teacher_digest(model_dir: Path) -> str:
    """sha256 over the teacher's config and weight files (cached per file size and mtime)."""
    model_dir = Path(model_dir)
    h = hashlib.sha256()
    for path in sorted(model_dir.glob("*.safetensors")) + [model_dir / "config.json"]:
        if path.is_file():
            h.update(path.name.encode())
            h.update(file_sha256(path).encode())
    return h.hexdigest()[:20]


def ids_digest(ids: Sequence[Sequence[int]]) -> str:
    h = hashlib.sha256()
    for row in ids:
        h.update(np.asarray(row, dtype=np.int64).tobytes())
        h.update(b"\xff")
    return h.hexdigest()[:20]


def worth_it(planned_tokens: int, corpus_tokens: int, all_present: bool, *, min_passes: float = 1.5) -> bool:
    """A store pays when its files exist already, or when the run passes over the text often enough
    that one teacher pass (the build) plus reads costs less than a teacher pass per epoch."""
    return all_present or planned_tokens >= min_passes * corpus_tokens


class TeacherTargetStore:
    """The targets of one teacher, precision and tokenised text. Use as the Teacher's cache:
    `lookup` returns padded targets for a batch (always a hit once built); `store` does nothing."""

    def __init__(self, root: Path, *, teacher_id: str, precision: str, ids: Sequence[Sequence[int]],
                 names: Sequence[int | str]):
        self.dir = Path(root) / ids_digest(ids)
        self.prefix = f"{teacher_id}-{precision}"
        self.lengths = np.asarray([len(r) for r in ids], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)])
        self.names = list(names)
        self.arrays: dict[int | str, np.memmap] = {}
        self.hits = self.misses = 0
        self.used_bytes = 0  # bytes read from the store (the report's "mb")
        self.build_seconds = 0.0  # spent computing missing targets in `ensure`

    def path(self, name: int | str) -> Path:
        return self.dir / f"{self.prefix}-{name}.bf16"

    def missing(self) -> list[int | str]:
        return [n for n in self.names if not self.path(n).is_file()]

    def ensure(self, compute: Callable[[Tensor, Tensor], dict], ids: Sequence[Sequence[int]], pad_id: int,
               device: torch.device, widths: dict, *, progress: bool = True) -> None:
        """Compute and write the missing targets (one teacher pass over all texts), then open all."""
        missing = self.missing()
        if missing:
            t0 = time.perf_counter()
            self._build(compute, ids, pad_id, device, {n: widths[n] for n in missing}, progress)
            self.build_seconds = time.perf_counter() - t0
        for name in self.names:
            width = widths[name]
            self.arrays[name] = np.memmap(self.path(name), dtype=np.uint16, mode="r",
                                          shape=(int(self.offsets[-1]), width))

    def _build(self, compute, ids, pad_id: int, device: torch.device, widths: dict, progress: bool) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        np.save(self.dir / f"offsets.{os.getpid()}.npy", self.offsets)
        os.replace(self.dir / f"offsets.{os.getpid()}.npy", self.dir / "offsets.npy")
        total = int(self.offsets[-1])
        tag = uuid.uuid4().hex[:8]
        tmp = {n: self.dir / f".{self.path(n).name}.{tag}" for n in widths}
        out = {n: np.memmap(tmp[n], dtype=np.uint16, mode="w+", shape=(total, widths[n])) for n in widths}
        batches = token_budget_batches(self.lengths.tolist(), BUILD_BATCH_TOKENS, seed=0, epoch=0)
        for batch in (bar(batches, desc="teacher targets", unit="batch") if progress else batches):
            padded = collate([ids[i] for i in batch], pad_id)
            targets = compute(padded["input_ids"].to(device), padded["attention_mask"].to(device))
            for name in widths:
                values = targets[name].detach().to("cpu", torch.bfloat16).view(torch.uint16).numpy()
                for row, i in enumerate(batch):
                    out[name][self.offsets[i]:self.offsets[i + 1]] = values[row, :self.lengths[i]]
        for name in widths:
            out[name].flush()
            del out[name]
            os.replace(tmp[name], self.path(name))

    def lookup(self, indices: Sequence[int], lengths: Sequence[int], names: Sequence[int | str]
               ) -> dict[int | str, Tensor]:
        width = max(lengths)
        result = {}
        for name in names:
            arr = self.arrays[name]
            padded = np.zeros((len(indices), width, arr.shape[1]), dtype=np.uint16)
            for row, i in enumerate(indices):
                start, end = self.offsets[i], self.offsets[i + 1]
                padded[row, :end - start] = arr[start:end]
            self.used_bytes += padded.nbytes
            result[name] = torch.from_numpy(padded).view(torch.bfloat16)
        self.hits += len(indices)
        return result

    def store(self, *args, **kwargs) -> None:  # the Teacher's cache interface: everything is stored
        return None
