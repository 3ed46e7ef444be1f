"""Honest parameter accounting (after TextPruner's summary()): shared tensors are counted once.

Counts are for the encoder (`model.base_model`) without a pooler or any task head, since those are
what compression changes and what every model in a comparison has in common:

- embedding: the input embedding matrices (word, position, token type) and the embedding
  LayerNorm; an untied MLM decoder would be a separate matter (it is a head, so it is not counted);
- non_embedding: everything else in the encoder (attention, FFN, LayerNorms of the layers).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from torch import nn

EXCLUDED_SUBMODULES = ("pooler",)


@dataclass(frozen=True)
class ParamCounts:
    total: int
    embedding: int
    non_embedding: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _unique_params(module: nn.Module, skip_prefixes: tuple[str, ...] = ()) -> dict[int, int]:
    """data_ptr -> numel of every distinct parameter tensor under `module`."""
    seen: dict[int, int] = {}
    for name, p in module.named_parameters(remove_duplicate=False):
        if any(name == s or name.startswith(s + ".") for s in skip_prefixes):
            continue
        seen.setdefault(p.data_ptr(), p.numel())
    return seen


def encoder_of(model: nn.Module) -> nn.Module:
    """The bare encoder of a Hugging Face model (itself when it already is one)."""
    base = getattr(model, "base_model", None)
    return base if isinstance(base, nn.Module) else model


def count_parameters(model: nn.Module) -> ParamCounts:
    enc = encoder_of(model)
    params = _unique_params(enc, skip_prefixes=EXCLUDED_SUBMODULES)
    emb_module = getattr(enc, "embeddings", None)
    emb = _unique_params(emb_module) if isinstance(emb_module, nn.Module) else {}
    total = sum(params.values())
    embedding = sum(n for ptr, n in emb.items() if ptr in params)
    return ParamCounts(total=total, embedding=embedding, non_embedding=total - embedding)
