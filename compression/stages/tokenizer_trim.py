"""Rewriting a fast tokenizer (tokenizer.json) to keep a subset of its ids.

Kept ids keep their relative order and are renumbered 0..n-1, so special tokens at the start of a
vocabulary (XLM-R's <s> <pad> </s> <unk>) keep their ids. Why segmentation of covered text is
unchanged, per model type:

- WordPiece is greedy longest-match-first: the parent's longest match is still present, and no
  longer piece can have appeared, so every step picks the same piece.
- Unigram picks the highest-scoring segmentation; the scores are kept, and the parent's best
  segmentation is still available, so it stays the best.
- BPE replays merges in rank order. Every intermediate token of a word's derivation is an
  ancestor of its final tokens, so the kept set is closed under "parts of the merge that made
  it" (see `bpe_closure`); merges whose parts or result are dropped are removed, and all others
  keep their order.
"""
from __future__ import annotations

import copy
from typing import Any

from core.errors import ModelLoadError

KINDS = ("WordPiece", "Unigram", "BPE")


def model_kind(tj: dict) -> str:
    kind = tj.get("model", {}).get("type")
    if kind not in KINDS:
        raise ModelLoadError(f"tokenizer model {kind!r} is not supported for vocabulary trimming; "
                             f"supported: {', '.join(KINDS)}")
    return kind


def model_vocab(tj: dict) -> dict[str, int]:
    """Piece -> id of the tokenizer model (not counting added tokens outside it)."""
    vocab = tj["model"]["vocab"]
    if model_kind(tj) == "Unigram":
        return {piece: i for i, (piece, _score) in enumerate(vocab)}
    return dict(vocab)


def added_tokens(tj: dict) -> dict[str, int]:
    return {t["content"]: t["id"] for t in tj.get("added_tokens", [])}


def _merge_pair(merge: Any) -> tuple[str, str]:
    return tuple(merge.split(" ", 1)) if isinstance(merge, str) else (merge[0], merge[1])  # type: ignore[return-value]


def _merge_result(tj: dict, a: str, b: str) -> str:
    prefix = tj["model"].get("continuing_subword_prefix") or ""
    return a + (b[len(prefix):] if prefix and b.startswith(prefix) else b)


def bpe_parts(tj: dict) -> dict[str, tuple[str, str]]:
    """Merged token -> the pair whose merge produced it (the lowest-ranked merge wins)."""
    parts: dict[str, tuple[str, str]] = {}
    for merge in tj["model"]["merges"]:
        a, b = _merge_pair(merge)
        parts.setdefault(_merge_result(tj, a, b), (a, b))
    return parts


def bpe_closure(token: str, parts: dict[str, tuple[str, str]]) -> set[str]:
    """The token and every token its merges are built from."""
    out, stack = set(), [token]
    while stack:
        t = stack.pop()
        if t in out:
            continue
        out.add(t)
        if t in parts:
            stack.extend(parts[t])
    return out


def bpe_alphabet(tj: dict) -> set[str]:
    """Initial symbols of a BPE model: pieces no merge produces (bytes for byte-level BPE)."""
    produced = set(bpe_parts(tj))
    return {t for t in model_vocab(tj) if t not in produced}


def _remap_post_processor(pp: dict | None, old_to_new: dict[int, int]) -> dict | None:
    if not pp:
        return pp
    pp = copy.deepcopy(pp)
    kind = pp.get("type")
    if kind == "Sequence":
        pp["processors"] = [_remap_post_processor(p, old_to_new) for p in pp["processors"]]
    elif kind == "TemplateProcessing":
        for spec in pp.get("special_tokens", {}).values():
            spec["ids"] = [_new_id(i, old_to_new, "post-processor") for i in spec["ids"]]
    elif kind in ("BertProcessing", "RobertaProcessing"):
        for key in ("sep", "cls"):
            if key in pp:
                pp[key] = [pp[key][0], _new_id(pp[key][1], old_to_new, "post-processor")]
    return pp


def _new_id(old: int, old_to_new: dict[int, int], where: str) -> int:
    if old not in old_to_new:
        raise ModelLoadError(f"{where} refers to token id {old}, which the trimmed vocabulary "
                             "does not keep (it should have been kept as a special token)")
    return old_to_new[old]


def trim_tokenizer_json(tj: dict, keep_ids: list[int]) -> tuple[dict, dict[int, int]]:
    """(new tokenizer.json, old id -> new id) keeping `keep_ids` (any order; duplicates ignored)."""
    keep = sorted(set(keep_ids))
    old_to_new = {old: new for new, old in enumerate(keep)}
    kind = model_kind(tj)
    new = copy.deepcopy({k: v for k, v in tj.items() if k != "model"})
    model = {k: v for k, v in tj["model"].items() if k not in ("vocab", "merges")}
    vocab = model_vocab(tj)
    kept_pieces = {piece: old_to_new[i] for piece, i in vocab.items() if i in old_to_new}
    if kind == "Unigram":
        scores = tj["model"]["vocab"]
        ordered = sorted((old_to_new[i], [piece, scores[i][1]]) for piece, i in vocab.items() if i in old_to_new)
        if [n for n, _ in ordered] != list(range(len(ordered))):
            raise ModelLoadError("Unigram pieces would not be contiguous after trimming "
                                 "(an added token sits inside the model vocabulary)")
        model["vocab"] = [entry for _, entry in ordered]
        if tj["model"].get("unk_id") is not None:
            model["unk_id"] = _new_id(tj["model"]["unk_id"], old_to_new, "Unigram unk_id")
    else:
        model["vocab"] = dict(sorted(kept_pieces.items(), key=lambda kv: kv[1]))
    if kind == "BPE":
        merges = []
        for merge in tj["model"]["merges"]:
            a, b = _merge_pair(merge)
            if a in kept_pieces and b in kept_pieces and _merge_result(tj, a, b) in kept_pieces:
                merges.append(merge)
        model["merges"] = merges
    new["model"] = model
    new["added_tokens"] = [{**t, "id": _new_id(t["id"], old_to_new, f"added token {t['content']!r}")}
                           for t in tj.get("added_tokens", [])]
    new["post_processor"] = _remap_post_processor(tj.get("post_processor"), old_to_new)
    if isinstance(new.get("padding"), dict) and "pad_id" in new["padding"]:
        new["padding"]["pad_id"] = _new_id(new["padding"]["pad_id"], old_to_new, "padding.pad_id")
    return new, old_to_new


def remap_token_ids(mapping: dict, old_to_new: dict[int, int], where: str) -> dict:
    """Remap every `*_token_id` (int or list of ints) of a config mapping."""
    out = dict(mapping)
    for key, value in mapping.items():
        if not key.endswith("_token_id") or value is None:
            continue
        if isinstance(value, list):
            out[key] = [_new_id(v, old_to_new, f"{where} {key}") for v in value]
        elif isinstance(value, int):
            out[key] = _new_id(value, old_to_new, f"{where} {key}")
    return out


def config_token_ids(mapping: dict) -> set[int]:
    ids: set[int] = set()
    for key, value in mapping.items():
        if key.endswith("_token_id") and value is not None:
            ids.update(value if isinstance(value, list) else [value])
    return {i for i in ids if isinstance(i, int)}
