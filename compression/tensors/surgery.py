"""Structured surgery on a checkpoint's tensors: keep layers, select rows along named axes, or
project the hidden axis. Every stage is a `Surgery` plus a config change.

A hidden-axis projection P (H x h, orthonormal columns) maps the residual stream x to P^T x: a
weight that reads the stream becomes W P, one that writes it P^T W, a bias or LayerNorm shift
P^T b. A LayerNorm gain is a diagonal map; its best diagonal approximation in the new basis is
diag(P^T diag(g) P) = (P * P)^T g. With P a column selection all of this reduces to slicing, so
truncation and importance selection are the special case P = I[:, kept].
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from compression.tensors.layout import rename_layer, tensor_axes


@dataclass
class Surgery:
    layers: list[int] | None = None                  # parent layer indices, in their new order
    vocab: torch.Tensor | None = None                # kept parent ids; new id = position
    ffn: dict[int, torch.Tensor] | None = None       # parent layer -> kept neurons
    qk: dict[int, torch.Tensor] | None = None        # parent layer -> kept query/key dimensions
    vo: dict[int, torch.Tensor] | None = None        # parent layer -> kept value/output dimensions
    hidden_index: torch.Tensor | None = None         # kept hidden dimensions, or
    hidden_proj: torch.Tensor | None = None          # an H x h projection


def _select(t: torch.Tensor, dim: int, index: torch.Tensor) -> torch.Tensor:
    return t.index_select(dim, index.to(device=t.device, dtype=torch.long))


def _project(t: torch.Tensor, dim: int, proj: torch.Tensor, ln_gain: bool) -> torch.Tensor:
    work = t.float()
    p = proj.to(device=t.device, dtype=torch.float32)
    if ln_gain:
        out = (p * p).T @ work
    else:
        out = torch.tensordot(work, p, dims=([dim], [0])).movedim(-1, dim)
    return out.to(t.dtype)


def apply_surgery(state: dict[str, torch.Tensor], s: Surgery) -> dict[str, torch.Tensor]:
    new_index = {old: new for new, old in enumerate(s.layers)} if s.layers is not None else None
    out: dict[str, torch.Tensor] = {}
    for name, t in state.items():
        ta = tensor_axes(name)
        if ta.layer is not None and new_index is not None:
            if ta.layer not in new_index:
                continue
            name = rename_layer(name, new_index[ta.layer])
        for dim, axis in enumerate(ta.axes):
            if axis == "vocab" and s.vocab is not None:
                t = _select(t, dim, s.vocab)
            elif axis in ("ffn", "qk", "vo"):
                per_layer = getattr(s, axis)
                if per_layer is not None:
                    t = _select(t, dim, per_layer[ta.layer])
            elif axis in ("hidden", "hidden_ln"):
                if s.hidden_index is not None:
                    t = _select(t, dim, s.hidden_index)
                elif s.hidden_proj is not None:
                    t = _project(t, dim, s.hidden_proj, ln_gain=axis == "hidden_ln" and name.endswith(".weight"))
        out[name] = t
    return out


def head_dims(heads: torch.Tensor, head_dim: int, dims_per_head: torch.Tensor | None = None) -> torch.Tensor:
    """Flat attention indices of the kept `heads` (each of width head_dim), keeping
    `dims_per_head` (per kept head, a [heads, d] index tensor) or all of each head's dimensions."""
    heads = heads.long()
    if dims_per_head is None:
        dims_per_head = torch.arange(head_dim).expand(len(heads), head_dim)
    return (heads[:, None] * head_dim + dims_per_head.long()).reshape(-1)
