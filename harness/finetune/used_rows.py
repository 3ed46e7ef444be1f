"""Fine-tune only the embedding rows a run can index.

A multilingual teacher's input embedding is most of its parameters (multilingual-e5-small: 96M of
118M, 250k pieces), yet one language's task data indexes a few thousand rows. Full fine-tuning
still pays for every row on every step: a dense (vocab x hidden) gradient is allocated, clipped and
fed to AdamW. Swapping the embedding for the rows that the run's token ids can reach (train, dev,
test and any unlabeled text, plus the special tokens) computes the same thing:

- a row no input indexes has a zero gradient on every step, so AdamW's moments stay zero and its
  only change is the decoupled weight decay, weight *= 1 - lr * weight_decay per step; `restore`
  applies that product to those rows, so the restored model equals the full-matrix run's;
- every reachable row gets the same gradient, moments and decay as before.

Only the float summation order of the gradient norm (clipping) differs, by rounding. The swap is
therefore not part of the protocol hash; it is used where the reachable rows are at most
`MAX_SHARE` of the matrix and the embedding is trained at all.
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn
from torch.nn import functional as F

MAX_SHARE = 0.5  # above this share of reachable rows the swap saves too little to bother


class UsedRowsEmbedding(nn.Module):
    """The rows `rows` of an nn.Embedding, indexed by the original ids."""

    def __init__(self, full: nn.Embedding, rows: torch.Tensor):
        super().__init__()
        self.num_embeddings, self.embedding_dim = full.num_embeddings, full.embedding_dim
        self.weight = nn.Parameter(full.weight.detach()[rows].clone(), requires_grad=full.weight.requires_grad)
        index = torch.full((full.num_embeddings,), -1, dtype=torch.long, device=rows.device)
        index[rows] = torch.arange(len(rows), device=rows.device)
        self.register_buffer("index", index, persistent=False)
        self.padding_idx = int(index[full.padding_idx]) if full.padding_idx is not None else None

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(self.index[input_ids], self.weight, self.padding_idx)


class UsedRows:
    """The swap on one model: `track` after each optimizer step, `restore` before the model leaves
    the run. `decay` is the product of (1 - lr * weight_decay) over the steps so far."""

    def __init__(self, base: nn.Module, full: nn.Embedding, rows: torch.Tensor):
        self.base, self.full, self.rows = base, full, rows
        self.module = UsedRowsEmbedding(full, rows)
        self.decay = 1.0
        base.set_input_embeddings(self.module)

    @property
    def share(self) -> tuple[int, int]:
        return len(self.rows), self.full.num_embeddings

    def track(self, optimizer: torch.optim.Optimizer) -> None:
        for group in optimizer.param_groups:
            if any(p is self.module.weight for p in group["params"]):
                self.decay *= 1.0 - group["lr"] * group["weight_decay"]
                return

    @torch.no_grad()
    def restore(self, decay: float) -> None:
        """Put the full embedding back: trained rows written in, the others decayed by `decay` (the
        product at the checkpoint being restored)."""
        weight = self.full.weight
        weight.mul_(decay)
        weight[self.rows] = self.module.weight.detach().to(weight.dtype)
        self.base.set_input_embeddings(self.full)


def swap_in_used_rows(model: nn.Module, id_lists: Iterable[Iterable[list[int]]],
                      extra_ids: Iterable[int] = ()) -> UsedRows | None:
    """Swap `model`'s input embedding for the rows its inputs can index, or None where that does not
    pay (a small or frozen embedding, or one whose options the swap does not reproduce)."""
    base = model.base_model if hasattr(model, "base_model") else model
    full = base.get_input_embeddings()
    if (not isinstance(full, nn.Embedding) or not full.weight.requires_grad or full.max_norm is not None
            or full.scale_grad_by_freq or full.sparse):
        return None
    used = set(int(i) for i in extra_ids if i is not None)
    for ids in id_lists:
        for seq in ids:
            used.update(seq)
    if full.padding_idx is not None:
        used.add(full.padding_idx)
    if len(used) > MAX_SHARE * full.num_embeddings:
        return None
    rows = torch.tensor(sorted(used), dtype=torch.long, device=full.weight.device)
    return UsedRows(base, full, rows)
