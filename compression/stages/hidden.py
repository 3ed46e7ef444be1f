"""Hidden-size reduction: a narrower model initialised from the parent.

The residual width H becomes `size`; attention keeps `heads` heads (the parent's by default)
of head_dim = size / heads, since HF BERT derives head_dim from hidden_size / num_attention_heads
and so `size` must be a multiple of `heads`. Initialisations:

- truncate (the paper): the first `size` hidden dimensions of every tensor; the first `heads`
  heads and the first head_dim dimensions of each (per head, so no new head straddles two old
  ones). Truncating to the full width reproduces the parent exactly.
- svd: the hidden space is projected onto the top right-singular vectors of the word-embedding
  matrix (eigenvectors of E^T E), applied consistently to every tensor, bias and LayerNorm (see
  surgery.py); heads and head dimensions as for truncate.
- importance: one pass of first-order Taylor scores over calibration text (importance.py) picks
  the hidden dimensions, the heads of each layer, and each kept head's query/key and value/output
  dimensions. One backward pass per batch scores everything at once: no iterative pruning, so
  its cost is a few calibration batches, not a retraining loop.

When head_dim shrinks from d to d', query weights are scaled by sqrt(d'/d) so the kept
dimensions keep the parent's attention temperature (HF scales scores by 1/sqrt(head_dim)).
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

from compression.distill.models import write_hidden_map
from compression.schema import HiddenStage
from compression.tensors.importance import axis_terms, calibrate
from compression.tensors.modelio import load_state, save_model
from compression.tensors.shapes import ModelShape
from compression.tensors.surgery import Surgery, apply_surgery, head_dims
from core.errors import ConfigError

# bump when a change of this module changes what it outputs: it is part of every cache key
VERSION = 2  # 2: writes hidden_map.safetensors, which starts the next distillation's projection


def svd_projection(state: dict[str, torch.Tensor], size: int) -> tuple[torch.Tensor, float]:
    """(H x size projection onto the embedding matrix's top right-singular vectors, energy kept)."""
    emb = next(t for n, t in state.items() if n.endswith("embeddings.word_embeddings.weight")).float()
    gram = emb.T @ emb
    eigvals, eigvecs = torch.linalg.eigh(gram.double())
    order = torch.argsort(eigvals, descending=True)
    top = order[:size]
    energy = float(eigvals[top].clamp(min=0).sum() / eigvals.clamp(min=0).sum())
    return eigvecs[:, top].float(), energy


def importance_selection(parent_dir: Path, cfg: HiddenStage, ctx, shape: ModelShape, heads: int,
                         head_dim: int) -> tuple[torch.Tensor, dict, dict, dict, dict]:
    n_heads, old_hd = shape.heads, shape.head_dim

    def collect(model):
        out: dict[str, torch.Tensor] = {}
        out["hidden"] = sum(axis_terms(model, "hidden").values())
        qk, vo = axis_terms(model, "qk"), axis_terms(model, "vo")
        for layer in qk:
            out[f"qk.{layer}"], out[f"vo.{layer}"] = qk[layer], vo[layer]
            out[f"head.{layer}"] = (qk[layer] + vo[layer]).view(n_heads, old_hd).sum(dim=1)
        return out

    scores, facts = calibrate(parent_dir, cfg, ctx, collect=collect, trainable=lambda n: True,
                              desc="hidden: Taylor importance")
    hidden_index = torch.sort(torch.topk(scores["hidden"], cfg.size).indices).values
    qk_keep, vo_keep, kept_heads = {}, {}, {}
    for layer in range(shape.layers):
        kept = torch.sort(torch.topk(scores[f"head.{layer}"], heads).indices).values
        kept_heads[layer] = kept.tolist()
        for name, out in (("qk", qk_keep), ("vo", vo_keep)):
            per_head = scores[f"{name}.{layer}"].view(n_heads, old_hd)[kept]
            dims = torch.sort(torch.topk(per_head, head_dim, dim=1).indices, dim=1).values
            out[layer] = head_dims(kept, old_hd, dims)
    return hidden_index, qk_keep, vo_keep, kept_heads, facts


def apply(parent_dir: Path, cfg: HiddenStage, ctx, out_dir: Path) -> dict:
    config, state = load_state(parent_dir)
    shape = ModelShape.from_config(config)
    check(shape, cfg)
    heads = cfg.heads or shape.heads
    head_dim = cfg.size // heads
    report: dict = {"parent_hidden": shape.hidden, "parent_heads": shape.heads, "heads": heads,
                    "head_dim": head_dim}
    surgery = Surgery()
    if cfg.init == "importance":
        (surgery.hidden_index, surgery.qk, surgery.vo, kept_heads,
         facts) = importance_selection(parent_dir, cfg, ctx, shape, heads, head_dim)
        report.update(facts)
        report["kept_heads"] = kept_heads
    else:
        first = head_dims(torch.arange(heads), shape.head_dim,
                          torch.arange(head_dim).expand(heads, head_dim))
        surgery.qk = surgery.vo = {layer: first for layer in range(shape.layers)}
        if cfg.init == "truncate":
            surgery.hidden_index = torch.arange(cfg.size)
        else:
            surgery.hidden_proj, energy = svd_projection(state, cfg.size)
            report["svd_energy_kept"] = round(energy, 6)
    new_state = apply_surgery(state, surgery)
    if head_dim != shape.head_dim:
        scale = math.sqrt(head_dim / shape.head_dim)
        for name in new_state:
            if ".attention.self.query." in name:
                new_state[name] = new_state[name] * scale
    config.hidden_size = cfg.size
    config.num_attention_heads = heads
    save_model(out_dir, config, new_state, parent_dir=Path(parent_dir))
    write_hidden_map(out_dir, parent_from_new(surgery, shape.hidden, cfg.size))
    return report


def parent_from_new(surgery: Surgery, parent_width: int, width: int) -> torch.Tensor:
    """The parent x new hidden-width matrix M with parent hidden state ~= new hidden state @ M.T:
    the SVD projection itself, or a one-hot column per kept dimension. Without it the distillation
    after this stage would start its projection as if the first dimensions had been kept, which is
    right for truncate only, and far off for svd and importance (a rotated or reordered space)."""
    if surgery.hidden_proj is not None:
        return surgery.hidden_proj.float()
    m = torch.zeros(parent_width, width)
    m[surgery.hidden_index.long(), torch.arange(width)] = 1.0
    return m


def check(shape: ModelShape, cfg: HiddenStage) -> None:
    heads = cfg.heads or shape.heads
    if cfg.size > shape.hidden:
        raise ConfigError(f"hidden: size {cfg.size} is larger than the parent's hidden size {shape.hidden}")
    if heads > shape.heads:
        raise ConfigError(f"hidden: heads {heads} is more than the parent's {shape.heads}")
    if cfg.size % heads:
        ok = [h for h in range(1, shape.heads + 1) if cfg.size % h == 0 and cfg.size // h <= shape.head_dim]
        raise ConfigError(f"hidden: size {cfg.size} is not a multiple of {heads} heads (HF BERT needs "
                          f"head_dim = hidden / heads); set heads to one of {ok} or pick another size")
    if cfg.size // heads > shape.head_dim:
        raise ConfigError(f"hidden: size {cfg.size} with {heads} heads gives head_dim {cfg.size // heads}, "
                          f"wider than the parent's {shape.head_dim}; keep more heads")


def predict_shape(shape: ModelShape, cfg: HiddenStage) -> ModelShape:
    return shape.with_(hidden=cfg.size, heads=cfg.heads or shape.heads)
