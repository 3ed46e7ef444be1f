"""The model steps: teacher, data, fine-tuning in bf16 and fp32, compression, distillation."""
from __future__ import annotations

import dataclasses
import math
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

from harness.doctor.base import Skipped, State, check
from harness.doctor.device import cuda_bf16_native

MAX_VOCAB = 5000  # the paper's small vocabulary (5k costs a few points; 40k is near lossless)


def step_teacher(state: State) -> dict[str, Any]:
    """resolve the teacher and read its shape"""
    from compression.tensors.modelio import read_config
    from compression.tensors.shapes import ModelShape
    from models.sources import resolve

    resolved = resolve(state.cfg.teacher)
    shape = ModelShape.from_config(read_config(resolved.path))
    state.made["teacher"] = Path(resolved.path)
    state.made["teacher_shape"] = shape
    return {"source": state.cfg.teacher, "kind": resolved.kind, "revision": resolved.revision,
            "path": str(resolved.path), "shape": shape.as_dict(), "params": shape.params().as_dict()}


def step_data(state: State) -> dict[str, Any]:
    """load the task's examples and the language's training text"""
    from compression.config import TextConfig
    from compression.texts import LanguageText
    from harness.finetune.train import subsample
    from tasks.fetch import resolve_data_dir
    from tasks.registry import get_task, load_task_data

    cfg, sizes = state.cfg, state.sizes
    data_dir = resolve_data_dir(str(cfg.data_dir) if cfg.data_dir is not None else None)
    data = load_task_data(cfg.task, cfg.language, data_dir)
    data = dataclasses.replace(data, test=subsample(data.test, sizes.test_examples))
    text_cfg = cfg.text if cfg.text is not None else TextConfig()
    text_cfg = text_cfg.model_copy(update={"max_lines": min(text_cfg.max_lines or sizes.text_lines,
                                                            sizes.text_lines)})
    text = LanguageText(text_cfg, cfg.language, data_dir, seed=cfg.seed)
    lines = text.texts()
    state.made.update(task_data=data, task_spec=get_task(cfg.task), text=text)
    return {"task": cfg.task, "language": cfg.language, "dataset": data.dataset,
            "data_dir": str(data_dir), "labels": len(data.labels),
            "train": min(len(data.train), sizes.train_examples),
            "dev": min(len(data.dev), sizes.dev_examples), "test": len(data.test),
            "text_lines": len(lines), "text_characters": sum(len(t) for t in lines),
            "dev_text_lines": len(text.dev())}


class _LinearDtypes:
    """Counts the dtypes of nn.Linear outputs, in training and in evaluation, while active: the
    precision the matrix work actually ran in (bf16 autocast shows as torch.bfloat16)."""

    def __init__(self):
        self.counts: dict[str, Counter] = {"train": Counter(), "eval": Counter()}

    def __enter__(self):
        import torch

        def hook(module, args, output):
            if isinstance(module, torch.nn.Linear) and isinstance(output, torch.Tensor):
                self.counts["train" if module.training else "eval"][str(output.dtype).replace("torch.", "")] += 1

        self._handle = torch.nn.modules.module.register_module_forward_hook(hook)
        return self

    def __exit__(self, *exc):
        self._handle.remove()

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {phase: dict(c) for phase, c in self.counts.items()}


def _majority_share(examples) -> float:
    labels = Counter(e.label for e in examples) if examples and hasattr(examples[0], "label") else \
        Counter(t for e in examples for t in e.tags)
    return max(labels.values()) / sum(labels.values()) if labels else 0.0


def _need_bf16(state: State) -> None:
    """A GPU without native bf16 cannot run the bf16 steps meaningfully: skipped, with the reason.
    (On the CPU they run: autocast works everywhere there, natively with AMX / AVX512-BF16.)"""
    if state.is_cuda and not cuda_bf16_native():
        raise Skipped("this GPU has no native bf16 (Ampere or later needed)")


def _finetune(state: State, precision: str) -> dict[str, Any]:
    from harness.finetune.protocol import Protocol
    from harness.finetune.train import finetune_and_score

    teacher, data, spec = state.need("teacher"), state.need("task_data"), state.need("task_spec")
    if precision == "bf16":
        _need_bf16(state)
    sizes = state.sizes
    proto = Protocol(profile="fewshot", max_train_examples=sizes.train_examples,
                     max_dev_examples=sizes.dev_examples, epochs=sizes.epochs, batch_size=sizes.batch_size,
                     max_length=sizes.max_length, precision=precision).resolve(state.cfg.task, device=state.cfg.device)
    t0 = time.perf_counter()
    with _LinearDtypes() as dtypes:
        result, train_report = finetune_and_score(teacher, spec, data, proto, seed=state.cfg.seed,
                                                  device=state.cfg.device)
    wall = time.perf_counter() - t0
    test = {s.metric: s.value for s in result.scores if s.split == "test"}
    main = spec.main_metric
    observed = dtypes.as_dict()
    want = "bfloat16" if precision == "bf16" else "float32"
    checks = [check("score is a number", math.isfinite(test.get(main, float("nan"))),
                     f"test {main} = {test.get(main)}"),
              check(f"matrix work ran in {want}", set(observed["train"]) == {want},
                     f"nn.Linear outputs while training: {observed['train']}")]
    chance = _majority_share(data.test)
    warnings = []
    if not state.cfg.quick and not test.get(main, 0.0) > chance:
        warnings.append(f"test {main} {test.get(main):.3f} is not above the majority class ({chance:.3f})")
    return {"precision": train_report.dtype, "device": train_report.device, "main_metric": main,
            "score": test.get(main), "test": test,
            "dev_history": train_report.history, "best_epoch": result.best_epoch,
            "majority_class_share": round(chance, 4),
            "n_train": result.n_train, "n_dev": result.n_dev, "n_test": result.n_test,
            "train_seconds": round(result.train_seconds, 3), "eval_seconds": round(result.eval_seconds, 3),
            "wall_seconds": round(wall, 3), "linear_output_dtypes": observed,
            "checks": checks, "warnings": warnings}


