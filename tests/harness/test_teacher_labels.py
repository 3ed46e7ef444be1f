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
from harness.finetune.teacher_labels import (LabelJob, kd_loss, labels_path, load_labels, save_labels, split_words,
                                              token_kd_loss, word_logits, word_targets)
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


def test_the_option_is_its_own_protocol_for_every_task_kind():
    plain, labelled = Protocol(), Protocol(teacher_labels={"lines": 100})
    assert labelled.family_id() != plain.family_id()
    for task in ("topic", "pos", "ner"):
        assert labelled.resolve(task).teacher_labels.lines == 100
        assert labelled.resolve(task).hash() != plain.resolve(task).hash()
        assert "teacher_labels" not in plain.resolve(task).as_dict()


def test_raw_lines_split_into_words_as_the_token_datasets_are():
    assert split_words("V Bratislave, 12. mája 2019 (Slovensko).") == [
        "V", "Bratislave", ",", "12", ".", "mája", "2019", "(", "Slovensko", ")", "."]
    assert split_words("  ") == []


def test_token_kd_loss_is_the_mean_kl_over_the_words_both_models_placed():
    temperature = 2.0
    # two lines: the teacher placed words 0 and 2 of the first (word 1 was cut off: NaN) and the
    # only word of the second; the student placed words 0 and 1 of the first at positions 1 and 3
    nan = float("nan")
    teacher_rows = [torch.tensor([[0.0, 2.0], [nan, nan], [1.0, 0.0]]), torch.tensor([[1.0, 1.0]])]
    targets = [word_targets(teacher_rows[0], [1, 3, -1]), word_targets(teacher_rows[1], [1])]
    assert targets[0][0] == [1] and targets[1][0] == [1]
    assert word_targets(teacher_rows[0], [-1, 2, -1]) is None  # no word both placed
    logits = torch.zeros(2, 4, 2)
    logits[0, 1] = torch.tensor([1.0, 0.0])
    logits[0, 3] = torch.tensor([5.0, -5.0])  # a word the teacher did not place: must not count
    expected = kd_loss(torch.tensor([[1.0, 0.0], [0.0, 0.0]]), torch.tensor([[0.0, 2.0], [1.0, 1.0]]), temperature)
    assert token_kd_loss(logits, targets, temperature).item() == pytest.approx(expected.item(), rel=1e-6)


def test_word_logits_takes_each_words_first_sub_word_row():
    logits = torch.arange(10.0).reshape(5, 2)
    rows = word_logits(logits, [1, -1, 3])
    assert rows[0].tolist() == [2.0, 3.0] and rows[2].tolist() == [6.0, 7.0]
    assert torch.isnan(rows[1]).all()


def _teacher_student_data(tmp_path, toy_tasks, task: str, line: str):
    """Two tiny models, a toy task's data and twelve unlabeled lines made from `line`."""
    teacher = save_tiny_model(tmp_path / "teacher", "bert", layers=2, seed=0)
    student = save_tiny_model(tmp_path / "student", "bert", layers=1, seed=1)
    texts = tuple(line.format(a=a, n=n) for a in ("red", "big", "blue") for n in ("cat", "dom", "pes", "nyumba"))
    return teacher, student, load_task_data(task, "mlt_Latn", toy_tasks), texts


@pytest.fixture
def toy(toy_tasks, tmp_path):
    return _teacher_student_data(tmp_path, toy_tasks, "toy_topic", "the {a} {n} sleeps")


def _teacher_writes(models_data, task: str, tmp_path):
    """The teacher's run with a 'write' job: (its tuner, the labels' path, the stored labels)."""
    teacher, _, data, texts = models_data
    path = tmp_path / "labels.pt"
    tuner = Finetuner(teacher, get_task(task), data, Protocol(**FAST).resolve(task), seed=1, progress=False,
                      label_job=LabelJob("write", path, texts, 1.0, 2.0))
    tuner.run()
    return tuner, path, load_labels(path, list(data.labels), texts)


def test_the_teacher_writes_soft_labels_for_the_unlabeled_text(toy, tmp_path):
    _, _, data, texts = toy
    tuner, path, logits = _teacher_writes(toy, "toy_topic", tmp_path)
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
    pos = grid.protocol.resolve("pos")  # token tasks learn per-word labels: a job of their own
    job = setup.label_job(PlannedRun(point, "pos", "mlt_Latn", 42, pos.hash()), pos)
    assert job.mode == "read" and job.path == labels_path("t", "pos", "mlt_Latn", 42, pos.hash()) != jobs["t"].path


@pytest.fixture
def toy_token(toy_tasks, tmp_path):
    return _teacher_student_data(tmp_path, toy_tasks, "toy_pos", "{n} {a}, the {n}.")


def test_the_teacher_writes_one_row_per_word_for_token_tasks(toy_token, tmp_path):
    teacher, _, data, texts = toy_token
    tuner, _, rows = _teacher_writes(toy_token, "toy_pos", tmp_path)
    assert [r.shape for r in rows] == [(len(split_words(t)), len(data.labels)) for t in texts]
    assert all(torch.isfinite(r).all() for r in rows)  # short lines: every word placed
    # the stored rows are the teacher's own predictions at each word's first sub-word
    tokenizer = load_tokenizer(teacher)
    words = split_words(texts[0])
    enc = tokenizer(words, is_split_into_words=True, return_tensors="pt")
    first = [enc.word_ids().index(w) for w in range(len(words))]
    tuner.trained.eval()
    with torch.no_grad():
        own = tuner.trained(**enc).logits[0, first]
    assert torch.allclose(rows[0], own, atol=1e-4)


def test_a_student_learns_the_teachers_per_word_labels(toy_token, tmp_path):
    """Per-word soft labels that all name the tag a plainly fine-tuned student predicts least on
    the unlabeled words pull a student fine-tuned with them (heavy weight) to that tag."""
    _, student, data, texts = toy_token
    labels = list(data.labels)
    tokenizer = load_tokenizer(student)
    proto = Protocol(**FAST).resolve("toy_pos")
    lines = texts * 4
    words = [split_words(t) for t in texts]

    def predicted_shares(job):
        tuner = Finetuner(student, get_task("toy_pos"), data, proto, seed=3, progress=False, label_job=job)
        tuner.run()
        tuner.trained.eval()
        preds = []
        with torch.no_grad():
            for w in words:
                enc = tokenizer(w, is_split_into_words=True, return_tensors="pt")
                first = [enc.word_ids().index(i) for i in range(len(w))]
                preds += tuner.trained(**enc).logits[0, first].argmax(-1).tolist()
        return tuner.report, [sum(p == k for p in preds) / len(preds) for k in range(len(labels))]

    plain_report, plain = predicted_shares(None)
    target = min(range(len(labels)), key=lambda k: plain[k])
    forced = []
    for t in lines:
        rows = torch.full((len(split_words(t)), len(labels)), -8.0)
        rows[:, target] = 8.0
        forced.append(rows)
    path = tmp_path / "labels.pt"
    save_labels(path, forced, labels, lines, meta={})
    report, taught = predicted_shares(LabelJob("read", path, lines, 10.0, 1.0))
    assert plain_report.teacher_labels is None
    assert report.teacher_labels == {"read": str(path), "lines": len(lines),
                                     "words": sum(len(split_words(t)) for t in lines)}
    assert taught[target] >= plain[target] + 0.3, (labels[target], plain, taught)
