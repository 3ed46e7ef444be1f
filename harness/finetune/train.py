"""Fine-tune a classification or token-classification head on an encoder and score it.

Full fine-tuning by default (a frozen-encoder option trains the head alone). AdamW with linear
warm-up and decay, gradient clipping at 1.0, early stopping on the dev split's main metric. The
checkpoint with the best dev score is restored and the test split is scored once, with it. CUDA
is used when present; the protocol's resolved precision decides bf16 autocast (on a GPU or a CPU
with native bf16, see core.precision) or fp32. Weights, losses and metrics stay fp32.
"""
from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from core import interrupt
from core.progress import bar
from harness.finetune.features import Encoded, encode_sequences, encode_words
from harness.finetune.protocol import ResolvedProtocol
from harness.finetune.teacher_labels import (LabelJob, interleave, kd_loss, load_labels, save_labels, split_words,
                                              token_kd_loss, word_logits, word_targets)
from harness.finetune.used_rows import swap_in_used_rows
from core.precision import autocast
from harness.store import RunResult, Score
from models.batching import collate, eval_batches, train_batches

# RoBERTa-family models number positions from pad_token_id + 1: max_position_embeddings 514 holds 512 tokens
_OFFSET_POSITIONS = {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "data2vec-text", "roberta-prelayernorm"}
SUBSAMPLE_SEED = 20240611  # fixed: every model and seed sees the same capped subset


@dataclass
class TrainReport:
    """What a fine-tuning run did, beyond its scores."""
    history: list[dict[str, float]] = field(default_factory=list)  # dev main metric per epoch
    stopped_early: bool = False
    unplaced_test_words: int = 0
    device: str = "cpu"
    dtype: str = "fp32"
    teacher_labels: dict | None = None   # what task-specific distillation read or wrote
    embedding_rows: tuple[int, int] | None = None  # (rows trained, rows in the matrix) where swapped


def select_device(device: str | None = None) -> torch.device:
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def subsample(examples: Sequence[Any], k: int | None) -> list[Any]:
    """A fixed, seed-independent subset of at most k examples, in their original order."""
    if k is None or len(examples) <= k:
        return list(examples)
    keep = sorted(random.Random(SUBSAMPLE_SEED).sample(range(len(examples)), k))
    return [examples[i] for i in keep]


def _optimizer(model: torch.nn.Module, proto: ResolvedProtocol, device: torch.device):
    head_lr = proto.head_learning_rate or proto.learning_rate
    base = model.base_model if hasattr(model, "base_model") else model
    base_ids = {id(p) for p in base.parameters()}
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        no_decay = p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name
        groups.setdefault((id(p) in base_ids, no_decay), []).append(p)
    param_groups = [
        {"params": ps, "lr": proto.learning_rate if in_base else head_lr,
         "weight_decay": 0.0 if no_decay else proto.weight_decay}
        for (in_base, no_decay), ps in groups.items()
    ]
    try:  # the fused kernel is several times faster on CPU and GPU alike
        return torch.optim.AdamW(param_groups, fused=device.type in ("cpu", "cuda"))
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(param_groups)


