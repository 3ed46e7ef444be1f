"""Fine-tuning on the embedding rows a run can index (harness/finetune/used_rows.py) computes what
fine-tuning the whole matrix computes: the same scores and, once restored, the same weights,
including the untouched rows' weight decay."""
from __future__ import annotations

import pytest
import torch

from harness.finetune import used_rows
from harness.finetune.protocol import Protocol
from harness.finetune.train import Finetuner
from tasks.registry import get_task, load_task_data
from tests.conftest import save_tiny_model


def _run(model_dir, task, data, share, monkeypatch, **proto):
    monkeypatch.setattr(used_rows, "MAX_SHARE", share)
    resolved = Protocol(epochs=3, batch_size=8, learning_rate=3e-3, weight_decay=0.1, precision="fp32",
                        **proto).resolve(task)
    tuner = Finetuner(model_dir, get_task(task), data, resolved, seed=5, progress=False)
    result = tuner.run()
    return tuner, {(s.split, s.metric): s.value for s in result.scores}


@pytest.mark.parametrize("kind, task", [("bert", "toy_topic"), ("xlmr", "toy_pos")])
def test_used_rows_give_the_full_matrix_results(kind, task, toy_tasks, tmp_path, monkeypatch):
    model_dir = save_tiny_model(tmp_path / kind, kind, seed=0)
    data = load_task_data(task, "mlt_Latn", toy_tasks)
    full, full_scores = _run(model_dir, task, data, 0.0, monkeypatch)       # never swapped
    part, part_scores = _run(model_dir, task, data, 1.0, monkeypatch)       # always swapped
    assert full.report.embedding_rows is None
    used, total = part.report.embedding_rows
    assert 0 < used < total                       # the toy data reaches only some of the vocabulary
    assert part_scores == pytest.approx(full_scores, abs=1e-6)
    a, b = full.trained.state_dict(), part.trained.state_dict()
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-5, atol=1e-6, msg=name)
    emb = part.trained.base_model.get_input_embeddings()
    assert isinstance(emb, torch.nn.Embedding) and emb.num_embeddings == total   # the full matrix is back
    # and the untouched rows did move: weight decay alone, as in the full run
    initial = save_tiny_model(tmp_path / "again", kind, seed=0)
    from models.loading import load_encoder
    before = load_encoder(initial).get_input_embeddings().weight
    assert not torch.equal(emb.weight, before)


def test_no_swap_where_it_would_not_pay(toy_tasks, tmp_path, monkeypatch):
    model_dir = save_tiny_model(tmp_path / "bert", "bert", seed=0)
    data = load_task_data("toy_topic", "mlt_Latn", toy_tasks)
    tuner, _ = _run(model_dir, "toy_topic", data, used_rows.MAX_SHARE, monkeypatch, freeze_embeddings=True)
    assert tuner.report.embedding_rows is None    # a frozen embedding has nothing to save


def test_the_module_indexes_by_original_id_and_keeps_padding():
    full = torch.nn.Embedding(10, 3, padding_idx=1)
    rows = torch.tensor([1, 4, 7])
    part = used_rows.UsedRowsEmbedding(full, rows)
    ids = torch.tensor([[4, 7, 1]])
    torch.testing.assert_close(part(ids), full(ids))
    part(ids).sum().backward()
    assert part.weight.grad[part.padding_idx].abs().sum() == 0   # the padding row gets no gradient


def test_teacher_labels_on_text_the_task_data_never_uses(toy_tasks, tmp_path, monkeypatch):
    """The unlabeled lines reach rows no split does: they are swapped in too, and the teacher's
    labels and a student's run from them come out as with the whole matrix."""
    from harness.finetune.teacher_labels import LabelJob, load_labels

    model_dir = save_tiny_model(tmp_path / "bert", "bert", seed=0)
    data = load_task_data("toy_topic", "mlt_Latn", toy_tasks)
    texts = ("xyzzy plugh", "the quux sleeps", "frobnicate the red cat")
    proto = Protocol(epochs=2, batch_size=8, learning_rate=3e-3, precision="fp32").resolve("toy_topic")
    out = {}
    for share in (0.0, 1.0):
        monkeypatch.setattr(used_rows, "MAX_SHARE", share)
        path = tmp_path / f"labels-{share}.pt"
        Finetuner(model_dir, get_task("toy_topic"), data, proto, seed=2, progress=False,
                  label_job=LabelJob("write", path, texts, 1.0, 2.0)).run()
        student = Finetuner(model_dir, get_task("toy_topic"), data, proto, seed=3, progress=False,
                            label_job=LabelJob("read", path, texts, 1.0, 2.0))
        result = student.run()
        out[share] = (load_labels(path, list(data.labels), texts), result.scores, student.report.embedding_rows)
    torch.testing.assert_close(out[1.0][0], out[0.0][0], rtol=1e-5, atol=1e-5)
    assert [s.value for s in out[1.0][1]] == pytest.approx([s.value for s in out[0.0][1]], abs=1e-6)
    assert out[0.0][2] is None and out[1.0][2] is not None
