"""Label alignment on the first sub-word, length-sorted batching and dynamic padding."""
from __future__ import annotations

import random

import torch

from models.batching import collate, eval_batches, train_batches
from harness.finetune.features import IGNORE_INDEX, encode_words
from tests.conftest import build_unigram_tokenizer, build_wordpiece_tokenizer


def test_first_subword_gets_the_label_and_the_rest_is_ignored():
    tok = build_wordpiece_tokenizer()
    # "dogs" is not in the vocabulary: it splits into "dog" + "##s"
    sentences = [["the", "dogs", "runs"]]
    enc = encode_words(tok, sentences, [["DET", "NOUN", "VERB"]], {"DET": 0, "NOUN": 1, "VERB": 2}, 32)
    pieces = tok.convert_ids_to_tokens(enc.input_ids[0])
    assert pieces == ["[CLS]", "the", "dog", "##s", "runs", "[SEP]"]
    assert enc.labels[0] == [IGNORE_INDEX, 0, 1, IGNORE_INDEX, 2, IGNORE_INDEX]
    assert enc.word_positions[0] == [1, 2, 4]
    assert enc.unplaced_words == 0


def test_unigram_words_align_and_truncated_words_are_counted():
    tok = build_unigram_tokenizer()
    words = ["mtoto", "anakula", "chakula", "kubwa"]
    label2id = {"N": 0, "V": 1, "A": 2}
    enc = encode_words(tok, [words], [["N", "V", "N", "A"]], label2id, 64)
    assert [enc.labels[0][p] for p in enc.word_positions[0]] == [0, 1, 0, 2]
    short = encode_words(tok, [words], [["N", "V", "N", "A"]], label2id, 4)  # <s> w1 w2 </s>
    assert short.unplaced_words == 2
    assert short.word_positions[0][2:] == [-1, -1]


def test_eval_batches_are_length_sorted_and_cover_everything():
    lengths = [5, 1, 9, 3, 3, 7]
    batches = eval_batches(lengths, 2)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(6))
    assert [lengths[i] for i in flat] == sorted(lengths)


def test_train_batches_are_seeded_and_group_lengths():
    lengths = [random.Random(1).randint(1, 100) for _ in range(200)]
    a = train_batches(lengths, 8, random.Random(3))
    b = train_batches(lengths, 8, random.Random(3))
    c = train_batches(lengths, 8, random.Random(4))
    assert a == b and a != c
    assert sorted(i for x in a for i in x) == list(range(200))
    spread = sum(max(lengths[i] for i in x) - min(lengths[i] for i in x) for x in a) / len(a)
    assert spread < 20  # grouped: far below the ~66 of random batches


def test_collate_pads_dynamically_and_masks():
    batch = collate([[5, 6, 7], [8]], pad_id=1, labels=[[0, 1, -100], [2]])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 1, 1]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[0, 1, -100], [2, -100, -100]]
    seq = collate([[5], [6, 7]], pad_id=0, labels=[3, 4])
    assert seq["labels"].dtype == torch.long and seq["labels"].tolist() == [3, 4]
