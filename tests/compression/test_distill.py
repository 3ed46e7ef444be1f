"""distill(): lowers its loss, saves an ordinary HF directory, resumes to the same weights, and keeps the
objective independent of how a step is split into micro-batches."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModel, AutoTokenizer

from core.errors import ConfigError, UserError
from compression.distill.loop import PROJECTION_FILE, DistillConfig, distill, evaluate_loss
from compression.distill.checkpoint import CHECKPOINT_FILE, default_checkpoint_dir
from distill_fixtures import single_thread  # noqa: F401 (fixture)
from distill_fixtures import corpus, save_model, teacher_and_student, tokenizer_for

pytestmark = pytest.mark.usefixtures("single_thread")


def weights(model_dir):
    return load_file(str(model_dir / "model.safetensors"))


def assert_same_weights(a, b, atol=1e-6):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        torch.testing.assert_close(wa[name], wb[name], rtol=0, atol=atol, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("kind,mlm_head,loss,expected", [
    ("bert", True, "auto", "mlm_mse"),
    ("xlmr", True, "mlm_kl", "mlm_kl"),
    ("bert", False, "auto", "hidden_mse"),
    ("xlmr", False, "hidden_cosine", "hidden_cosine"),
])
def test_distillation_lowers_the_loss_and_saves_an_ordinary_model(tmp_path, kind, mlm_head, loss, expected):
    teacher, student = teacher_and_student(tmp_path, kind=kind, mlm_head=mlm_head)
    texts = corpus(40)
    fixed_batch = texts[:16]
    cfg = DistillConfig(loss=loss, epochs=2, batch_size=8, learning_rate=2e-3, warmup_ratio=0.1, log_every=2)
    before = evaluate_loss(student, teacher, fixed_batch, cfg, device="cpu")
    out = tmp_path / "out"
    report = distill(student, teacher, texts, cfg, out, device="cpu", progress=False)
    after = evaluate_loss(out, teacher, fixed_batch, cfg, device="cpu")
    assert report.loss == expected and report.finished
    assert after < 0.95 * before, (before, after)
    assert report.final_loss < report.initial_loss

    tok = AutoTokenizer.from_pretrained(str(student))
    lengths = [len(x) for x in tok(texts, truncation=True, max_length=cfg.max_length)["input_ids"]]
    assert report.tokens_seen == 2 * sum(lengths) and report.texts_seen == 2 * len(texts)
    assert report.epochs == pytest.approx(2.0) and report.steps == report.total_steps == 10
    assert report.world_size == 1 and report.device == "cpu" and report.tokens_per_second > 0

    assert AutoConfig.from_pretrained(str(out)).architectures == AutoConfig.from_pretrained(str(student)).architectures
    model = AutoModel.from_pretrained(str(out), trust_remote_code=False, use_safetensors=True)
    copied = AutoTokenizer.from_pretrained(str(out))
    assert copied(texts)["input_ids"] == tok(texts)["input_ids"]
    with torch.no_grad():
        model(**copied(texts[:2], return_tensors="pt", padding=True))
    assert not default_checkpoint_dir(out).exists()  # removed once the model is saved


def test_width_mismatch_trains_the_projection(tmp_path):
    teacher, student = teacher_and_student(tmp_path, kind="bert", mlm_head=False, student_hidden=16)
    texts = corpus(40)
    cfg = DistillConfig(loss="hidden_mse", layer_map="uniform", epochs=2, batch_size=8, learning_rate=2e-3)
    before = evaluate_loss(student, teacher, texts[:16], cfg, device="cpu")
    report = distill(student, teacher, texts, cfg, tmp_path / "out", device="cpu", progress=False)
    after = evaluate_loss(tmp_path / "out", teacher, texts[:16], cfg, device="cpu")
    assert report.layer_map == {1: 2, 2: 3}
    assert after < 0.95 * before
    projection = load_file(str(tmp_path / "out" / PROJECTION_FILE))
    for layer in ("1", "2"):
        w = projection[f"projections.{layer}.weight"]
        assert w.shape == (32, 16)
        start = torch.zeros(32, 16)
        start[:16, :16] = torch.eye(16)
        assert (w - start).abs().max() > 1e-3  # it moved from its truncation-embedding start


def test_a_student_of_the_hidden_stage_starts_the_projection_from_its_map(tmp_path):
    """A student cut to hidden 16 by SVD lives in a rotated space: the distillation must start its
    projection from the stage's map, not from the truncation embedding, which would pair the
    student's dimensions with the wrong teacher dimensions (a far higher starting loss)."""
    from compression.distill.models import HIDDEN_MAP_FILE
    from compression.schema import HiddenStage
    from compression.stages import hidden

    teacher, _ = teacher_and_student(tmp_path, kind="bert", mlm_head=False)
    student = tmp_path / "svd"
    hidden.apply(teacher, HiddenStage(size=16, init="svd", heads=2), None, student)
    texts = corpus(16)
    cfg = DistillConfig(loss="hidden_mse", layer_map="uniform", batch_size=8)
    from_map = evaluate_loss(student, teacher, texts, cfg, device="cpu")
    (student / HIDDEN_MAP_FILE).unlink()
    from_truncation = evaluate_loss(student, teacher, texts, cfg, device="cpu")
    assert from_map < 0.5 * from_truncation, (from_map, from_truncation)


