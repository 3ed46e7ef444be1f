"""The teacher-target store: the same targets as computed live (to bf16 tolerance), shared between
distillations from the same teacher on the same text, rebuilt when the text changes."""
from __future__ import annotations

import torch

from compression.distill.loop import DistillConfig, distill
from compression.distill.models import load_model, load_tokenizer
from compression.distill.objective import Teacher
from compression.distill.target_store import TeacherTargetStore, teacher_digest, worth_it
from distill_fixtures import corpus, single_thread, teacher_and_student  # noqa: F401 (fixture)


def _teacher(path):
    model = load_model(path, with_mlm_head=False).to(torch.bfloat16)
    return Teacher(model, "minilm_hidden", token_map=None, vocab_size=0, teacher_layers=[1, 3, "q3", "k3", "v3"],
                   cache=None)


def test_stored_targets_equal_live_ones(tmp_path):
    teacher_dir, _ = teacher_and_student(tmp_path, kind="xlmr", mlm_head=False)
    tok = load_tokenizer(teacher_dir)
    ids = tok(corpus(20), truncation=True, max_length=32)["input_ids"]
    teacher = _teacher(teacher_dir)
    store = TeacherTargetStore(tmp_path / "store", teacher_id=teacher_digest(teacher_dir), precision="bf16",
                               ids=ids, names=teacher.teacher_layers)
    assert store.missing() == teacher.teacher_layers
    width = teacher.model.config.hidden_size
    store.ensure(teacher.compute_targets, ids, tok.pad_token_id, torch.device("cpu"),
                 {n: width for n in teacher.teacher_layers}, progress=False)
    assert store.missing() == []
    batch = [3, 0, 7]
    lengths = [len(ids[i]) for i in batch]
    stored = store.lookup(batch, lengths, teacher.teacher_layers)
    padded = torch.full((3, max(lengths)), tok.pad_token_id)
    mask = torch.zeros_like(padded)
    for row, i in enumerate(batch):
        padded[row, :lengths[row]] = torch.tensor(ids[i])
        mask[row, :lengths[row]] = 1
    live = teacher.compute_targets(padded, mask)
    for name in teacher.teacher_layers:
        for row, n in enumerate(lengths):
            torch.testing.assert_close(stored[name][row, :n].float(), live[name][row, :n].float(),
                                       atol=2e-2, rtol=2e-2)
            assert not stored[name][row, n:].any()  # padding stays zero


def test_store_is_shared_between_runs_and_rebuilt_for_new_text(tmp_path):
    teacher_dir, student_dir = teacher_and_student(tmp_path, kind="bert", mlm_head=False)
    root = tmp_path / "targets"
    cfg = DistillConfig(loss="hidden_mse", epochs=3, batch_size=8, precision="bf16", teacher_store="on",
                        log_every=2, learning_rate=2e-3)
    first = distill(student_dir, teacher_dir, corpus(24), cfg, tmp_path / "a", progress=False,
                    target_store_dir=root)
    assert first.teacher_cache["disk_store"] == 1.0 and first.final_loss < first.initial_loss
    (ids_dir,) = root.iterdir()
    files = {p.name: p.stat().st_mtime_ns for p in ids_dir.glob("*.bf16")}
    assert len(files) == len(first.layer_map)

    # another objective on the same text and teacher: the hidden-state files are read, not rebuilt
    second = distill(student_dir, teacher_dir, corpus(24),
                     cfg.model_copy(update={"loss": "minilm_hidden", "relation_heads": 2}), tmp_path / "b",
                     progress=False, target_store_dir=root)
    assert second.teacher_cache["disk_store"] == 1.0
    after = {p.name: p.stat().st_mtime_ns for p in ids_dir.glob("*.bf16")}
    assert {k: after[k] for k in files} == files and len(after) == len(files) + 3  # + q, k, v

    distill(student_dir, teacher_dir, corpus(24, seed=5), cfg, tmp_path / "c", progress=False,
            target_store_dir=root)
    assert len(list(root.iterdir())) == 2  # new text: a new set of files


def test_auto_uses_the_store_only_where_it_pays(tmp_path):
    assert worth_it(300, 100, False) and not worth_it(120, 100, False) and worth_it(10, 100, True)
    teacher_dir, student_dir = teacher_and_student(tmp_path, kind="bert", mlm_head=False)
    one_pass = DistillConfig(loss="hidden_mse", epochs=1, batch_size=8, precision="bf16")
    report = distill(student_dir, teacher_dir, corpus(24), one_pass, tmp_path / "a", progress=False,
                     target_store_dir=tmp_path / "targets")
    assert report.teacher_cache["disk_store"] == 0.0 and not (tmp_path / "targets").exists()
    fp32 = DistillConfig(loss="hidden_mse", epochs=3, batch_size=8, precision="fp32")
    report = distill(student_dir, teacher_dir, corpus(24), fp32, tmp_path / "b", progress=False,
                     target_store_dir=tmp_path / "targets")
    assert report.teacher_cache["disk_store"] == 0.0  # bf16 targets would round an fp32 run's
