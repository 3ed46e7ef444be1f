"""Texts -> deterministic, length-grouped batches for distillation; MLM masking; DDP sharding.

Everything is a function of (texts, seed, epoch, example index), never of the process or of how
far a run got, so that:

- a resumed run sees exactly the batches and masks an uninterrupted one would;
- under DDP the *global* batch is planned once, identically on every rank, and each rank takes an
  interleaved slice of it; a single process with the same global batch sees the same examples
  with the same masks (masks are drawn per example, seeded by (seed, epoch, index)).

An optimizer step draws ``batch_size * world_size * grad_accum`` examples, cut into ``grad_accum``
global micro-batches of ``batch_size * world_size``, each shared out over the processes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from core.constants import IGNORE_INDEX
from core.errors import DataError
from core.progress import bar

MEGABATCH_FACTOR = 50  # as in HF's LengthGroupedSampler: sort by length within 50 batches' worth
TOKENIZE_CHUNK = 1000


def tokenize_texts(tokenizer, texts: Sequence[str], max_length: int, *, progress: bool = True
                   ) -> list[list[int]]:
    """Token ids (with special tokens, truncated to `max_length`) of every non-blank text, in order."""
    kept = [t for t in texts if isinstance(t, str) and t.strip()]
    if not kept:
        raise DataError("no non-empty text to distil on; give a text file with one text per line")
    ids: list[list[int]] = []
    chunks = range(0, len(kept), TOKENIZE_CHUNK)
    for start in (bar(chunks, desc="tokenise", unit="chunk") if progress else chunks):
        enc = tokenizer(list(kept[start:start + TOKENIZE_CHUNK]), truncation=True,
                        max_length=max_length, add_special_tokens=True)
        ids.extend(enc["input_ids"])
    return ids


def length_grouped_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int
                           ) -> list[list[int]]:
    """One epoch of batches of example indices: shuffled (seeded by seed and epoch), sorted by length
    inside megabatches of 50 batches so that padding is small, batch order shuffled, the batch holding
    the longest example first (out-of-memory shows at once, not hours in)."""
    n = len(lengths)
    rng = np.random.default_rng([seed, epoch, 0x1E])
    order = rng.permutation(n)
    mega = batch_size * MEGABATCH_FACTOR
    batches: list[list[int]] = []
    for start in range(0, n, mega):
        chunk = sorted(order[start:start + mega].tolist(), key=lambda i: -lengths[i])
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    perm = rng.permutation(len(batches))
    batches = [batches[i] for i in perm]
    longest = max(range(len(batches)), key=lambda b: max(lengths[i] for i in batches[b]))
    batches.insert(0, batches.pop(longest))
    return batches


def token_budget_batches(lengths: Sequence[int], batch_tokens: int, seed: int, epoch: int) -> list[list[int]]:
    """One epoch of batches whose *padded* size (examples x longest length) stays within `batch_tokens`
    (a text longer than the budget alone makes a batch of one): shuffled (seeded by seed and epoch),
    sorted by length inside megabatches so that texts of similar length share a batch, so short texts
    come in large batches and long ones in small, and little compute goes to padding. Every example
    is in exactly one batch; the batch holding the longest example comes first."""
    n = len(lengths)
    rng = np.random.default_rng([seed, epoch, 0x7B])
    order = rng.permutation(n)
    mean = max(1.0, float(np.mean(lengths))) if n else 1.0
    mega = max(1, int(batch_tokens / mean) * MEGABATCH_FACTOR)
    batches: list[list[int]] = []
    for start in range(0, n, mega):
        chunk = sorted(order[start:start + mega].tolist(), key=lambda i: -lengths[i])
        current: list[int] = []
        for i in chunk:  # descending lengths: the first example of a batch is its widest
            if current and (len(current) + 1) * lengths[current[0]] > batch_tokens:
                batches.append(current)
                current = []
            current.append(i)
        if current:
            batches.append(current)
    perm = rng.permutation(len(batches))
    batches = [batches[i] for i in perm]
    if batches:
        longest = max(range(len(batches)), key=lambda b: max(lengths[i] for i in batches[b]))
        batches.insert(0, batches.pop(longest))
    return batches


def shard(global_batch: Sequence[int], rank: int, world_size: int) -> list[int]:
    """This rank's examples of a global batch: an interleaved slice, so that lengths (sorted inside the
    batch) are spread evenly over the ranks."""
    return list(global_batch[rank::world_size])


@dataclass(frozen=True)
class MicroBatch:
    epoch: int
    indices: tuple[int, ...]  # example indices of the global micro-batch
    tokens: int  # non-pad tokens in it


@dataclass(frozen=True)
class Step:
    micro_batches: tuple[MicroBatch, ...]

    @property
    def tokens(self) -> int:
        return sum(m.tokens for m in self.micro_batches)

    @property
    def examples(self) -> int:
        return sum(len(m.indices) for m in self.micro_batches)


def plan_steps(lengths: Sequence[int], *, batch_size: int, world_size: int, grad_accum: int, seed: int,
               steps: int | None = None, epochs: float | None = None,
               max_tokens: int | None = None, batch_tokens: int | None = None) -> list[Step]:
    """The whole run as a list of optimizer steps, stopping at whichever of `steps`, `epochs` (may be
    fractional) and `max_tokens` (non-pad tokens) comes first; at least one must be given.

    The examples of a step are drawn as one length-grouped batch of batch_size * world_size *
    grad_accum and then cut into grad_accum micro-batches of batch_size * world_size, so which texts a
    step sees does not depend on how it is split over micro-batches or processes. A micro-batch
    smaller than the world size (the tail of an epoch) is dropped: a rank would get nothing.

    With `batch_tokens`, micro-batches are cut by a padded-token budget instead (see
    token_budget_batches; `batch_size` is then unused) and a step is `grad_accum` consecutive ones."""
    if steps is None and epochs is None and max_tokens is None:
        raise ValueError("plan_steps needs steps, epochs or max_tokens")
    micro = batch_size * world_size

    def epoch_steps(epoch: int) -> list[Step]:
        if batch_tokens is not None:
            mbs = [MicroBatch(epoch, tuple(b), sum(lengths[i] for i in b))
                   for b in token_budget_batches(lengths, batch_tokens, seed, epoch) if len(b) >= world_size]
            return [Step(tuple(mbs[i:i + grad_accum])) for i in range(0, len(mbs), grad_accum)]
        out = []
        for batch in length_grouped_batches(lengths, micro * grad_accum, seed, epoch):
            parts = [batch[i:i + micro] for i in range(0, len(batch), micro)]
            mbs = tuple(MicroBatch(epoch, tuple(p), sum(lengths[i] for i in p)) for p in parts if len(p) >= world_size)
            if mbs:
                out.append(Step(mbs))
        return out

    first = epoch_steps(0)
    if not first:
        raise DataError(f"{len(lengths)} texts are too few for {world_size} processes; give more text")
    step_limit = steps if steps is not None else (math.ceil(epochs * len(first)) if epochs is not None else None)
    plan: list[Step] = []
    tokens, epoch = 0, 0
    while True:
        for step in (first if epoch == 0 else epoch_steps(epoch)):
            if step_limit is not None and len(plan) >= step_limit:
                return plan
            plan.append(step)
            tokens += step.tokens
            if max_tokens is not None and tokens >= max_tokens:
                return plan
        epoch += 1


class MlmMasker:
    """BERT's masking: each maskable token is selected with `probability`; of those, 80% become the
    mask token, 10% a random non-special token, 10% stay; labels are the original ids at selected
    positions and -100 elsewhere. Special tokens are never selected. Seeded per example."""

    def __init__(self, *, vocab_size: int, mask_token_id: int, special_ids: Sequence[int],
                 probability: float, seed: int):
        if mask_token_id is None:
            raise DataError("the student's tokenizer has no mask token, so MLM distillation cannot mask "
                            "input; use a hidden-state loss (loss: hidden_mse)")
        self.mask_token_id = int(mask_token_id)
        self.special = np.zeros(vocab_size, dtype=bool)
        self.special[[i for i in special_ids if 0 <= i < vocab_size]] = True
        self.random_ids = np.flatnonzero(~self.special)
        self.probability = probability
        self.seed = seed

    def __call__(self, ids: Sequence[int], epoch: int, index: int) -> tuple[list[int], list[int]]:
        ids_arr = np.asarray(ids, dtype=np.int64)
        rng = np.random.default_rng([self.seed, epoch, index, 0x3A5C])
        draws = rng.random((3, len(ids_arr)))
        maskable = ~self.special[np.clip(ids_arr, 0, len(self.special) - 1)]
        selected = (draws[0] < self.probability) & maskable
        labels = np.where(selected, ids_arr, IGNORE_INDEX)
        inputs = ids_arr.copy()
        to_mask = selected & (draws[1] < 0.8)
        to_random = selected & ~to_mask & (draws[2] < 0.5)
        inputs[to_mask] = self.mask_token_id
        random_tokens = self.random_ids[rng.integers(0, len(self.random_ids), size=len(ids_arr))]
        inputs[to_random] = random_tokens[to_random]
        return inputs.tolist(), labels.tolist()