@pytest.mark.parametrize("loss", ["mlm_mse", "hidden_mse"])
def test_resume_ends_with_the_weights_of_an_uninterrupted_run(tmp_path, loss):
    # dropout on, so that a resumed run must restore the RNG to draw the same dropout masks. fp32: in
    # bf16 a teacher target computed in a batch of another padded width rounds differently (~1e-6)
    teacher, student = teacher_and_student(tmp_path, kind="bert", mlm_head=True, student_dropout=0.1)
    texts = corpus(24)
    cfg = DistillConfig(loss=loss, epochs=3, batch_size=4, grad_accum=2, checkpoint_every=2, learning_rate=1e-3,
                        precision="fp32")
    full = distill(student, teacher, texts, cfg, tmp_path / "full", device="cpu", progress=False)
    assert full.total_steps == 9

    stopped = distill(student, teacher, texts, cfg, tmp_path / "stopped", device="cpu", progress=False,
                      stop_after_steps=5)
    assert not stopped.finished and stopped.steps == 5 and not (tmp_path / "stopped").exists()
    assert (default_checkpoint_dir(tmp_path / "stopped") / CHECKPOINT_FILE).is_file()
    resumed = distill(student, teacher, texts, cfg, tmp_path / "stopped", device="cpu", progress=False)
    assert resumed.finished and resumed.resumed_from_step == 5 and resumed.tokens_seen == full.tokens_seen
    assert_same_weights(tmp_path / "full", tmp_path / "stopped")
    assert [p.step for p in resumed.loss_curve] == [p.step for p in full.loss_curve]

    def crash_at_step_5(step, loss_value):
        if step == 5:
            raise RuntimeError("injected crash")
    with pytest.raises(RuntimeError, match="injected"):
        distill(student, teacher, texts, cfg, tmp_path / "crashed", device="cpu", progress=False,
                on_step=crash_at_step_5)
    after_crash = distill(student, teacher, texts, cfg, tmp_path / "crashed", device="cpu", progress=False)
    assert after_crash.resumed_from_step == 4  # the last checkpoint before the crash
    assert_same_weights(tmp_path / "full", tmp_path / "crashed")


