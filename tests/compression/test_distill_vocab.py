"""Vocabulary of a trimmed student vs its teacher: id mapping, checks, and MLM logits on the kept ids."""
from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForMaskedLM

from core.errors import ModelLoadError
from compression.distill.loop import DistillConfig, distill, evaluate_loss
from compression.distill.data import MlmMasker, tokenize_texts
from compression.distill.models import has_mlm_head, load_tokenizer, teacher_token_map
from compression.distill.objective import BatchBuilder, Teacher
from distill_fixtures import single_thread  # noqa: F401 (fixture)
from distill_fixtures import (bert_vocab, corpus, save_model, teacher_and_student, tokenizer_for,
                              trimmed_bert_vocab, wordpiece_tokenizer)

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def trimmed(tmp_path_factory):
    """A BERT teacher with an MLM head and a student whose vocabulary is a reordered subset of it."""
    tmp = tmp_path_factory.mktemp("trimmed")
    teacher = save_model(tmp / "teacher", wordpiece_tokenizer(bert_vocab()), layers=3, seed=1)
    student_vocab, kept = trimmed_bert_vocab()
    student = save_model(tmp / "student", wordpiece_tokenizer(student_vocab), layers=2, seed=2, kept_token_ids=kept)
    return teacher, student, kept


def test_has_mlm_head(tmp_path):
    for kind in ("bert", "xlmr"):
        t, s = teacher_and_student(tmp_path / kind, kind=kind, mlm_head=True)
        assert has_mlm_head(t) and has_mlm_head(s)
        t, s = teacher_and_student(tmp_path / f"{kind}-bare", kind=kind, mlm_head=False)
        assert not has_mlm_head(t) and not has_mlm_head(s)


def test_trimmed_student_maps_to_teacher_ids(trimmed):
    teacher, student, kept = trimmed
    s_tok, t_tok = load_tokenizer(student), load_tokenizer(teacher)
    mapping = teacher_token_map(student, teacher, s_tok, t_tok, corpus(8))
    assert mapping.tolist() == kept and len(s_tok) < len(t_tok)
    assert s_tok.convert_ids_to_tokens(list(range(len(s_tok)))) == t_tok.convert_ids_to_tokens(kept)


def test_teacher_sees_the_same_pieces_and_its_logits_are_cut_to_the_kept_ids(trimmed):
    teacher, student, kept = trimmed
    s_tok, t_tok = load_tokenizer(student), load_tokenizer(teacher)
    texts = corpus(6)
    mapping = teacher_token_map(student, teacher, s_tok, t_tok, texts)
    ids = tokenize_texts(s_tok, texts, 32, progress=False)
    masker = MlmMasker(vocab_size=len(s_tok), mask_token_id=s_tok.mask_token_id, special_ids=s_tok.all_special_ids,
                       probability=0.3, seed=0)
    batch = BatchBuilder(ids, pad_id=s_tok.pad_token_id, masker=masker, token_map=mapping,
                         device=torch.device("cpu")).build(list(range(6)), epoch=0)
    assert (batch.input_ids == s_tok.mask_token_id).any()
    for s_row, t_row in zip(batch.input_ids.tolist(), batch.teacher_input_ids.tolist()):
        assert s_tok.convert_ids_to_tokens(s_row) == t_tok.convert_ids_to_tokens(t_row)
    model = AutoModelForMaskedLM.from_pretrained(str(teacher))
    teacher_view = Teacher(model, "mlm_kl", token_map=mapping, vocab_size=len(s_tok), teacher_layers=[], cache=None)
    with torch.no_grad():
        full = model(input_ids=batch.teacher_input_ids, attention_mask=batch.attention_mask).logits
    cut = teacher_view.logits(batch)
    assert cut.shape[-1] == len(s_tok)
    torch.testing.assert_close(cut, full[..., kept])


def test_distilling_a_trimmed_student_lowers_its_loss(trimmed, tmp_path):
    teacher, student, kept = trimmed
    texts = corpus(48)
    cfg = DistillConfig(loss="mlm_kl", steps=16, batch_size=8, learning_rate=2e-3, warmup_ratio=0.0)
    before = evaluate_loss(student, teacher, texts[:16], cfg, device="cpu")
    report = distill(student, teacher, texts, cfg, tmp_path / "out", device="cpu", progress=False)
    after = evaluate_loss(tmp_path / "out", teacher, texts[:16], cfg, device="cpu")
    assert report.loss == "mlm_kl" and after < 0.95 * before
    assert json.loads((tmp_path / "out" / "kept_token_ids.json").read_text()) == kept


def test_a_trimmed_teacher_composes_through_the_root_vocabulary(tmp_path):
    root = bert_vocab()
    teacher_vocab = list(dict.fromkeys(root[:5] + list(reversed(root[5:]))))  # same tokens, other ids
    student_vocab, _ = trimmed_bert_vocab()
    teacher = save_model(tmp_path / "t", wordpiece_tokenizer(teacher_vocab), kept_token_ids=[root.index(t) for t in teacher_vocab])
    student = save_model(tmp_path / "s", wordpiece_tokenizer(student_vocab), kept_token_ids=[root.index(t) for t in student_vocab])
    mapping = teacher_token_map(student, teacher, load_tokenizer(student), load_tokenizer(teacher), corpus(4))
    assert mapping.tolist() == [teacher_vocab.index(t) for t in student_vocab]


def test_mismatched_vocabularies_are_refused_with_a_clear_error(trimmed, tmp_path):
    teacher, _, kept = trimmed
    student_vocab, _ = trimmed_bert_vocab()
    wrong = save_model(tmp_path / "wrong", wordpiece_tokenizer(student_vocab), kept_token_ids=list(reversed(kept)))
    with pytest.raises(ModelLoadError, match="not a vocabulary-trimmed descendant"):
        teacher_token_map(wrong, teacher, load_tokenizer(wrong), load_tokenizer(teacher), corpus(4))
    no_file = save_model(tmp_path / "nofile", wordpiece_tokenizer(student_vocab))
    with pytest.raises(ModelLoadError, match="kept_token_ids.json"):
        teacher_token_map(no_file, teacher, load_tokenizer(no_file), load_tokenizer(teacher), corpus(4))
    other_kind = save_model(tmp_path / "xlmr", tokenizer_for("xlmr"), kind="xlmr")
    with pytest.raises(ModelLoadError, match="different vocabularies"):
        distill(other_kind, teacher, corpus(8), DistillConfig(steps=1), tmp_path / "out", progress=False)
    untrimmed = save_model(tmp_path / "untrimmed", wordpiece_tokenizer(bert_vocab()))
    with pytest.raises(ModelLoadError, match="trimmed vocabulary"):
        teacher_token_map(untrimmed, wrong, load_tokenizer(untrimmed), load_tokenizer(wrong), corpus(4))
