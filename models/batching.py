"""Length-sorted batches with dynamic padding.

Evaluation batches are the examples sorted by length, so each batch is padded only to its own
longest member and a prediction does not depend on which other examples share its batch (padding
is masked; only floating-point summation order could differ). Training batches group examples of
similar length too (random mega-chunks sorted by length, then shuffled, as in Hugging Face's
group_by_length), seeded so a run is reproducible.
"""
from __future__ import annotations

import random
from typing import Sequence

import torch

from core.constants import IGNORE_INDEX


def eval_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def train_batches(lengths: Sequence[int], batch_size: int, rng: random.Random,
                  chunk_batches: int = 50) -> list[list[int]]:
    order = list(range(len(lengths)))
    rng.shuffle(order)
    chunk = batch_size * chunk_batches
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start:start + chunk], key=lambda i: lengths[i], reverse=True)
        batches += [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(input_ids: Sequence[Sequence[int]], pad_id: int,
            labels: Sequence[int] | Sequence[Sequence[int]] | None = None,
            pad_to_multiple_of: int | None = None) -> dict[str, torch.Tensor]:
    """Pad to this batch's longest sequence (rounded up to `pad_to_multiple_of` when given):
    input_ids, attention_mask and, when given, labels: one per sequence, or one per position
    (padded with -100)."""
    width = max(len(x) for x in input_ids)
    if pad_to_multiple_of:
        width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
    ids = torch.full((len(input_ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(input_ids), width), dtype=torch.long)
    for row, x in enumerate(input_ids):
        ids[row, :len(x)] = torch.tensor(x, dtype=torch.long)
        mask[row, :len(x)] = 1
    batch = {"input_ids": ids, "attention_mask": mask}
    if labels is not None:
        if len(labels) and isinstance(labels[0], (list, tuple)):
            lab = torch.full((len(labels), width), IGNORE_INDEX, dtype=torch.long)
            for row, y in enumerate(labels):
                lab[row, :len(y)] = torch.tensor(y, dtype=torch.long)
        else:
            lab = torch.tensor(labels, dtype=torch.long)
        batch["labels"] = lab
    return batch
