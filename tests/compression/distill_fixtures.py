"""Tiny teachers and students for the distillation tests: BERT (WordPiece) and XLM-R-style (Unigram)
encoders, with or without an MLM head, with fast tokenizers built here, saved as ordinary HF
directories. A vocabulary-trimmed student gets a tokenizer over a subset of the teacher's tokens and
a kept_token_ids.json (student id -> teacher id)."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import (BertConfig, BertForMaskedLM, BertModel, PreTrainedTokenizerFast, XLMRobertaConfig,
                          XLMRobertaForMaskedLM, XLMRobertaModel)

WORDS = ("the a cat dog runs sleeps house red blue green big small il kelb tal ir raġel mtoto anakula "
         "chakula nyumba kubwa ndogo pes mačka dom veľký malý . , ! ?").split()
BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
XLMR_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]


def corpus(n: int = 64, seed: int = 0, min_words: int = 3, max_words: int = 14) -> list[str]:
    """Deterministic sentences over WORDS with a little structure (adjective before noun) to learn."""
    rng = random.Random(seed)
    nouns, adjs = ["cat", "dog", "house", "kelb", "mtoto", "nyumba", "pes", "mačka", "dom"], \
        ["red", "blue", "green", "big", "small", "kubwa", "ndogo", "veľký", "malý"]
    out = []
    for _ in range(n):
        words = []
        while len(words) < rng.randint(min_words, max_words):
            words += ["the", rng.choice(adjs), rng.choice(nouns), rng.choice(["runs", "sleeps", "anakula"])]
        out.append(" ".join(words) + rng.choice([" .", " !", " ?"]))
    return out


def _chars(words) -> list[str]:
    return sorted({c for w in words for c in w})


def bert_vocab(words=WORDS) -> list[str]:
    chars = _chars(words)
    return list(dict.fromkeys(BERT_SPECIALS + list(words) + chars + [f"##{c}" for c in chars]))


def wordpiece_tokenizer(vocab: list[str]) -> PreTrainedTokenizerFast:
    """A BERT-style fast tokenizer over exactly `vocab` (ids = positions in the list)."""
    ids = {t: i for i, t in enumerate(vocab)}
    tok = Tokenizer(models.WordPiece(ids, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])])
    tok.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=64)


def xlmr_pieces(words=WORDS) -> list[tuple[str, float]]:
    pieces = [(s, 0.0) for s in XLMR_SPECIALS]
    pieces += [(f"\u2581{w}", -2.0 - i * 0.01) for i, w in enumerate(words)]
    pieces += [(c, -8.0) for c in _chars(words)] + [("\u2581", -5.0), ("<mask>", 0.0)]
    return pieces


def unigram_tokenizer(pieces: list[tuple[str, float]]) -> PreTrainedTokenizerFast:
    """An XLM-R-style (SentencePiece Unigram, Metaspace, <s> ... </s>) fast tokenizer over `pieces`."""
    ids = {p: i for i, (p, _) in enumerate(pieces)}
    tok = Tokenizer(models.Unigram(pieces, unk_id=ids["<unk>"], byte_fallback=False))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", ids["<s>"]), ("</s>", ids["</s>"])])
    tok.decoder = decoders.Metaspace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>", cls_token="<s>", sep_token="</s>", mask_token="<mask>",
                                   model_max_length=64)


def save_model(path: Path, tokenizer: PreTrainedTokenizerFast, *, kind: str = "bert", mlm_head: bool = True,
               layers: int = 2, hidden: int = 32, dropout: float = 0.0, seed: int = 0,
               kept_token_ids: list[int] | None = None) -> Path:
    """A random-init tiny encoder with `tokenizer`, saved (safetensors) as an ordinary HF directory."""
    torch.manual_seed(seed)
    common = dict(vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                  intermediate_size=hidden * 2, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
                  pad_token_id=tokenizer.pad_token_id)
    if kind == "bert":
        cfg = BertConfig(max_position_embeddings=64, **common)
        model = BertForMaskedLM(cfg) if mlm_head else BertModel(cfg)
    else:
        cfg = XLMRobertaConfig(max_position_embeddings=66, bos_token_id=0, eos_token_id=2, **common)
        model = XLMRobertaForMaskedLM(cfg) if mlm_head else XLMRobertaModel(cfg)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(path), safe_serialization=True)
    tokenizer.save_pretrained(str(path))
    if kept_token_ids is not None:
        (path / "kept_token_ids.json").write_text(json.dumps(kept_token_ids))
    return path


def tokenizer_for(kind: str) -> PreTrainedTokenizerFast:
    return wordpiece_tokenizer(bert_vocab()) if kind == "bert" else unigram_tokenizer(xlmr_pieces())


def teacher_and_student(tmp: Path, *, kind: str = "bert", mlm_head: bool = True, student_hidden: int = 32,
                        student_dropout: float = 0.0) -> tuple[Path, Path]:
    """A 3-layer teacher and a 2-layer student sharing one tokenizer."""
    tok = tokenizer_for(kind)
    teacher = save_model(tmp / f"teacher-{kind}", tok, kind=kind, mlm_head=mlm_head, layers=3, seed=1)
    student = save_model(tmp / f"student-{kind}", tok, kind=kind, mlm_head=mlm_head, layers=2,
                         hidden=student_hidden, dropout=student_dropout, seed=2)
    return teacher, student


def trimmed_bert_vocab() -> tuple[list[str], list[int]]:
    """A student vocabulary: the teacher's specials, characters and every other word, in a new order;
    and kept_token_ids (student id -> teacher id)."""
    teacher_vocab = bert_vocab()
    kept_words = WORDS[::2]
    chars = _chars(WORDS)
    student_vocab = list(dict.fromkeys(BERT_SPECIALS + list(reversed(kept_words)) + chars + [f"##{c}" for c in chars]))
    return student_vocab, [teacher_vocab.index(t) for t in student_vocab]


def write_texts(path: Path, texts: list[str]) -> Path:
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def single_thread():
    """One torch thread: the tiny matrices here gain nothing from two, and on a busy 2-core machine OpenMP
    threads waiting on each other made these tests over ten times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
