"""Distillation and MLM losses, all masking padded positions.

Every loss is a per-position loss reduced over the positions a mask selects:

- ``reduction="mean"``: the average over selected positions (what you log and what a single batch
  trains on);
- ``reduction="sum"``: the sum over selected positions, so that a caller can divide by a count taken
  over several micro-batches or processes and get exactly the loss of the whole batch (gradient
  accumulation and DDP then do not change the objective with how the batch was split).

Per-position losses: MLM cross-entropy (labelled positions only); logit MSE averaged over the
vocabulary; KL(teacher || student) with temperature T, summed over the vocabulary and scaled by
T^2 (Hinton et al.), so its gradients keep their size as T changes; hidden-state MSE averaged over
the hidden dimension; hidden-state cosine distance 1 - cos. The paper's combination is
``alpha * MLM + (1 - alpha) * logit loss`` with alpha = 0.5.

Everything is computed in float32, whatever the dtype of the inputs (bf16 autocast on GPU).
"""
from __future__ import annotations

from typing import Literal, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.constants import IGNORE_INDEX  # label of positions that carry no MLM loss (not masked, or padding)
from core.errors import ConfigError

Reduction = Literal["mean", "sum"]
PAPER_ALPHA = 0.5


def reduce_positions(per_position: Tensor, mask: Tensor, reduction: Reduction = "mean") -> Tensor:
    """Sum or average `per_position` (batch, seq) over the positions where `mask` is true/non-zero."""
    mask = mask.to(torch.bool)
    total = per_position.float().masked_fill(~mask, 0.0).sum()
    if reduction == "sum":
        return total
    if reduction == "mean":
        return total / mask.sum().clamp(min=1)
    raise ValueError(f"reduction must be 'mean' or 'sum', not {reduction!r}")


def mlm_loss(logits: Tensor, labels: Tensor, reduction: Reduction = "mean") -> Tensor:
    """Cross-entropy of MLM `logits` (batch, seq, vocab) at positions whose label is not -100."""
    per_position = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten().clamp(min=0),
                                   reduction="none").view(labels.shape)
    return reduce_positions(per_position, labels != IGNORE_INDEX, reduction)


def logit_mse(student_logits: Tensor, teacher_logits: Tensor, mask: Tensor,
              reduction: Reduction = "mean") -> Tensor:
    """MSE between MLM logits, averaged over the vocabulary, at the positions `mask` selects."""
    per_position = (student_logits.float() - teacher_logits.float()).pow(2).mean(dim=-1)
    return reduce_positions(per_position, mask, reduction)


def logit_kl(student_logits: Tensor, teacher_logits: Tensor, mask: Tensor, temperature: float = 1.0,
             reduction: Reduction = "mean") -> Tensor:
    """T^2 * KL(softmax(teacher/T) || softmax(student/T)), summed over the vocabulary per position."""
    if temperature <= 0:
        raise ConfigError(f"distillation temperature must be > 0, got {temperature}")
    log_p_student = F.log_softmax(student_logits.float() / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    per_position = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=-1)
    return reduce_positions(per_position * temperature ** 2, mask, reduction)


def combine_mlm_and_logit_loss(mlm: Tensor, logit: Tensor, alpha: float = PAPER_ALPHA) -> Tensor:
    """The paper's objective: alpha * MLM loss + (1 - alpha) * logit loss."""
    return alpha * mlm + (1.0 - alpha) * logit


def hidden_mse(student_hidden: Tensor, teacher_hidden: Tensor, mask: Tensor,
               reduction: Reduction = "mean") -> Tensor:
    """MSE between hidden states (batch, seq, width), averaged over the width, masked positions only."""
    per_position = (student_hidden.float() - teacher_hidden.float()).pow(2).mean(dim=-1)
    return reduce_positions(per_position, mask, reduction)


def hidden_cosine(student_hidden: Tensor, teacher_hidden: Tensor, mask: Tensor,
                  reduction: Reduction = "mean") -> Tensor:
    """Cosine distance 1 - cos(student, teacher) per position, masked positions only."""
    per_position = 1.0 - F.cosine_similarity(student_hidden.float(), teacher_hidden.float(), dim=-1,
                                             eps=1e-8)
    return reduce_positions(per_position, mask, reduction)


HIDDEN_LOSSES = {"mse": hidden_mse, "cosine": hidden_cosine}


# -- layer maps: student layer -> teacher layer, counted as in `output_hidden_states` (0 = embeddings) --