class Finetuner:
    """One fine-tuning run: a model directory, a task's data, a protocol and a seed."""

    def __init__(self, model_dir: Path, task_spec, data, proto: ResolvedProtocol, seed: int,
                 device: str | None = None, progress: bool = True, eval_max_length: int | None = None,
                 label_job: LabelJob | None = None):
        self.model_dir = Path(model_dir)
        self.label_job = label_job
        self.spec = task_spec
        self.data = data
        self.proto = proto
        self.seed = seed
        self.device = select_device(device)
        self.progress = progress
        self.labels: list[str] = list(data.labels)
        self.label2id = {label: i for i, label in enumerate(self.labels)}
        self.eval_max_length = eval_max_length
        self.report = TrainReport(device=self.device.type)

    # -- model and features --------------------------------------------------------------------
    def _load(self):
        from harness.finetune.heads import load_task_model
        from models.loading import load_tokenizer

        tokenizer = load_tokenizer(self.model_dir)
        model = load_task_model(self.model_dir, self.spec.kind, self.labels, self.proto.pooling)
        if self.proto.freeze_encoder:
            for p in model.base_model.parameters():
                p.requires_grad_(False)
        if self.proto.freeze_embeddings:  # the optimizer then skips the (vocab x hidden) matrix
            model.base_model.get_input_embeddings().weight.requires_grad_(False)
        return tokenizer, model.to(self.device)

    def _encode(self, tokenizer, examples, max_length: int) -> Encoded:
        if self.spec.kind == "token":
            return encode_words(tokenizer, [e.tokens for e in examples], [e.tags for e in examples],
                                self.label2id, max_length)
        return encode_sequences(tokenizer, [e.text for e in examples], [e.label for e in examples],
                                self.label2id, max_length)

    def _eval_length(self, tokenizer, model) -> int:
        if self.eval_max_length:
            return self.eval_max_length
        limit = getattr(model.config, "max_position_embeddings", 512) or 512
        if getattr(model.config, "model_type", "") in _OFFSET_POSITIONS:  # positions start after the pad id
            limit -= (getattr(model.config, "pad_token_id", None) or 1) + 1
        tok_limit = getattr(tokenizer, "model_max_length", limit) or limit
        return int(min(limit, tok_limit, 512))

    def _encode_unlabeled(self, tokenizer, texts, max_length: int) -> Encoded:
        """The unlabeled lines of task-specific distillation as inputs: whole lines for sequence
        tasks, lines split into words (with each word's first position) for token tasks."""
        if self.spec.kind == "token":
            return encode_words(tokenizer, [split_words(t) for t in texts], None, self.label2id, max_length)
        return Encoded(input_ids=[list(x) for x in tokenizer(list(texts), truncation=True,
                                                               max_length=max_length)["input_ids"]], labels=[])

    def _soft_targets(self, job: LabelJob | None, unl: Encoded | None) -> tuple[list[list[int]], Any]:
        """A student's unlabeled inputs and its teacher's soft labels for them: a (lines, labels)
        tensor, or per line the `word_targets` of a token task (lines with no word both models
        placed are left out). Empty for plain fine-tuning and for the teacher's own run."""
        if job is None or job.mode != "read":
            return [], None
        soft = load_labels(job.path, self.labels, job.texts)
        if self.spec.kind != "token":
            self.report.teacher_labels = {"read": str(job.path), "lines": len(unl.input_ids)}
            return unl.input_ids, soft
        pairs = [word_targets(rows, positions) for rows, positions in zip(soft, unl.word_positions)]
        keep = [i for i, pair in enumerate(pairs) if pair is not None]
        self.report.teacher_labels = {"read": str(job.path), "lines": len(keep),
                                      "words": sum(len(pairs[i][0]) for i in keep)}
        return [unl.input_ids[i] for i in keep], [pairs[i] for i in keep]

    # -- prediction and scoring ----------------------------------------------------------------
    @torch.no_grad()
    def logits(self, model, input_ids: list[list[int]], pad_id: int, desc: str | None = None):
        """The model's fp32 logits (on its device), batch by batch of similar lengths, under the
        protocol's precision: (indices of the batch's inputs, logits)."""
        model.eval()
        ctx = autocast(self.proto.precision, self.device)
        batches = eval_batches([len(x) for x in input_ids], self.proto.eval_batch_size)
        for idx in (bar(batches, desc=desc, unit="batch") if desc else batches):
            batch = collate([input_ids[i] for i in idx], pad_id)
            with ctx:
                logits = model(**{k: v.to(self.device) for k, v in batch.items()}).logits
            yield idx, logits.float()

    def predict(self, model, encoded: Encoded, pad_id: int) -> list:
        out: list = [None] * len(encoded)
        for idx, logits in self.logits(model, encoded.input_ids, pad_id):
            pred = logits.argmax(-1).cpu()
            for row, i in enumerate(idx):
                if self.spec.kind == "token":
                    out[i] = [int(pred[row, p]) if p >= 0 else -1 for p in encoded.word_positions[i]]
                else:
                    out[i] = int(pred[row])
        return out

    def _fallback_label(self, train) -> str:
        if self.spec.kind == "token":
            counts = Counter(tag for e in train for tag in e.tags)
        else:
            counts = Counter(e.label for e in train)
        return counts.most_common(1)[0][0]

    def score(self, model, encoded: Encoded, examples, pad_id: int, fallback: str) -> dict[str, float]:
        from tasks.metrics import compute

        pred_ids = self.predict(model, encoded, pad_id)
        if self.spec.kind == "token":
            gold = [list(e.tags) for e in examples]
            pred = [[self.labels[j] if j >= 0 else fallback for j in p] for p in pred_ids]
        else:
            gold = [e.label for e in examples]
            pred = [self.labels[j] for j in pred_ids]
        return compute(self.spec, gold, pred)

    # -- training ------------------------------------------------------------------------------
    def run(self) -> RunResult:
        set_seed(self.seed)
        t0 = time.perf_counter()
        tokenizer, model = self._load()
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        train = subsample(self.data.train, self.proto.max_train_examples)
        dev = subsample(self.data.dev, self.proto.max_dev_examples)
        test = list(self.data.test)
        if not train or not dev or not test:
            raise ValueError(f"empty split: train={len(train)} dev={len(dev)} test={len(test)}")
        fallback = self._fallback_label(train)
        eval_len = self._eval_length(tokenizer, model)
        train_len = min(self.proto.max_length, eval_len)  # never past the model's position table
        enc_train = self._encode(tokenizer, train, train_len)
        enc_dev = self._encode(tokenizer, dev, eval_len)
        enc_test = self._encode(tokenizer, test, eval_len)

        job = self.label_job
        unl = self._encode_unlabeled(tokenizer, job.texts, train_len) if job is not None else None
        texts_ids = unl.input_ids if unl is not None else []
        unl_ids, targets = self._soft_targets(job, unl)  # the unlabeled inputs a student trains on
        # a big vocabulary's untouched rows cost a dense gradient and AdamW update per step (used_rows.py)
        rows = swap_in_used_rows(model, [enc_train.input_ids, enc_dev.input_ids, enc_test.input_ids, texts_ids],
                                 tokenizer.all_special_ids)
        self.report.embedding_rows = rows.share if rows else None
        best_decay = 1.0

        optimizer = _optimizer(model, self.proto, self.device)
        steps_per_epoch = -(-len(enc_train) // self.proto.batch_size) + -(-len(unl_ids) // self.proto.batch_size)
        total = steps_per_epoch * self.proto.epochs
        warmup = int(round(total * self.proto.warmup_ratio))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: (s + 1) / max(1, warmup) if s < warmup
            else max(0.0, (total - s) / max(1, total - warmup)))
        ctx, self.report.dtype = autocast(self.proto.precision, self.device), self.proto.precision
        rng = random.Random(self.seed)
        main = self.spec.main_metric
        best_score, best_state, best_epoch, bad_epochs = -float("inf"), None, 0, 0
        best_dev: dict[str, float] = {}
        trainable = [p for p in model.parameters() if p.requires_grad]

        with bar(total=total, desc=f"{self.spec.name}/{self.data.language} seed {self.seed}",
                 unit="step") as pbar:
            for epoch in range(1, self.proto.epochs + 1):
                model.train()
                seen, epoch_t0 = 0, time.perf_counter()
                gold = train_batches(enc_train.lengths(), self.proto.batch_size, rng)
                unlabeled = train_batches([len(x) for x in unl_ids], self.proto.batch_size, rng) if unl_ids else []
                for kind, idx in interleave(gold, unlabeled, rng) if unl_ids else (("gold", b) for b in gold):
                    if kind == "gold":
                        batch = collate([enc_train.input_ids[i] for i in idx], pad_id,
                                        [enc_train.labels[i] for i in idx])
                        with ctx:
                            loss = model(**{k: v.to(self.device) for k, v in batch.items()}).loss
                    else:  # unlabeled text: match the fine-tuned teacher's soft labels
                        batch = collate([unl_ids[i] for i in idx], pad_id)
                        with ctx:
                            logits = model(**{k: v.to(self.device) for k, v in batch.items()}).logits
                        if self.spec.kind == "token":
                            kd = token_kd_loss(logits, [targets[i] for i in idx], job.temperature)
                        else:
                            kd = kd_loss(logits, targets[idx].to(self.device), job.temperature)
                        loss = job.weight * kd
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(trainable, 1.0)
                    optimizer.step()
                    if rows:
                        rows.track(optimizer)
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    seen += len(idx)
                    interrupt.check()
                    pbar.update(1)
                    pbar.set_postfix(epoch=epoch, loss=f"{loss.item():.3f}",
                                     ex_s=f"{seen / (time.perf_counter() - epoch_t0):.1f}")
                dev_scores = self.score(model, enc_dev, dev, pad_id, fallback)
                self.report.history.append({"epoch": epoch, main: dev_scores[main]})
                if dev_scores[main] > best_score:
                    best_score, best_epoch, best_dev, bad_epochs = dev_scores[main], epoch, dev_scores, 0
                    best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
                    best_decay = rows.decay if rows else 1.0
                else:
                    bad_epochs += 1
                    if self.proto.patience and bad_epochs >= self.proto.patience:
                        self.report.stopped_early = True
                        break
        train_seconds = time.perf_counter() - t0

        t1 = time.perf_counter()
        model.load_state_dict(best_state)
        if rows:
            rows.restore(best_decay)
        self.report.unplaced_test_words = enc_test.unplaced_words
        test_scores = self.score(model, enc_test, test, pad_id, fallback)
        eval_seconds = time.perf_counter() - t1
        if job is not None and job.mode == "write":  # the teacher labels the unlabeled text for its students
            if self.spec.kind == "token":  # one row per word, at its first sub-word
                logits: Any = [None] * len(texts_ids)
                for idx, out in self.logits(model, texts_ids, pad_id, desc="teacher labels"):
                    for row, i in enumerate(idx):
                        logits[i] = word_logits(out[row], unl.word_positions[i])
            else:
                logits = torch.empty(len(texts_ids), len(self.labels))
                for idx, out in self.logits(model, texts_ids, pad_id, desc="teacher labels"):
                    logits[idx] = out.cpu()
            save_labels(job.path, logits, self.labels, job.texts,
                        meta={"model_dir": str(self.model_dir), "seed": self.seed, "best_epoch": best_epoch})
            self.report.teacher_labels = {"wrote": str(job.path), "lines": len(job.texts)}

        self.trained = model  # the best-dev checkpoint, for a caller that wants the model itself
        scores = [Score("dev", m, v, m == main) for m, v in best_dev.items()]
        scores += [Score("test", m, v, m == main) for m, v in test_scores.items()]
        return RunResult(scores=scores, n_train=len(train), n_dev=len(dev), n_test=len(test),
                         best_epoch=best_epoch, train_seconds=train_seconds, eval_seconds=eval_seconds)


def finetune_and_score(model_dir: Path, task_spec, data, proto: ResolvedProtocol, seed: int,
                       device: str | None = None, progress: bool = True,
                       label_job: LabelJob | None = None) -> tuple[RunResult, TrainReport]:
    tuner = Finetuner(model_dir, task_spec, data, proto, seed, device=device, progress=progress,
                      label_job=label_job)
    result = tuner.run()
    return result, tuner.report
