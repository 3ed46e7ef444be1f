"""Task-specific distillation (protocol `teacher_labels`): the loss against hand-computed values,
the protocol's hash and scope, the teacher writing soft labels, a student learning from them, and
the runner's choice of who writes and who reads."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from core.errors import DataError
from harness.finetune.protocol import Protocol
from harness.finetune.teacher_labels import LabelJob, kd_loss, labels_path, load_labels, save_labels
from harness.finetune.train import Finetuner
from harness.runner import EvalModel, PlannedRun, RunSetup
from models.loading import load_tokenizer
from tasks.registry import get_task, load_task_data
from tests.conftest import save_tiny_model

FAST = dict(epochs=6, batch_size=8, learning_rate=3e-3, precision="fp32")


def test_kd_loss_matches_hand_computed_kl():
    s = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    t = torch.tensor([[0.0, 2.0], [1.0, 1.0]])
    temperature = 2.0

    def kl(sr, tr):
        p = [math.exp(x / temperature) for x in tr]
        p = [x / sum(p) for x in p]
        q = [math.exp(x / temperature) for x in sr]
        q = [x / sum(q) for x in q]
        return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))

    expected = (kl([1, 0], [0, 2]) + kl([0, 0], [1, 1])) / 2 * temperature ** 2
    assert kd_loss(s, t, temperature).item() == pytest.approx(expected, rel=1e-6)
    assert kd_loss(t, t, temperature).item() == pytest.approx(0.0, abs=1e-7)


def test_the_option_is_its_own_protocol_for_sequence_tasks_only():
    plain, labelled = Protocol(), Protocol(teacher_labels={"lines": 100})
    assert labelled.resolve("topic").hash() != plain.resolve("topic").hash()
    assert labelled.family_id() != plain.family_id()
    # token tasks fine-tune plainly in that family: their runs are the plain runs
    assert labelled.resolve("pos").teacher_labels is None
    assert labelled.resolve("pos").hash() == plain.resolve("pos").hash()
    assert "teacher_labels" not in plain.resolve("topic").as_dict()


@pytest.fixture
def toy(toy_tasks, tmp_path):
    teacher = save_tiny_model(tmp_path / "teacher", "bert", layers=2, seed=0)
    student = save_tiny_model(tmp_path / "student", "bert", layers=1, seed=1)
    data = load_task_data("toy_topic", "mlt_Latn", toy_tasks)
    texts = tuple(f"the {a} {n} sleeps" for a in ("red", "big", "blue") for n in ("cat", "dom", "pes", "nyumba"))
    return teacher, student, data, texts


def test_the_teacher_writes_soft_labels_for_the_unlabeled_text(toy, tmp_path):
    teacher, _, data, texts = toy
    path = tmp_path / "labels.pt"
    proto = Protocol(**FAST).resolve("toy_topic")
    tuner = Finetuner(teacher, get_task("toy_topic"), data, proto, seed=1, progress=False,
                      label_job=LabelJob("write", path, texts, 1.0, 2.0))
    tuner.run()
    logits = load_labels(path, list(data.labels), texts)
    assert logits.shape == (len(texts), len(data.labels)) and torch.isfinite(logits).all()
    assert tuner.report.teacher_labels == {"wrote": str(path), "lines": len(texts)}
    with pytest.raises(DataError, match="other labels or text"):
        load_labels(path, list(data.labels), texts[:-1])


def test_a_student_learns_the_teachers_soft_labels(toy, tmp_path):
    """Soft labels that all name the class a plainly fine-tuned student predicts least on the
    unlabeled text pull a student fine-tuned with them (heavy weight) to that class."""
    _, student, data, texts = toy
    labels = list(data.labels)
    tokenizer = load_tokenizer(student)
    proto = Protocol(**FAST).resolve("toy_topic")

    def predicted_shares(job):
        tuner = Finetuner(student, get_task("toy_topic"), data, proto, seed=3, progress=False, label_job=job)
        tuner.run()
        tuner.trained.eval()
        with torch.no_grad():
            pred = tuner.trained(**tokenizer(list(texts), padding=True, return_tensors="pt")).logits.argmax(-1)
        return tuner.report, [(pred == k).float().mean().item() for k in range(len(labels))]

    plain_report, plain = predicted_shares(None)
    target = min(range(len(labels)), key=lambda k: plain[k])
    lines = texts * 8
    forced = torch.full((len(lines), len(labels)), -8.0)
    forced[:, target] = 8.0
    path = tmp_path / "labels.pt"
    save_labels(path, forced, labels, lines, meta={})
    report, taught = predicted_shares(LabelJob("read", path, lines, 10.0, 1.0))
    assert plain_report.teacher_labels is None
    assert report.teacher_labels == {"read": str(path), "lines": len(lines)}
    assert taught[target] >= plain[target] + 0.3, (labels[target], plain, taught)


def test_a_student_without_its_teachers_labels_fails_with_one_line(toy, tmp_path):
    _, student, data, texts = toy
    proto = Protocol(**FAST).resolve("toy_topic")
    tuner = Finetuner(student, get_task("toy_topic"), data, proto, seed=1, progress=False,
                      label_job=LabelJob("read", tmp_path / "absent.pt", texts, 1.0, 2.0))
    with pytest.raises(DataError, match="teacher's run of this task, language, seed and protocol must finish first"):
        tuner.run()


def test_the_runner_lets_teachers_write_and_their_points_read(toy_tasks, tmp_path, monkeypatch):
    import harness.finetune.teacher_labels as tl

    monkeypatch.setattr(tl, "unlabeled_lines", lambda language, data_dir, n, seed: [f"{language} line {i}"
                                                                                    for i in range(n)])
    grid = type("G", (), {"protocol": Protocol(teacher_labels={"lines": 5, "weight": 0.5})})()
    setup = RunSetup.__new__(RunSetup)
    setup.grid, setup.data_dir, setup._data, setup._lines = grid, tmp_path, {}, {}
    teacher = EvalModel("t", "t", "teacher", "src", "t", path=Path("/t"))
    point = EvalModel("t--mlt--p", "p", "compressed", "compressed:p", "t", language="mlt_Latn", path=Path("/p"))
    derived = EvalModel("mine", "mine", "model", "src", "t", path=Path("/mine"))
    unrelated = EvalModel("m", "m", "model", "src", None, path=Path("/m"))
    proto = grid.protocol.resolve("topic")
    jobs = {m.key: setup.label_job(PlannedRun(m, "topic", "mlt_Latn", 42, proto.hash()), proto)
            for m in (teacher, point, derived, unrelated)}
    assert jobs["t"].mode == "write" and jobs["t--mlt--p"].mode == jobs["mine"].mode == "read"
    assert jobs["t"].path == jobs["t--mlt--p"].path == labels_path("t", "topic", "mlt_Latn", 42, proto.hash())
    assert jobs["t"].texts == tuple(f"mlt_Latn line {i}" for i in range(5)) and jobs["t--mlt--p"].weight == 0.5
    assert jobs["m"] is None  # no teacher: plain fine-tuning
    pos = grid.protocol.resolve("pos")
    assert setup.label_job(PlannedRun(point, "pos", "mlt_Latn", 42, pos.hash()), pos) is None