def last_layer_map(n_student: int, n_teacher: int) -> dict[int, int]:
    """Match only the last layer of each model."""
    return {n_student: n_teacher}


def uniform_layer_map(n_student: int, n_teacher: int) -> dict[int, int]:
    """Student layer i (1..n) matches teacher layer round(i * n_teacher / n_student): evenly spread,
    always ending last-to-last (6 of 12: 1->2, 2->4, ..., 6->12)."""
    return {i: round(i * n_teacher / n_student) for i in range(1, n_student + 1)}


LayerMapSpec = Literal["last", "uniform"] | Mapping[int, int]


def make_layer_map(spec: LayerMapSpec, n_student: int, n_teacher: int) -> dict[int, int]:
    """A layer map from its name ('last', 'uniform') or an explicit {student: teacher} mapping,
    checked against the depths of both models."""
    if spec == "last":
        layer_map = last_layer_map(n_student, n_teacher)
    elif spec == "uniform":
        layer_map = uniform_layer_map(n_student, n_teacher)
    elif isinstance(spec, Mapping):
        layer_map = {int(s): int(t) for s, t in spec.items()}
    else:
        raise ConfigError(f"layer_map must be 'last', 'uniform' or a {{student: teacher}} mapping, "
                          f"got {spec!r}")
    for s, t in layer_map.items():
        if not (0 <= s <= n_student and 0 <= t <= n_teacher):
            raise ConfigError(f"layer_map entry {s}->{t} is out of range: the student has {n_student} "
                              f"layers and the teacher {n_teacher} (0 = embeddings)")
    if not layer_map:
        raise ConfigError("layer_map is empty; give at least one student->teacher layer pair")
    return dict(sorted(layer_map.items()))


class HiddenStateLoss(nn.Module):
    """MSE or cosine loss between mapped hidden states, averaged over the mapped layers.

    When the widths differ, each mapped student layer gets a trainable linear projection to the
    teacher's width (TinyBERT's W_h, one per layer). It starts from `start` (teacher x student
    width, the hidden stage's map: teacher state ~= student state @ start.T) when given, else as
    the "truncation" embedding: student dimension j maps to teacher dimension j, which is the map
    of a student whose hidden size was cut by keeping the teacher's first dimensions. Train its
    parameters together with the student's; they are not part of the distilled model.
    """

    def __init__(self, layer_map: Mapping[int, int], student_width: int, teacher_width: int,
                 kind: Literal["mse", "cosine"] = "mse", start: Tensor | None = None):
        super().__init__()
        if kind not in HIDDEN_LOSSES:
            raise ConfigError(f"hidden-state loss must be one of {sorted(HIDDEN_LOSSES)}, got {kind!r}")
        self.layer_map = dict(layer_map)
        self.kind = kind
        self.projections = nn.ModuleDict()
        if start is not None and tuple(start.shape) != (teacher_width, student_width):
            raise ConfigError(f"hidden-state projection start: shape {tuple(start.shape)}, expected "
                              f"(teacher width {teacher_width}, student width {student_width})")
        if student_width != teacher_width:
            for s in self.layer_map:
                proj = nn.Linear(student_width, teacher_width)
                with torch.no_grad():
                    proj.weight.zero_()
                    if start is not None:
                        proj.weight.copy_(start)
                    else:
                        k = min(student_width, teacher_width)
                        proj.weight[:k, :k] = torch.eye(k)
                    proj.bias.zero_()
                self.projections[str(s)] = proj

    def project(self, student_layer: int, hidden: Tensor) -> Tensor:
        proj = self.projections[str(student_layer)] if str(student_layer) in self.projections else None
        return hidden if proj is None else proj(hidden)

    def forward(self, student_hidden_states: tuple[Tensor, ...] | list[Tensor],
                teacher_hidden_states: Mapping[int, Tensor] | tuple[Tensor, ...] | list[Tensor],
                mask: Tensor, reduction: Reduction = "mean") -> Tensor:
        """`student_hidden_states` as a model returns them (index 0 = embeddings); the teacher's as a
        tuple of the same kind or a {teacher layer: tensor} mapping holding at least the mapped layers."""
        loss_fn = HIDDEN_LOSSES[self.kind]
        total = student_hidden_states[0].new_zeros((), dtype=torch.float32)
        for s, t in self.layer_map.items():
            projected = self.project(s, student_hidden_states[s].float())
            total = total + loss_fn(projected, teacher_hidden_states[t], mask, reduction)
        return total / len(self.layer_map)
