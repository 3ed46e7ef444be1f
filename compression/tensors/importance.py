"""First-order Taylor importance of structured units, from one pass over calibration text.

For a unit u (an FFN neuron, an attention dimension or head, a hidden dimension) with weights
W_u, removing it changes the loss by about -sum(W_u * dL/dW_u). Per batch we take the absolute
value of that sum and accumulate it over batches (as TextPruner does), so a unit that matters
in either direction scores high. One backward pass per batch gives the scores of every unit kind
at once, which is what makes importance-based hidden-size selection cheap here: no iterative
pruning, no re-scoring.

The loss is the masked-LM loss when the model has an MLM head. An encoder without one (e5) gets a
self-distillation loss: the MSE between its last hidden states on masked text and its own
(no-grad) hidden states on the clean text. Comparing the model with itself on the *same* input
would give zero gradients; masking makes the loss measure what each unit contributes to
reconstructing the clean representation.
"""
from __future__ import annotations

import random
from collections import defaultdict
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from compression.tensors.layout import tensor_axes
from core.errors import ConfigError
from core.progress import bar
from models.params import encoder_of

MASK_PROBABILITY = 0.15


def sample_lines(texts: list[str], n: int, seed: int) -> list[str]:
    """Up to n non-empty lines, a seeded sample in their original order."""
    lines = [t for t in texts if t.strip()]
    if len(lines) <= n:
        return lines
    keep = sorted(random.Random(seed).sample(range(len(lines)), n))
    return [lines[i] for i in keep]


def make_batches(tokenizer, texts: list[str], batch_size: int, max_length: int) -> list[dict]:
    if not texts:
        raise ConfigError("no calibration text: the stage needs target-language training text "
                          "(check compression.text)")
    texts = sorted(texts, key=len)  # similar lengths together: less padding
    batches = []
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(texts[i:i + batch_size], truncation=True, max_length=max_length,
                        padding=True, return_tensors="pt", return_special_tokens_mask=True)
        batches.append(dict(enc))
    return batches


