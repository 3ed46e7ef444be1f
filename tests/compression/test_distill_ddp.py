"""Data-parallel distillation: two CPU processes (gloo) under torchrun, through the module entry point."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModel, AutoModelForMaskedLM

from compression.distill.loop import DistillConfig, distill, evaluate_loss, weights_digest
from distill_fixtures import corpus, single_thread, teacher_and_student, write_texts  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.ddp, pytest.mark.usefixtures("single_thread")]


@pytest.mark.parametrize("mlm_head,student_hidden,length", [
    (True, 32, {"loss": "mlm_mse", "steps": 6}),
    # no MLM head: hidden-state loss through a trained projection, the pooler unused (DDP must not wait
    # for its gradients), two epochs so that the teacher cache is used
    (False, 16, {"loss": "hidden_mse", "epochs": 2}),
])
def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path, mlm_head, student_hidden, length):
    teacher, student = teacher_and_student(tmp_path, kind="bert", mlm_head=mlm_head, student_hidden=student_hidden)
    texts = corpus(32, max_words=30)
    texts_file = write_texts(tmp_path / "texts.txt", texts)
    common = dict(learning_rate=2e-3, warmup_ratio=0.0, log_every=1, **length)
    ddp_cfg = {**common, "batch_size": 4}  # per process: a global batch of 8

    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1", "HARNESS_PROGRESS": "0"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "cli.distill", "--student", str(student), "--teacher", str(teacher),
           "--texts", str(texts_file), "--out", str(tmp_path / "ddp"), "--config", json.dumps(ddp_cfg),
           "--device", "cpu", "--report", str(tmp_path / "ddp-report.json"), "--no-progress"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = json.loads((tmp_path / "ddp-report.json").read_text())
    assert ddp["world_size"] == 2 and ddp["finished"] and ddp["ranks_agree"]
    assert ddp["final_loss"] < ddp["initial_loss"]

    single = distill(student, teacher, texts, DistillConfig(batch_size=8, **common), tmp_path / "single",
                     device="cpu", progress=False)
    assert single.world_size == 1
    assert ddp["tokens_seen"] == single.tokens_seen and ddp["texts_seen"] == single.texts_seen
    assert [p["loss"] for p in ddp["loss_curve"]] == pytest.approx([p.loss for p in single.loss_curve], rel=1e-4)

    auto = AutoModelForMaskedLM if mlm_head else AutoModel
    saved = auto.from_pretrained(str(tmp_path / "ddp"))
    assert weights_digest(saved) == ddp["weights_digest"]  # rank 0 saved what every rank trained
    reference = auto.from_pretrained(str(tmp_path / "single")).state_dict()
    start = auto.from_pretrained(str(student)).state_dict()
    for name, tensor in saved.state_dict().items():  # training moves weights by ~1e-2; the two runs agree to 1e-5
        torch.testing.assert_close(tensor, reference[name], rtol=0, atol=1e-5, msg=lambda m: f"{name}: {m}")
    assert max((start[n] - reference[n]).abs().max().item() for n in reference if "pooler" not in n) > 1e-3

    cfg = DistillConfig(batch_size=8, **common)
    assert evaluate_loss(tmp_path / "ddp", teacher, texts[:16], cfg, device="cpu") < \
        evaluate_loss(student, teacher, texts[:16], cfg, device="cpu")
