"""Shared fixtures: tiny models built from a config, with real fast tokenizers, and the real data."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# `precision: auto` resolves to fp32 in tests, whatever the processor, so that the exactness tests
# (resume, gradient accumulation, DDP) compare like with like; the bf16 paths are tested by forcing
# `precision: bf16` or by setting this variable in the test (tests/harness/test_precision.py).
os.environ.setdefault("HARNESS_CPU_BF16", "0")

WORDS = ("the a cat dog runs sleeps house red blue green big small il kelb tal ir raġel "
         "mtoto anakula chakula nyumba kubwa ndogo pes mačka dom veľký malý . , ! ?").split()


def real_data_dir() -> Path | None:
    """HARNESS_DATA_DIR, else ../shared/data beside the checkout, else None."""
    env = os.environ.get("HARNESS_DATA_DIR")
    for candidate in ([Path(env)] if env else []) + [SHARED_DATA]:
        if candidate.is_dir() and (candidate / "sib200").is_dir():
            return candidate
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = real_data_dir()
    if d is None:
        pytest.skip("real data not found: set HARNESS_DATA_DIR to a copy of the datasets "
                    "(or run `harness data fetch`)")
    return d


def build_wordpiece_tokenizer(words=WORDS):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = sorted({c for w in words for c in w})
    vocab = specials + list(words) + chars + [f"##{c}" for c in chars]
    vocab = list(dict.fromkeys(vocab))
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tok.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
                                   model_max_length=64)


def build_unigram_tokenizer(words=WORDS):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    chars = sorted({c for w in words for c in w})
    pieces = [(s, 0.0) for s in specials]
    pieces += [(f"\u2581{w}", -2.0 - i * 0.01) for i, w in enumerate(words)]
    pieces += [(c, -8.0) for c in chars] + [("\u2581", -5.0), ("<mask>", 0.0)]
    tok = Tokenizer(models.Unigram(pieces, unk_id=3, byte_fallback=False))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)])
    tok.decoder = decoders.Metaspace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>", cls_token="<s>",
                                   sep_token="</s>", mask_token="<mask>", model_max_length=64)


def save_tiny_model(path: Path, kind: str = "bert", layers: int = 2, hidden: int = 32,
                    seed: int = 0) -> Path:
    """A tiny encoder with a real fast tokenizer, saved as an ordinary HF directory."""
    import torch
    from transformers import BertConfig, BertModel, XLMRobertaConfig, XLMRobertaModel

    torch.manual_seed(seed)
    if kind == "bert":
        tok = build_wordpiece_tokenizer()
        cfg = BertConfig(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers,
                         num_attention_heads=2, intermediate_size=hidden * 2,
                         max_position_embeddings=64, pad_token_id=tok.pad_token_id)
        model = BertModel(cfg, add_pooling_layer=False)
    else:
        tok = build_unigram_tokenizer()
        cfg = XLMRobertaConfig(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers,
                               num_attention_heads=2, intermediate_size=hidden * 2,
                               max_position_embeddings=66, pad_token_id=tok.pad_token_id,
                               bos_token_id=0, eos_token_id=2)
        model = XLMRobertaModel(cfg, add_pooling_layer=False)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path


@pytest.fixture
def tiny_bert(tmp_path) -> Path:
    return save_tiny_model(tmp_path / "tiny-bert", "bert")


@pytest.fixture
def tiny_xlmr(tmp_path) -> Path:
    return save_tiny_model(tmp_path / "tiny-xlmr", "xlmr")


@pytest.fixture
def fake_hub(monkeypatch):
    """A loopback imitation of the Hugging Face Hub (tests/hub_helpers.py), as HF_ENDPOINT."""
    from tests.hub_helpers import FakeHub

    with FakeHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        yield hub


class _CollectedDuringTheSignal:
    def __del__(self):
        from core import interrupt
        interrupt.request_stop(15)


@pytest.fixture
def lost_sigterm():
    """A SIGTERM whose KeyboardInterrupt Python swallowed, as when the signal lands in a __del__
    ("Exception ignored in ..."): only core.interrupt's record of the request is left."""
    import gc

    from core import interrupt
    interrupt.clear()
    _CollectedDuringTheSignal()
    gc.collect()
    yield
    interrupt.clear()