def test_a_checkpoint_of_another_run_is_refused_and_a_finished_run_is_not_redone(tmp_path):
    teacher, student = teacher_and_student(tmp_path, kind="bert", mlm_head=True)
    texts = corpus(16)
    cfg = DistillConfig(steps=4, batch_size=4)
    distill(student, teacher, texts, cfg, tmp_path / "out", device="cpu", progress=False, stop_after_steps=2)
    with pytest.raises(UserError, match="different distillation run"):
        distill(student, teacher, texts, cfg.model_copy(update={"learning_rate": 1e-3}), tmp_path / "out",
                device="cpu", progress=False)
    first = distill(student, teacher, texts, cfg, tmp_path / "out", device="cpu", progress=False)
    steps_taken = []
    again = distill(student, teacher, texts, cfg, tmp_path / "out", device="cpu", progress=False,
                    on_step=lambda step, loss: steps_taken.append(step))
    assert steps_taken == [] and again == first


def test_gradient_accumulation_does_not_change_the_result(tmp_path):
    teacher, student = teacher_and_student(tmp_path, kind="xlmr", mlm_head=True)
    texts = corpus(24, max_words=30)  # lengths vary, so micro-batches hold different numbers of tokens
    common = dict(loss="mlm_mse", steps=4, learning_rate=1e-3, warmup_ratio=0.0)
    one = distill(student, teacher, texts, DistillConfig(batch_size=8, **common), tmp_path / "one",
                  device="cpu", progress=False)
    accumulated = distill(student, teacher, texts, DistillConfig(batch_size=2, grad_accum=4, **common),
                          tmp_path / "acc", device="cpu", progress=False)
    assert [p.loss for p in accumulated.loss_curve] == pytest.approx([p.loss for p in one.loss_curve], rel=1e-5)
    assert_same_weights(tmp_path / "one", tmp_path / "acc", atol=1e-5)


def test_user_errors_are_one_line_and_name_the_fix(tmp_path):
    teacher, student = teacher_and_student(tmp_path, kind="bert", mlm_head=False)
    with pytest.raises(ConfigError, match="needs an MLM head"):
        distill(student, teacher, corpus(8), DistillConfig(loss="mlm_kl", steps=1), tmp_path / "o", progress=False)
    with pytest.raises(ConfigError, match="steps or epochs"):
        DistillConfig.from_mapping({"steps": 3, "epochs": 1})
    with pytest.raises(ConfigError, match="learning_rte"):
        DistillConfig.from_mapping({"learning_rte": 0.1})
    with pytest.raises(UserError, match="no non-empty text"):
        distill(student, teacher, ["", "  "], DistillConfig(steps=1), tmp_path / "o", progress=False)
    bare = save_model(tmp_path / "no-weights", tokenizer_for("bert"))
    (bare / "model.safetensors").unlink()
    with pytest.raises(UserError, match="safetensors"):
        distill(bare, teacher, corpus(8), DistillConfig(steps=1), tmp_path / "o", progress=False)


@pytest.mark.parametrize("mlm_head", [True, False])
def test_bf16_autocast_path_trains(tmp_path, mlm_head):
    """bf16 (forced): the student trains under autocast, the teacher runs cast to bf16."""
    teacher, student = teacher_and_student(tmp_path, kind="xlmr", mlm_head=mlm_head, student_hidden=16)
    texts = corpus(32)
    cfg = DistillConfig(precision="bf16", epochs=2, batch_size=8, learning_rate=2e-3, log_every=2)
    report = distill(student, teacher, texts, cfg, tmp_path / "out", device="cpu", progress=False)
    assert report.precision == "bf16" and report.final_loss < report.initial_loss
    assert report.tokens_per_second > 0 and report.tflops > 0 and report.flops_per_token > 0
    assert all(t.dtype == torch.float32 for t in weights(tmp_path / "out").values())  # master weights stay fp32


