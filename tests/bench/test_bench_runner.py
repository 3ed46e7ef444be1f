"""Planning, the store round trip (skip when stored, failed rows) and an end-to-end bench."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.bench import repeats
from cli.bench import bench, format_table
from harness.bench.config import BenchSection
from harness.bench.isolate import ChildFailed
from harness.bench.measure import Job, run_job
from harness.bench.results import RowKey, stored_done, write_rows
from harness.bench.runner import BenchModel, bench_models, plan_jobs, real_target
from tasks.types import SequenceExample

T, S1, S2 = "teacher", "student-mlt", "student-swh"


def _models(path: Path = Path("/nowhere")) -> list[BenchModel]:
    return [BenchModel(T, path, T), BenchModel(S1, path, T, "mlt_Latn"),
            BenchModel(S2, path, T, "swh_Latn")]


# -- planning (no child processes) -----------------------------------------------------------

def test_plan_covers_every_shape_target_and_real_language():
    section = BenchSection(devices=["cpu"], real_languages=["slk_Latn"])
    plan = plan_jobs(_models(), section, done=set(), cuda_available=False)
    assert plan.notes == []
    by_model = {g.model.model_key: g for g in plan.groups}
    teacher = by_model[T]
    synthetic = [p for p in teacher.jobs if "real" not in p.job.targets]
    real = [p for p in teacher.jobs if "real" in p.job.targets]
    assert len(synthetic) == 6 and all(p.job.targets == ("first_forward", "forward") for p in synthetic)
    # The teacher runs its students' languages and the configured one, at every batch size.
    assert {p.job.real_language for p in real} == {"mlt_Latn", "swh_Latn", "slk_Latn"}
    assert len(real) == 3 * 3
    assert {p.keys["real"].target for p in real} >= {real_target("topic", "mlt_Latn")}
    assert {p.job.real_language for p in by_model[S1].jobs if "real" in p.job.targets} == {"mlt_Latn"}
    assert teacher.load_key == RowKey(T, "load", "cpu", "fp32", 0, 0)


def test_plan_on_a_gpu_machine_adds_cuda_in_fp32_and_bf16(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)  # a GPU with bf16, as far as the plan asks
    monkeypatch.setattr("torch.cuda.is_bf16_supported", lambda *a, **k: True)
    plan = plan_jobs(_models()[:1], BenchSection(targets=["forward"]), done=set(), cuda_available=True)
    assert {(g.device, g.dtype) for g in plan.groups} == {("cuda", "fp32"), ("cuda", "bf16"), ("cpu", "fp32")}


def test_a_gpu_named_by_index_is_stored_as_its_device_type():
    section = BenchSection(devices=["cuda:1"], dtypes=["fp32"], targets=["forward"], batch_sizes=[1],
                           seq_lens=[128])
    (group,) = plan_jobs(_models()[:1], section, done=set(), cuda_available=True).groups
    (planned,) = group.jobs
    assert planned.job.device == "cuda:1" and planned.keys["forward"].device == "cuda"
    assert group.dtype == "fp32"


def test_plan_skips_stored_rows_and_keeps_a_load_only_job():
    section = BenchSection(devices=["cpu"], batch_sizes=[1], seq_lens=[128],
                           targets=["load", "first_forward", "forward"])
    models = _models()[:1]
    full = plan_jobs(models, section, done=set(), cuda_available=False)
    keys = {k for p in full.groups[0].jobs for k in p.keys.values()}
    partial = plan_jobs(models, section, done={k for k in keys if k.target == "first_forward"},
                        cuda_available=False)
    assert [p.job.targets for p in partial.groups[0].jobs] == [("forward",)]
    load_only = plan_jobs(models, section, done=keys, cuda_available=False)
    assert [p.job.targets for p in load_only.groups[0].jobs] == [()]
    assert plan_jobs(models, section, done=keys | {full.groups[0].load_key},
                     cuda_available=False).groups == []


def test_real_target_without_a_language_is_noted_not_run():
    plan = plan_jobs(_models()[:1], BenchSection(devices=["cpu"], targets=["real"]), done=set(),
                     cuda_available=False)
    assert plan.groups == []
    assert "benchmark.real_languages" in plan.notes[0]


# -- the store round trip --------------------------------------------------------------------

def _row(key: RowKey, status: str = "done", p50: float = 1.0) -> dict:
    return {"bench_id": key.bench_id, **key.__dict__, "status": status,
            "error": None if status == "done" else "boom", "latency_p50_ms": p50,
            "raw_latencies_ms": [p50], "environment": {"x": 1},
            "cpu_baseline_rss_mb": 1.0}  # not a column (yet): must be left out, not fail


def test_rows_round_trip_and_replace_by_key(store):
    a, b = RowKey("m", "forward", "cpu", "fp32", 1, 128), RowKey("m", "forward", "cpu", "fp32", 8, 128)
    write_rows(store, [_row(a), _row(b, "failed")])
    assert stored_done(store, ["m"]) == {a}  # a failed row is measured again
    write_rows(store, [_row(a, p50=2.0), _row(b)])
    _, rows = store.query("SELECT batch_size, latency_p50_ms, raw_latencies_ms, environment "
                          "FROM benchmarks ORDER BY batch_size")
    assert [(r[0], r[1]) for r in rows] == [(1, 2.0), (8, 1.0)]
    assert json.loads(rows[0][2]) == [2.0] and json.loads(rows[0][3]) == {"x": 1}
    assert stored_done(store, ["m"]) == {a, b}
    assert stored_done(store, ["other"]) == set()


def test_a_dead_child_fails_its_rows_and_the_rest_goes_on(monkeypatch, store, quick_section):
    calls = []

    def fake_run_in_child(fn, job, env=None):
        calls.append(job)
        raise ChildFailed("the measuring process was killed by SIGKILL (likely out of memory)")

    monkeypatch.setattr(repeats, "run_in_child", fake_run_in_child)
    section = quick_section.model_copy(update={"seq_lens": [8, 16]})
    rows = bench_models(_models()[:2], section, store)
    assert len(calls) == 4  # every job was tried
    assert {r["status"] for r in rows} == {"failed"}
    assert all("SIGKILL" in r["error"] for r in rows)
    assert {r["target"] for r in rows} == {"load", "first_forward", "forward"}


# -- measuring for real --------------------------------------------------------------------------

def test_end_to_end_bench_of_a_tiny_teacher_and_student(store, quick_section, tiny_bert, tiny_student):
    # 100 > 64 positions; memory measured in separate processes (one per job with one repeat)
    section = quick_section.model_copy(update={"seq_lens": [8, 100], "memory_mmap_threshold": 65536})
    models = [BenchModel("tiny", tiny_bert, "tiny"), BenchModel("tiny-1l", tiny_student, "tiny", "mlt_Latn")]
    printed: list[str] = []
    table = bench(models, section, store, echo=printed.append)
    assert len(table) == 2 * 5  # per model: load + 2 targets x 2 shapes

    done = [r for r in table if r["status"] == "done"]
    failed = [r for r in table if r["status"] == "failed"]
    assert len(done) == 2 * 3 and len(failed) == 2 * 2
    assert all(r["seq_len"] == 100 and "exceeds the model's 64 positions" in r["error"] for r in failed)

    _, stored = store.query("SELECT * FROM benchmarks WHERE status = 'done'")
    cols = [c for c in store.query("SELECT * FROM benchmarks LIMIT 0")[0]]
    for values in stored:
        r = dict(zip(cols, values))
        raw = json.loads(r["raw_latencies_ms"])
        assert len(raw) == r["n_iterations"] and all(v > 0 for v in raw)
        assert r["latency_p50_ms"] <= r["latency_p90_ms"] <= r["latency_p99_ms"]
        env = json.loads(r["environment"])
        assert env["process"]["torch_threads"] == 1 and env["process"]["malloc_env"] == {}
        assert env["memory_env"] == {"MALLOC_MMAP_THRESHOLD_": "65536"} and r["repeats"] == 1
        assert r["latency_p50_spread"] is None and r["cpu_model_rss_spread"] is None
        assert len(json.loads(r["per_repeat"])["cpu_peak_rss_mb"]) == 1
        baseline = env["process"]["cpu_baseline_rss_mb"]
        assert r["cpu_peak_rss_mb"] > baseline > 50  # an interpreter with torch imported
        assert r["cuda_peak_allocated_mb"] is None
        if r["target"] == "forward":
            assert r["n_iterations"] >= 3
            assert r["throughput_seq_s"] == pytest.approx(2 / (r["latency_mean_ms"] / 1e3))
            assert r["throughput_tok_s"] == pytest.approx(r["throughput_seq_s"] * 8)
        if r["target"] == "load":
            assert (r["batch_size"], r["seq_len"]) == (0, 0)
            assert r["n_iterations"] == 1  # one load per measuring process; seq 100 started none
            assert r["throughput_seq_s"] is None

    # Both models were registered, so the view pairs the student with its teacher.
    assert store.model("tiny-1l")["teacher_key"] == "tiny"
    assert store.model("tiny-1l")["compression_ratio"] > 1
    student = {(r["target"], r["seq_len"]): r for r in table if r["model_key"] == "tiny-1l"}
    fwd = student[("forward", 8)]
    teacher_fwd = next(r for r in table if r["model_key"] == "tiny" and r["target"] == "forward"
                       and r["seq_len"] == 8)
    assert fwd["speedup_p50"] == pytest.approx(teacher_fwd["latency_p50_ms"] / fwd["latency_p50_ms"])
    assert fwd["cpu_memory_ratio"] == pytest.approx(fwd["cpu_peak_rss_mb"] / teacher_fwd["cpu_peak_rss_mb"])
    assert 0 < fwd["cpu_model_rss_mb"] < fwd["cpu_peak_rss_mb"]
    assert fwd["cpu_model_memory_ratio"] == pytest.approx(fwd["cpu_model_rss_mb"] / teacher_fwd["cpu_model_rss_mb"])
    text = "\n".join(printed)
    assert "tiny-1l" in text and "teacher" in text and "failed: seq_len 100 exceeds" in text

    # A second run measures only what failed; done rows stay as they were.
    before = store.query("SELECT bench_id, created_at FROM benchmarks WHERE status = 'done'")[1]
    again = bench_models(models, section, store)
    assert {(r["target"], r["seq_len"], r["status"]) for r in again} == {
        ("first_forward", 100, "failed"), ("forward", 100, "failed")}
    assert store.query("SELECT bench_id, created_at FROM benchmarks WHERE status = 'done'")[1] == before


def test_real_target_counts_whole_passes_over_the_examples(monkeypatch, tiny_bert):
    """run_job in this process, with the task's test split replaced by five sentences."""
    import harness.bench.shapes as shapes

    texts = ["the cat runs", "a dog", "the big red house sleeps", "dog", "the small blue cat"]
    monkeypatch.setattr(shapes, "load_real_examples",
                        lambda task, lang, data_dir: [SequenceExample(t, "x") for t in texts])
    job = Job(str(tiny_bert), "cpu", "fp32", 2, 64, ("real",), warmup=0, min_iterations=4,
              min_duration_s=0.0, real_task="topic", real_language="mlt_Latn")
    out = run_job(job)["targets"]["real"]
    assert "error" not in out, out.get("error")
    assert out["n_batches"] == 3 and out["n_examples"] == 5
    passes = len(out["values_ms"]) // 3
    assert len(out["values_ms"]) % 3 == 0 and passes >= 2
    assert out["n_sequences"] == 5 * passes
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_bert)
    assert out["n_tokens"] == passes * sum(len(tok(t)["input_ids"]) for t in texts)