def mask_tokens(batch: dict, mask_id: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(masked input ids, labels): MASK_PROBABILITY of the real, non-special tokens, at least one
    per sequence, replaced by the mask token; labels are -100 elsewhere."""
    ids = batch["input_ids"]
    maskable = (batch["attention_mask"] == 1) & (batch["special_tokens_mask"] == 0)
    chosen = (torch.rand(ids.shape, generator=generator) < MASK_PROBABILITY) & maskable
    # guarantee a target in every row that has one maskable token
    first = maskable.float().argmax(dim=1)
    rows = maskable.any(dim=1) & ~chosen.any(dim=1)
    chosen[rows, first[rows]] = True
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    return torch.where(chosen, torch.full_like(ids, mask_id), ids), labels


def mlm_head(model: nn.Module) -> nn.Module:
    """The MLM head of a BertForMaskedLM (`cls`) or RoBERTa/XLM-R ForMaskedLM (`lm_head`)."""
    for name in ("cls", "lm_head"):
        head = getattr(model, name, None)
        if isinstance(head, nn.Module):
            return head
    raise ConfigError(f"{type(model).__name__} has no MLM head module (cls or lm_head)")


def make_loss(model: nn.Module, tokenizer, kind: str, has_mlm_head: bool, seed: int) -> Callable[[dict], torch.Tensor]:
    if kind == "auto":
        kind = "mlm" if has_mlm_head else "hidden"
    if kind == "mlm" and not has_mlm_head:
        raise ConfigError("loss: 'mlm' needs a model with an MLM head; this one has none "
                          "(use loss: hidden or auto)")
    mask_id = tokenizer.mask_token_id if tokenizer.mask_token_id is not None else tokenizer.unk_token_id
    if mask_id is None:
        raise ConfigError("the tokenizer has neither a mask nor an unknown token to mask text with")
    generator = torch.Generator().manual_seed(seed)
    encoder = encoder_of(model)

    def model_inputs(batch: dict, ids: torch.Tensor) -> dict:
        device = next(model.parameters()).device
        inputs = {"input_ids": ids, "attention_mask": batch["attention_mask"]}
        if "token_type_ids" in batch:
            inputs["token_type_ids"] = batch["token_type_ids"]
        return {k: v.to(device) for k, v in inputs.items()}

    head = mlm_head(model) if kind == "mlm" else None

    def mlm_loss(batch: dict) -> torch.Tensor:
        # the head runs on masked positions only: full logits of a 250k vocabulary would need
        # batch x length x 250k floats
        ids, labels = mask_tokens(batch, mask_id, generator)
        hidden = encoder(**model_inputs(batch, ids)).last_hidden_state
        where = labels != -100
        logits = head(hidden[where.to(hidden.device)])
        return F.cross_entropy(logits.float(), labels[where].to(logits.device))

    def hidden_loss(batch: dict) -> torch.Tensor:
        ids, _ = mask_tokens(batch, mask_id, generator)
        with torch.no_grad():
            clean = encoder(**model_inputs(batch, batch["input_ids"])).last_hidden_state
        masked = encoder(**model_inputs(batch, ids)).last_hidden_state
        keep = model_inputs(batch, ids)["attention_mask"].unsqueeze(-1).to(masked.dtype)
        return F.mse_loss(masked * keep, clean * keep, reduction="sum") / (keep.sum() * masked.shape[-1])

    return mlm_loss if kind == "mlm" else hidden_loss


def axis_terms(model: nn.Module, axis: str, *, name_filter: Callable[[str], bool] = lambda n: True
               ) -> dict[int | None, torch.Tensor]:
    """Signed first-order terms sum(W * dL/dW) per unit along `axis`, grouped by layer."""
    out: dict[int | None, torch.Tensor] = {}
    for name, p in model.named_parameters():
        if p.grad is None or not name_filter(name):
            continue
        ta = tensor_axes(name)
        for dim in ta.dims(axis):
            other = [d for d in range(p.dim()) if d != dim]
            term = (p.detach().float() * p.grad.float())
            term = term.sum(dim=other) if other else term
            out[ta.layer] = out[ta.layer] + term if ta.layer in out else term
    return out


def accumulate(model: nn.Module, batches: Iterable[dict], loss_fn: Callable[[dict], torch.Tensor],
               collect: Callable[[nn.Module], dict[str, torch.Tensor]], *, desc: str,
               trainable: Callable[[str], bool]) -> tuple[dict[str, torch.Tensor], float]:
    """Sum over batches of |collect(model)| after each backward pass; returns (scores, mean loss).
    Only parameters for which trainable(name) holds get gradients (the rest is frozen)."""
    model.eval()  # no dropout: the scores depend on the text and the seed only
    for name, p in model.named_parameters():
        p.requires_grad_(trainable(name))
    scores: dict[str, torch.Tensor] = defaultdict(lambda: 0)
    losses = []
    batches = list(batches)
    for batch in bar(batches, desc=desc, unit="batch"):
        model.zero_grad(set_to_none=True)
        loss = loss_fn(batch)
        loss.backward()
        losses.append(float(loss.detach()))
        for key, term in collect(model).items():
            scores[key] = scores[key] + term.abs().cpu()
    model.zero_grad(set_to_none=True)
    return dict(scores), sum(losses) / max(len(losses), 1)


def calibrate(parent_dir, cfg, ctx, *, collect: Callable[[nn.Module], dict[str, torch.Tensor]],
              trainable: Callable[[str], bool], desc: str) -> tuple[dict[str, torch.Tensor], dict]:
    """Load the parent, run one scoring pass over sampled training text; (scores, report facts).
    `cfg` carries calibration_lines, batch_size, max_length and loss."""
    from compression.tensors.modelio import has_mlm_head, load_model, load_tokenizer

    model = load_model(parent_dir, dtype=torch.float32).to(ctx.torch_device())
    tokenizer = load_tokenizer(parent_dir)
    lines = sample_lines(ctx.training_texts(), cfg.calibration_lines, ctx.seed)
    batches = make_batches(tokenizer, lines, cfg.batch_size, cfg.max_length)
    mlm = has_mlm_head(model.config)
    loss_fn = make_loss(model, tokenizer, cfg.loss, mlm, ctx.seed)
    torch.manual_seed(ctx.seed)
    scores, mean_loss = accumulate(model, batches, loss_fn, collect, desc=desc, trainable=trainable)
    kind = cfg.loss if cfg.loss != "auto" else ("mlm" if mlm else "hidden")
    n_tokens = int(sum(int(b["attention_mask"].sum()) for b in batches))
    return scores, {"calibration_lines": len(lines), "calibration_tokens": n_tokens,
                    "calibration_loss": kind, "calibration_loss_value": round(mean_loss, 6)}
