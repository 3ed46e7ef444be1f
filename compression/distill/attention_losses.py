"""Self-attention distillation losses, from the queries, keys and values of a layer.

- MiniLM-v2 (Wang et al. 2021) *relations*: for Q, K and V of a teacher layer and of a student
  layer, split the width into R relation heads and take softmax(X X^T / sqrt(d_r)) per head, a
  (length x length) distribution per position; the loss is KL(teacher || student) of those
  distributions, averaged over heads and over Q-Q, K-K, V-V. It needs no projection: the
  relation matrices have the same shape whatever the widths or head counts of the two models.
- TinyBERT (Jiao et al. 2020) *attention scores*: MSE between the pre-softmax scores
  Q K^T / sqrt(d_head) of mapped layers, per head (the models must have the same number of
  heads); masked keys count as 0, as in TinyBERT's code.

Every function returns a per-position loss reduced by `compression.losses.reduce_positions`
("sum" over query positions for the training loop, which divides by a step-wide count). The
queries, keys and values are taken from a model's forward pass by `QKVCapture`.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from compression.distill.losses import Reduction, reduce_positions
from core.errors import ConfigError

QKV = ("q", "k", "v")


def split_heads(x: Tensor, n_heads: int) -> Tensor:
    """(batch, len, width) -> (batch, heads, len, width / heads)."""
    b, n, width = x.shape
    if width % n_heads:
        raise ConfigError(f"width {width} is not divisible by {n_heads} relation heads; choose relation_heads "
                          f"that divides the hidden size of both models")
    return x.view(b, n, n_heads, width // n_heads).transpose(1, 2)


def _key_mask(mask: Tensor) -> Tensor:
    return mask.to(torch.bool)[:, None, None, :]  # (batch, 1, 1, keys)


def relation_log_probs(x: Tensor, mask: Tensor, n_heads: int) -> Tensor:
    """log softmax(X_h X_h^T / sqrt(d)) over the unmasked keys: (batch, heads, len, len), in float32."""
    h = split_heads(x.float(), n_heads)
    scores = h @ h.transpose(-1, -2) / math.sqrt(h.shape[-1])
    scores = scores.masked_fill(~_key_mask(mask), torch.finfo(scores.dtype).min)
    return F.log_softmax(scores, dim=-1)


def relation_kl(student: Tensor, teacher: Tensor, mask: Tensor, n_heads: int,
                reduction: Reduction = "mean") -> Tensor:
    """KL(teacher relation || student relation), summed over keys, averaged over relation heads,
    reduced over the query positions `mask` selects."""
    log_s = relation_log_probs(student, mask, n_heads)
    log_t = relation_log_probs(teacher, mask, n_heads)
    valid = _key_mask(mask)
    per_key = (log_t.exp() * (log_t - log_s)).masked_fill(~valid, 0.0)
    per_position = per_key.sum(dim=-1).mean(dim=1)  # (batch, len)
    return reduce_positions(per_position, mask, reduction)


def minilm_relation_loss(student_qkv: Sequence[Tensor], teacher_qkv: Sequence[Tensor], mask: Tensor,
                         n_heads: int, reduction: Reduction = "mean") -> Tensor:
    """MiniLM-v2: the mean of the Q-Q, K-K and V-V relation losses."""
    terms = [relation_kl(s, t, mask, n_heads, reduction) for s, t in zip(student_qkv, teacher_qkv)]
    return sum(terms) / len(terms)


def attention_scores(q: Tensor, k: Tensor, mask: Tensor, n_heads: int) -> Tensor:
    """Q K^T / sqrt(d_head) per head, with masked keys set to 0: (batch, heads, len, len), float32."""
    qh, kh = split_heads(q.float(), n_heads), split_heads(k.float(), n_heads)
    scores = qh @ kh.transpose(-1, -2) / math.sqrt(qh.shape[-1])
    return scores.masked_fill(~_key_mask(mask), 0.0)


def attention_score_mse(student_qk: Sequence[Tensor], teacher_qk: Sequence[Tensor], mask: Tensor,
                        n_heads: int, reduction: Reduction = "mean") -> Tensor:
    """TinyBERT's attention loss: squared error of the scores, averaged over heads and valid keys."""
    s = attention_scores(student_qk[0], student_qk[1], mask, n_heads)
    t = attention_scores(teacher_qk[0], teacher_qk[1], mask, n_heads)
    n_keys = mask.to(torch.float32).sum(dim=1).clamp(min=1)[:, None]  # (batch, 1)
    per_position = (s - t).pow(2).sum(dim=-1).mean(dim=1) / n_keys
    return reduce_positions(per_position, mask, reduction)


def self_attention(model: nn.Module, layer: int) -> nn.Module:
    """The self-attention block of encoder layer `layer` (1-based, as in hidden_states) of a BERT-family
    model: the module that owns the `query`, `key` and `value` projections."""
    base = getattr(model, "base_model", model)
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if layers is None or not 1 <= layer <= len(layers):
        raise ConfigError(f"cannot find encoder layer {layer} in {type(model).__name__}; attention losses "
                          f"support BERT-family encoders (encoder.layer[i].attention.self)")
    for module in layers[layer - 1].modules():
        if all(isinstance(getattr(module, n, None), nn.Linear) for n in ("query", "key", "value")):
            return module
    raise ConfigError(f"encoder layer {layer} of {type(model).__name__} has no query/key/value projections; "
                      f"use a hidden-state loss (hidden_mse) for this architecture")


class QKVCapture:
    """Forward hooks that keep the query, key and value projections of chosen layers.

        with QKVCapture(model, [6]) as cap:
            model(**batch)
        q, k, v = cap.get(6)
    """

    def __init__(self, model: nn.Module, layers: Iterable[int]):
        self.model, self.layers = model, sorted(set(layers))
        self.outputs: dict[tuple[int, str], Tensor] = {}
        self._handles: list = []

    def __enter__(self) -> "QKVCapture":
        self.outputs.clear()
        for layer in self.layers:
            attn = self_attention(self.model, layer)
            for name, module in zip(QKV, (attn.query, attn.key, attn.value)):
                self._handles.append(module.register_forward_hook(self._hook(layer, name)))
        return self

    def _hook(self, layer: int, name: str):
        def hook(_module, _inputs, output):
            self.outputs[(layer, name)] = output
        return hook

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def get(self, layer: int) -> tuple[Tensor, Tensor, Tensor]:
        return tuple(self.outputs[(layer, n)] for n in QKV)  # type: ignore[return-value]