def test_load_row_has_one_value_per_process_and_the_median_peak():
    key = RowKey("m", "load", "cpu", "fp32", 0, 0)
    memories = [{"cpu_peak_rss_mb": 900.0, "cpu_baseline_rss_mb": 400.0},
                {"cpu_peak_rss_mb": 950.0, "cpu_baseline_rss_mb": 410.0, "notes": ["n"]},
                {"cpu_peak_rss_mb": 990.0, "cpu_baseline_rss_mb": 410.0}]
    samples = [{"values_ms": [v], "memory": m} for v, m in zip([100.0, 120.0, 180.0], memories)]
    row = repeats.load_row(key, repeats.GroupLoads(samples=samples), {"versions": {}})
    assert row["status"] == "done" and row["n_iterations"] == row["repeats"] == 3
    assert row["latency_p50_ms"] == 120.0 and row["latency_p50_spread"] == pytest.approx(80 / 120)
    assert row["cpu_peak_rss_mb"] == 950.0 and row["environment"]["memory_notes"] == ["n"]
    # With memory processes, the memory comes from them only.
    separate = repeats.load_row(key, repeats.GroupLoads(samples=samples, memories=memories[:2]), {},
                               separate_memory=True)
    assert separate["cpu_peak_rss_mb"] == 925.0 and separate["n_iterations"] == 3
    missing = repeats.load_row(key, repeats.GroupLoads(samples=samples, deaths=["killed"]), {},
                              separate_memory=True)
    assert missing["status"] == "failed" and missing["error"] == "killed"
    failed = repeats.load_row(key, repeats.GroupLoads(samples=samples,
                                                     errors=["Traceback\nOSError: no weights"]), {})
    assert failed["status"] == "failed" and "no weights" in failed["error"]