def step_finetune_bf16(state: State) -> dict[str, Any]:
    """fine-tune the teacher on the task in bf16 (harness.finetune)"""
    return _finetune(state, "bf16")


def step_finetune_fp32(state: State) -> dict[str, Any]:
    """fine-tune the teacher on the task in fp32 (harness.finetune)"""
    return _finetune(state, "fp32")


def point_shape(teacher) -> dict[str, int]:
    """The 92%-style point of a teacher: vocabulary min(5000, V/2), half the layers, half the FFN."""
    return {"vocab": min(MAX_VOCAB, max(8, teacher.vocab // 2)), "layers": max(1, teacher.layers // 2),
            "ffn": max(1, teacher.ffn // 2)}


def step_compress(state: State) -> dict[str, Any]:
    """build a compressed point: vocabulary trim, half depth, half FFN (compression.stages)"""
    from compression.manifest import read_manifest
    from compression.schema import DepthStage, FfnStage, VocabStage
    from compression.stages import StageContext, run_stage

    teacher, shape, text = state.need("teacher"), state.need("teacher_shape"), state.need("text")
    sizes, cfg = state.sizes, state.cfg
    target = point_shape(shape)
    ctx = StageContext(seed=cfg.seed, device=cfg.device, language=cfg.language, texts=text.texts,
                       dev=text.dev, data_fingerprint=text.fingerprint, text=text.inputs(),
                       teacher={"name": cfg.teacher, "source": cfg.teacher, "revision": None})
    chain = [VocabStage(size=target["vocab"], report_lines=sizes.report_lines),
             DepthStage(layers=target["layers"], strategy="stride"),
             FfnStage(width=target["ffn"], calibration_lines=sizes.calibration_lines,
                      batch_size=min(16, sizes.distill_batch_size), max_length=sizes.max_length)]
    parent, stages = teacher, []
    for i, stage in enumerate(chain):
        t0 = time.perf_counter()
        out = state.work / f"point-{i}-{stage.stage}"
        shutil.rmtree(out, ignore_errors=True)  # a kept work directory: build afresh
        parent = run_stage(parent, stage, ctx, out)
        stages.append({"stage": stage.label(), "seconds": round(time.perf_counter() - t0, 3)})
        state.echo(f"      {stage.label()}: {stages[-1]['seconds']:.1f} s")
    manifest = read_manifest(parent)
    state.made["point"] = parent
    return {"chain": manifest["stage_chain"], "stages": stages, "shape": manifest["shape"],
            "params": manifest["params"], "teacher_params": manifest["teacher"]["params"],
            "compression_ratio": manifest["compression_ratio"], "reduction": manifest["reduction"],
            "vocab_size": manifest["vocab_size"]}


def step_distill_bf16(state: State) -> dict[str, Any]:
    """distil the compressed point from the teacher in bf16 (compression.distill)"""
    from compression.distill.loop import DistillConfig, distill

    teacher, point, text = state.need("teacher"), state.need("point"), state.need("text")
    _need_bf16(state)
    sizes = state.sizes
    steps = sizes.distill_steps
    out = state.work / "distilled"
    for old in (out, out.parent / f"{out.name}.ckpt"):  # a kept work directory: never resume an old run
        shutil.rmtree(old, ignore_errors=True)
    dcfg = DistillConfig(steps=steps, batch_size=sizes.distill_batch_size, max_length=sizes.distill_max_length,
                         precision="bf16", checkpoint_every=None, teacher_store="off",
                         log_every=max(1, steps // 6), seed=state.cfg.seed)
    losses: list[float] = []
    report = distill(point, teacher, text.texts(), dcfg, out, device=state.cfg.device,
                     progress=True, on_step=lambda step, loss: losses.append(loss))
    finite = all(math.isfinite(v) for v in losses)
    checks = [check("ran every step", report.steps == steps and report.finished,
                     f"{report.steps} of {steps} steps"),
              check("losses are finite", finite and bool(losses), f"{len(losses)} step losses"),
              check("ran in bf16", report.precision == "bf16", f"precision {report.precision}")]
    warnings = []
    if not state.cfg.quick and finite and report.final_loss is not None and report.initial_loss is not None \
            and not report.final_loss < report.initial_loss:
        warnings.append(f"the loss did not fall ({report.initial_loss:.4f} -> {report.final_loss:.4f})")
    return {"precision": report.precision, "device": report.device, "loss": report.loss,
            "steps": report.steps, "tokens_seen": report.tokens_seen,
            "tokens_per_second": round(report.tokens_per_second, 1), "tflops": round(report.tflops, 4),
            "loss_start": report.initial_loss, "loss_end": report.final_loss,
            "first_step_loss": losses[0] if losses else None, "last_step_loss": losses[-1] if losses else None,
            "loss_curve": [p.model_dump() for p in report.loss_curve],
            "train_seconds": round(report.train_seconds, 3), "wall_seconds": round(report.wall_seconds, 3),
            "checks": checks, "warnings": warnings}