def test_fp32_when_forced_and_the_old_switch_is_explained(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CPU_BF16", "1")  # auto would pick bf16 here
    teacher, student = teacher_and_student(tmp_path, kind="bert", mlm_head=False)
    report = distill(student, teacher, corpus(16), DistillConfig(precision="fp32", steps=2, batch_size=8),
                     tmp_path / "out", device="cpu", progress=False)
    assert report.precision == "fp32"
    with pytest.raises(ConfigError, match="replaced by `precision"):
        DistillConfig.from_mapping({"bf16": True})


@pytest.mark.parametrize("loss", ["minilm", "minilm_hidden", "tinybert"])
def test_attention_losses_train_a_student(tmp_path, loss):
    teacher, student = teacher_and_student(tmp_path, kind="bert", mlm_head=False)
    cfg = DistillConfig(loss=loss, epochs=3, batch_size=8, learning_rate=2e-3, log_every=2, relation_heads=2)
    report = distill(student, teacher, corpus(32), cfg, tmp_path / "out", device="cpu", progress=False)
    assert report.loss == loss and report.final_loss < report.initial_loss


def test_minilm_works_across_widths_tinybert_needs_equal_heads(tmp_path):
    from types import SimpleNamespace
    from compression.distill.loop import _attention_spec
    teacher, student = teacher_and_student(tmp_path, kind="xlmr", mlm_head=False, student_hidden=16)
    cfg = DistillConfig(loss="minilm", steps=2, batch_size=8, relation_heads=2)
    assert distill(student, teacher, corpus(16), cfg, tmp_path / "a", device="cpu", progress=False).finished
    s_cfg = SimpleNamespace(num_hidden_layers=6, num_attention_heads=8)
    t_cfg = SimpleNamespace(num_hidden_layers=12, num_attention_heads=12)
    with pytest.raises(ConfigError, match="use loss: minilm"):
        _attention_spec("tinybert", DistillConfig(loss="tinybert"), s_cfg, t_cfg, {6: 12})
    spec = _attention_spec("minilm", DistillConfig(loss="minilm", relation_layer=10), s_cfg, t_cfg, {6: 12})
    assert spec.relation == (6, 10) and spec.teacher_targets() == ["q10", "k10", "v10"]


def test_module_entry_point_reads_texts_and_config_and_reports_errors(tmp_path, capsys):
    from cli.distill import main
    teacher, student = teacher_and_student(tmp_path, kind="bert", mlm_head=False)
    texts = tmp_path / "texts.jsonl"
    texts.write_text("\n".join(json.dumps({"text": t}) for t in corpus(16)) + "\n", encoding="utf-8")
    code = main(["--student", str(student), "--teacher", str(teacher), "--texts", str(texts), "--out",
                 str(tmp_path / "out"), "--config", '{"steps": 2, "batch_size": 4}', "--no-progress",
                 "--report", str(tmp_path / "report.json")])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((tmp_path / "report.json").read_text())
    assert printed["steps"] == 2 and printed["loss"] == "hidden_mse" and printed["n_texts"] == 16
    code = main(["--student", str(student), "--teacher", str(teacher), "--texts", str(texts), "--out",
                 str(tmp_path / "out2"), "--config", '{"stepz": 2}'])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: distill config: stepz") and "\n" not in err


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the swallowed one
def test_a_sigterm_lost_in_a_destructor_still_stops_after_the_step_and_resumes(lost_sigterm, tmp_path):
    from core import interrupt

    teacher, student = teacher_and_student(tmp_path, kind="bert", mlm_head=False)
    cfg = DistillConfig(steps=4, batch_size=4, checkpoint_every=1, precision="fp32")
    steps = []
    with pytest.raises(KeyboardInterrupt):
        distill(student, teacher, corpus(16), cfg, tmp_path / "out", device="cpu", progress=False,
                on_step=lambda step, loss: steps.append(step))
    assert steps == [1]
    interrupt.clear()
    resumed = distill(student, teacher, corpus(16), cfg, tmp_path / "out", device="cpu", progress=False)
    assert resumed.finished and resumed.resumed_from_step == 1
