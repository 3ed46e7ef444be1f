"""Launcher entry point for distillation, also under torchrun / accelerate:

    python -m cli.distill --student DIR --teacher DIR --texts FILE --out DIR [--config JSON]
    torchrun --nproc_per_node 4 -m cli.distill --student ... (same arguments)
    accelerate launch --num_processes 4 -m cli.distill --student ...

--texts: a UTF-8 file with one text per line (.txt) or JSON lines with a "text" field (.jsonl).
--config: a JSON file of DistillConfig fields, or the JSON itself ('{"steps": 2000}').
Rank 0 prints the report as JSON on stdout (and writes it to --report when given).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

from compression.distill.loop import DistillConfig, distill
from core.errors import ConfigError, DataError, UserError


def read_texts(path: Path) -> list[str]:
    """Texts of a .txt file (one per line) or a .jsonl file (a "text" field per line)."""
    if not path.is_file():
        raise DataError(f"text file {path} not found; give a UTF-8 file with one text per line")
    lines = path.read_text(encoding="utf-8").splitlines()
    if path.suffix != ".jsonl":
        return lines
    texts = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            texts.append(json.loads(line)["text"])
        except (ValueError, KeyError, TypeError) as e:
            raise DataError(f"{path}:{n} is not a JSON object with a \"text\" field ({e})") from e
    return texts


def read_config(value: str | None) -> DistillConfig:
    if not value:
        return DistillConfig()
    text = value if value.lstrip().startswith("{") else None
    if text is None:
        path = Path(value)
        if not path.is_file():
            raise ConfigError(f"--config {value}: no such file; give a JSON file or inline JSON like '{{\"steps\": 100}}'")
        text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ConfigError(f"--config is not valid JSON ({e})") from e
    if not isinstance(data, dict):
        raise ConfigError("--config must be a JSON object of distillation settings")
    return DistillConfig.from_mapping(data)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m cli.distill", description=__doc__.split("\n\n")[0])
    p.add_argument("--student", required=True, type=Path, help="student model directory")
    p.add_argument("--teacher", required=True, type=Path, help="teacher model directory")
    p.add_argument("--texts", required=True, type=Path, help="text file (.txt one per line, or .jsonl)")
    p.add_argument("--out", required=True, type=Path, help="output model directory")
    p.add_argument("--config", help="DistillConfig as a JSON file or inline JSON")
    p.add_argument("--checkpoint-dir", type=Path, help="where checkpoints go (default <out>.ckpt)")
    p.add_argument("--device", help="torch device (default cuda:LOCAL_RANK when available, else cpu)")
    p.add_argument("--stop-after-steps", type=int, help="train at most this many steps now, then checkpoint")
    p.add_argument("--threads", type=int, help="torch CPU threads per process (1 is best on a busy machine)")
    p.add_argument("--report", type=Path, help="also write the report JSON here (rank 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        report = distill(args.student, args.teacher, read_texts(args.texts), read_config(args.config), args.out,
                         device=args.device, progress=not args.no_progress, checkpoint_dir=args.checkpoint_dir,
                         stop_after_steps=args.stop_after_steps)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        text = report.model_dump_json(indent=2)
        if args.report:
            args.report.write_text(text)
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
