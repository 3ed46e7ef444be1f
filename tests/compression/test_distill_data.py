"""Batching, planning, sharding and masking for distillation: deterministic and complete."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from compression.distill.data import (MlmMasker, length_grouped_batches, plan_steps, shard,
                                      token_budget_batches, tokenize_texts)
from compression.distill.losses import IGNORE_INDEX
from models.batching import collate
from distill_fixtures import single_thread  # noqa: F401 (fixture)
from distill_fixtures import corpus, tokenizer_for

_RNG = random.Random(3)
LENGTHS = [_RNG.randint(3, 100) for _ in range(400)]

pytestmark = pytest.mark.usefixtures("single_thread")


def _padding(batches, lengths):
    return sum(len(b) * max(lengths[i] for i in b) - sum(lengths[i] for i in b) for b in batches)


def test_length_grouped_batches_cover_each_example_once_and_are_seeded():
    batches = length_grouped_batches(LENGTHS, 8, seed=0, epoch=0)
    assert sorted(i for b in batches for i in b) == list(range(len(LENGTHS)))
    assert batches == length_grouped_batches(LENGTHS, 8, seed=0, epoch=0)
    assert batches != length_grouped_batches(LENGTHS, 8, seed=0, epoch=1)
    assert batches != length_grouped_batches(LENGTHS, 8, seed=1, epoch=0)
    assert max(LENGTHS) == max(LENGTHS[i] for i in batches[0])  # the longest batch comes first
    shuffled = np.random.default_rng(0).permutation(len(LENGTHS)).tolist()
    plain = [shuffled[i:i + 8] for i in range(0, len(shuffled), 8)]
    assert _padding(batches, LENGTHS) < _padding(plain, LENGTHS) / 4


def test_shards_partition_a_batch():
    batch = list(range(10, 21))
    parts = [shard(batch, r, 3) for r in range(3)]
    assert sorted(i for p in parts for i in p) == batch
    assert parts[0] == [10, 13, 16, 19]


def test_plan_by_steps_epochs_and_tokens():
    by_steps = plan_steps(LENGTHS, batch_size=8, world_size=1, grad_accum=2, seed=0, steps=7)
    assert len(by_steps) == 7 and all(len(s.micro_batches) == 2 for s in by_steps)
    # 400 examples / 16 per step = 25 steps per epoch
    assert len(plan_steps(LENGTHS, batch_size=8, world_size=1, grad_accum=2, seed=0, epochs=1.5)) == 38
    one_epoch = plan_steps(LENGTHS, batch_size=8, world_size=1, grad_accum=2, seed=0, epochs=1)
    assert sum(s.tokens for s in one_epoch) == sum(LENGTHS)
    assert sum(s.examples for s in one_epoch) == len(LENGTHS)
    capped = plan_steps(LENGTHS, batch_size=8, world_size=1, grad_accum=1, seed=0, max_tokens=2000)
    assert sum(s.tokens for s in capped) >= 2000 > sum(s.tokens for s in capped[:-1])
    assert capped == plan_steps(LENGTHS, batch_size=8, world_size=1, grad_accum=1, seed=0, max_tokens=2000)


def test_step_contents_do_not_depend_on_the_split_over_micro_batches_or_processes():
    def step_sets(**kw):
        return [sorted(i for m in s.micro_batches for i in m.indices)
                for s in plan_steps(LENGTHS, seed=5, steps=12, **kw)]
    reference = step_sets(batch_size=8, world_size=1, grad_accum=1)
    assert step_sets(batch_size=4, world_size=1, grad_accum=2) == reference
    assert step_sets(batch_size=4, world_size=2, grad_accum=1) == reference
    assert step_sets(batch_size=2, world_size=2, grad_accum=2) == reference


def _masker(tok, probability=0.15, seed=0):
    return MlmMasker(vocab_size=len(tok), mask_token_id=tok.mask_token_id, special_ids=tok.all_special_ids,
                     probability=probability, seed=seed)


def test_mlm_masking_80_10_10_never_touches_specials_and_is_seeded():
    tok = tokenizer_for("bert")
    masker = _masker(tok)
    special = set(tok.all_special_ids)
    normal = [i for i in range(len(tok)) if i not in special]
    rng = random.Random(0)
    ids = [tok.cls_token_id] + [rng.choice(normal) for _ in range(20000)] + [tok.sep_token_id]
    inputs, labels = masker(ids, epoch=0, index=7)
    assert (inputs, labels) == masker(ids, epoch=0, index=7)
    assert (inputs, labels) != masker(ids, epoch=1, index=7)
    assert labels[0] == labels[-1] == IGNORE_INDEX and inputs[0] == ids[0] and inputs[-1] == ids[-1]
    selected = [j for j, lab in enumerate(labels) if lab != IGNORE_INDEX]
    assert all(labels[j] == ids[j] for j in selected)
    assert all(inputs[j] == ids[j] for j in range(len(ids)) if labels[j] == IGNORE_INDEX)
    assert len(selected) / len(ids) == pytest.approx(0.15, abs=0.01)
    as_mask = sum(inputs[j] == tok.mask_token_id for j in selected) / len(selected)
    unchanged = sum(inputs[j] == ids[j] for j in selected) / len(selected)
    assert as_mask == pytest.approx(0.8, abs=0.02)
    assert unchanged == pytest.approx(0.1 + 0.1 / len(normal), abs=0.02)
    assert all(inputs[j] not in special or inputs[j] == tok.mask_token_id for j in selected)


def test_collate_pads_dynamically_and_labels_padding_as_ignored():
    batch = collate([[5, 6, 7], [8]], pad_id=1, labels=[[-100, 6, -100], [8]])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 1, 1]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, -100], [8, -100, -100]]
    assert collate([[5, 6, 7]], pad_id=0, pad_to_multiple_of=8)["input_ids"].shape == torch.Size([1, 8])


@pytest.mark.parametrize("kind", ["bert", "xlmr"])
def test_tokenize_texts_drops_blank_texts_and_truncates(kind):
    tok = tokenizer_for(kind)
    ids = tokenize_texts(tok, ["", "   ", *corpus(5, max_words=40)], max_length=16, progress=False)
    assert len(ids) == 5 and max(len(x) for x in ids) == 16
    assert ids[0][0] == tok.cls_token_id and ids[0][-1] == tok.sep_token_id


def test_token_budget_batches_cover_every_example_once_within_the_budget():
    rng = random.Random(3)
    lengths = [rng.randint(3, 120) for _ in range(500)] + [300]  # one text longer than the budget
    for epoch in range(3):
        batches = token_budget_batches(lengths, 1024, seed=7, epoch=epoch)
        flat = sorted(i for b in batches for i in b)
        assert flat == list(range(len(lengths)))  # every example exactly once per epoch
        assert all(len(b) * max(lengths[i] for i in b) <= 1024 or len(b) == 1 for b in batches)
        assert max(lengths[i] for i in batches[0]) == 300  # the widest batch first
    assert token_budget_batches(lengths, 1024, 7, 0) == token_budget_batches(lengths, 1024, 7, 0)
    assert token_budget_batches(lengths, 1024, 7, 0) != token_budget_batches(lengths, 1024, 7, 1)
    # short texts come in large batches, long ones in small: padding stays low
    batches = token_budget_batches(lengths, 1024, 7, 0)
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    assert padded < 1.15 * sum(lengths)


def test_plan_by_token_budget_counts_what_it_trains():
    lengths = [random.Random(i).randint(4, 60) for i in range(200)]
    plan = plan_steps(lengths, batch_size=999, world_size=1, grad_accum=2, seed=0, epochs=2, batch_tokens=512)
    seen = [i for s in plan for m in s.micro_batches for i in m.indices]
    assert sorted(seen) == sorted(list(range(200)) * 2)
    assert sum(s.tokens for s in plan) == 2 * sum(lengths)  # tokens counted equal tokens trained
    assert all(len(s.micro_batches) <= 2 for s in plan)