def test_run_job_without_a_tokenizer_draws_from_the_config_vocabulary(tiny_bert, tmp_path):
    """transformers 5 'loads' an empty tokenizer from a directory without one: it must not be used."""
    import shutil

    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_bert / name, bare / name)
    out = run_job(Job(str(bare), "cpu", "fp32", 2, 16, ("first_forward", "forward"), warmup=0,
                      min_iterations=2, min_duration_s=0.0))["targets"]
    assert "error" not in out["load"] and "error" not in out["first_forward"], out
    assert len(out["forward"]["values_ms"]) >= 2


def test_a_target_that_fails_keeps_the_load_and_says_why_forward_was_skipped(tiny_bert):
    out = run_job(Job(str(tiny_bert), "cpu", "fp32", 1, 65, ("first_forward", "forward"),
                      warmup=0, min_iterations=1, min_duration_s=0.0))["targets"]
    assert "error" not in out["load"] and out["load"]["values_ms"]
    assert "exceeds the model's 64 positions" in out["first_forward"]["error"]
    assert out["forward"]["error"].startswith("not run: the first forward at this shape failed")
    assert "exceeds" in out["forward"]["error"]


def test_run_job_reports_a_model_that_does_not_load(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    out = run_job(Job(str(tmp_path), "cpu", "fp32", 1, 8, ("forward",)))
    assert "error" in out["targets"]["load"]


@pytest.mark.real_data
def test_real_target_on_the_real_test_split(data_dir, store, quick_section, tiny_bert):
    section = quick_section.model_copy(update={"targets": ["real"], "real_task": "topic",
                                               "real_max_length": 64})
    rows = bench_models([BenchModel("tiny", tiny_bert, "tiny", "mlt_Latn")], section, store,
                        data_dir=data_dir)
    (row,) = rows
    assert row["status"] == "done", row["error"]
    assert row["target"] == "real:topic:mlt_Latn" and row["seq_len"] == 64
    assert row["environment"]["n_examples"] == 204  # SIB-200's test split
    assert row["throughput_seq_s"] > 0 and row["throughput_tok_s"] > row["throughput_seq_s"]


def test_format_table_shows_figures_failures_and_the_teacher():
    base = {"device": "cpu", "dtype": "fp32", "batch_size": 1, "seq_len": 128, "error": None,
            "latency_p50_ms": 10.0, "latency_p90_ms": 12.0, "throughput_seq_s": 100.0,
            "throughput_tok_s": 12800.0, "cpu_peak_rss_mb": 900.0, "cuda_peak_allocated_mb": None,
            "cpu_model_rss_mb": 480.0, "cpu_memory_ratio": None, "cpu_model_memory_ratio": None,
            "cuda_memory_ratio": None, "speedup_p50": None,
            "target": "forward", "status": "done", "teacher_key": "t"}
    rows = [base | {"model_key": "t"},
            base | {"model_key": "s", "latency_p50_ms": 5.0, "speedup_p50": 2.0, "cpu_memory_ratio": 0.8,
                    "cpu_model_rss_mb": 240.0, "cpu_model_memory_ratio": 0.5},
            base | {"model_key": "s", "batch_size": 32, "status": "failed",
                    "error": "Traceback...\nRuntimeError: out of memory"}]
    text = format_table(rows)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["model", "target", "device"]
    assert "teacher" in lines[2] and "2.00" in lines[3] and "0.50" in lines[3] and "0.80" not in lines[3]
    assert lines[2].split()[11:13] == ["900", "480"]  # peak MB, model MB
    assert lines[4].endswith("failed: RuntimeError: out of memory")
    assert "12,800" in lines[2]
