"""Repeats: interleaved rounds of fresh processes, the median-of-p50 and spread arithmetic,
rows written after their last repeat, failing repeats, and the memory processes' environment."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from harness.bench import repeats
from harness.bench.combine import combine, median, spread
from cli.bench import UNSTABLE_SPREAD, bench, format_table, is_unstable
from harness.bench.config import BenchSection, load_bench_section
from harness.bench.isolate import ChildFailed, run_in_child
from harness.bench.runner import BenchModel, bench_models
from core.errors import ConfigError

MMAP_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536"}


# -- the arithmetic ------------------------------------------------------------------------------

def _sample(values, peak=None, baseline=None, n_sequences=0):
    return {"values_ms": values, "n_sequences": n_sequences, "n_tokens": n_sequences * 8,
            "memory": {"cpu_peak_rss_mb": peak, "cpu_baseline_rss_mb": baseline, "notes": []}}


def test_spread_and_median_by_hand():
    assert spread([12.0, 21.0, 14.0]) == pytest.approx((21 - 12) / 14)
    assert spread([5.0]) is None and spread([]) is None   # nothing to compare
    assert spread([3.0, None, 3.0]) == 0.0                 # a missing figure is left out
    assert spread([0.0, 0.0]) is None                      # no scale to divide by
    assert median([1.0, None, 5.0, 3.0]) == 3.0 and median([None]) is None


def test_combine_takes_the_median_of_per_process_p50s_and_pools_the_rest():
    samples = [_sample([10.0, 12.0, 14.0], 900.0, 400.0, n_sequences=6),       # p50 12
               _sample([20.0, 22.0], 950.0, 410.0, n_sequences=4),             # p50 21
               _sample([11.0, 13.0, 15.0, 17.0], 1000.0, 420.0, n_sequences=8)]  # p50 14
    row = combine(samples)
    assert row["repeats"] == 3 and row["n_iterations"] == 9
    assert row["latency_p50_ms"] == 14.0                      # median of 12, 21, 14
    assert row["latency_p50_spread"] == pytest.approx(9 / 14)  # (21 - 12) / 14
    pooled = [10, 12, 14, 20, 22, 11, 13, 15, 17]
    assert row["latency_mean_ms"] == pytest.approx(134 / 9)
    assert row["latency_std_ms"] == pytest.approx(np.std(pooled))
    assert row["latency_p90_ms"] == pytest.approx(20.4)       # sorted: ... 17, 20, 22; 8 * 0.9 = 7.2
    assert row["raw_latencies_ms"] == pooled
    assert row["throughput_seq_s"] == pytest.approx(18 / 0.134)  # all the work / all the time
    assert row["throughput_tok_s"] == pytest.approx(18 * 8 / 0.134)
    # Memory: the median of each column; spreads of the peak and of peak - baseline.
    assert row["cpu_peak_rss_mb"] == 950.0 and row["cpu_baseline_rss_mb"] == 410.0
    assert row["cpu_peak_rss_spread"] == pytest.approx(100 / 950)
    assert row["cpu_model_rss_spread"] == pytest.approx((580 - 500) / 540)
    assert row["cuda_peak_allocated_mb"] is None and row["cuda_peak_allocated_spread"] is None
    assert row["per_repeat"] == {"latency_p50_ms": [12.0, 21.0, 14.0], "n_iterations": [3, 2, 4],
                                 "cpu_peak_rss_mb": [900.0, 950.0, 1000.0],
                                 "cpu_baseline_rss_mb": [400.0, 410.0, 420.0]}


def test_one_slow_process_barely_moves_the_p50():
    fast = [_sample([10.0, 10.0, 10.0]), _sample([10.2, 10.2, 10.2])]
    row = combine(fast + [_sample([30.0, 30.0, 30.0])])
    assert row["latency_p50_ms"] == 10.2                      # a pooled p50 would be 10.2 too, but:
    assert row["latency_p50_spread"] == pytest.approx(20 / 10.2)    # the spread shows the outlier
    assert row["latency_mean_ms"] == pytest.approx((30 + 30.6 + 90) / 9)


def test_memory_of_separate_memory_processes_replaces_the_latency_processes_figures():
    samples = [_sample([1.0], 999.0, 1.0), _sample([1.0], 999.0, 1.0)]
    memories = [{"cpu_peak_rss_mb": 510.0, "cpu_baseline_rss_mb": 400.0, "notes": ["n"]},
                {"cpu_peak_rss_mb": 500.0, "cpu_baseline_rss_mb": 400.0, "notes": []}]
    row = combine(samples, memories)
    assert row["cpu_peak_rss_mb"] == 505.0 and row["per_repeat"]["cpu_peak_rss_mb"] == [510.0, 500.0]
    assert row["cpu_model_rss_spread"] == pytest.approx(10 / 105)
    assert row["memory_notes"] == ["n"]


# -- the order of processes (a fake child: no process is started) -----------------------------

T, S = "teacher", "student"


def _models():
    return [BenchModel(S, Path("/nowhere/student"), T, "mlt_Latn"),  # listed first: teachers go first
            BenchModel(T, Path("/nowhere/teacher"), T)]


class FakeChild:
    """Stands in for run_in_child(run_job, job, env=...): records the calls and answers with
    latencies that depend on the model, the batch and the call's number."""

    def __init__(self, store=None, fail=None):
        self.calls: list[tuple[str, int, float, dict | None]] = []
        self.store = store
        self.stored_at_call: list[int] = []
        self.fail = fail or (lambda n, job, env: None)

    def __call__(self, fn, job, env=None):
        n = len(self.calls)
        self.calls.append((Path(job.model_path).name, job.batch_size, job.min_duration_s, env))
        if self.store is not None:
            self.stored_at_call.append(self.store.query("SELECT count(*) FROM benchmarks")[1][0][0])
        failure = self.fail(n, job, env)
        if isinstance(failure, BaseException):
            raise failure
        base = (10.0 if "teacher" in job.model_path else 5.0) * job.batch_size + n
        memory = {"cpu_peak_rss_mb": 500.0 + (0 if env is None else 100) + n,
                  "cpu_baseline_rss_mb": 400.0, "notes": []}
        targets = {"load": {"values_ms": [100.0 + n], "n_sequences": 0, "n_tokens": 0, "memory": memory}}
        for target in job.targets:
            targets[target] = {"values_ms": [base] if target == "first_forward" else [base, base + 2],
                               "n_sequences": job.batch_size, "n_tokens": job.batch_size * job.seq_len,
                               "memory": memory}
        if isinstance(failure, dict):
            targets = dict(failure) if "error" in failure.get("load", {}) else targets | failure
        return {"targets": targets, "process": {"torch_threads": 1, "call": n}}


def _section(**update) -> BenchSection:
    base = dict(batch_sizes=[1, 4], seq_lens=[8], devices=["cpu"], warmup=0, min_iterations=2,
                min_duration_s=0.5, threads=1, repeats=3, memory_mmap_threshold=None,
                targets=["load", "first_forward", "forward"])
    return BenchSection(**(base | update))


def test_repeats_run_in_interleaved_rounds_in_plan_order(monkeypatch, store):
    fake = FakeChild()
    monkeypatch.setattr(repeats, "run_in_child", fake)
    rows = bench_models(_models(), _section(), store)
    one_round = [("teacher", 1), ("teacher", 4), ("student", 1), ("student", 4)]
    assert [(m, b) for m, b, _, _ in fake.calls] == one_round * 3
    assert all(env is None for *_, env in fake.calls)
    assert len(rows) == 2 * (1 + 2 * 2) and {r["status"] for r in rows} == {"done"}
    fwd = next(r for r in rows if (r["model_key"], r["target"], r["batch_size"]) == (T, "forward", 4))
    # The teacher's 4x8 job was calls 1, 5 and 9: p50s 40+n+1 (the mean of base and base + 2).
    assert fwd["repeats"] == 3 and fwd["per_repeat"]["latency_p50_ms"] == [42.0, 46.0, 50.0]
    assert fwd["latency_p50_ms"] == 46.0 and fwd["latency_p50_spread"] == pytest.approx(8 / 46)
    load = next(r for r in rows if (r["model_key"], r["target"]) == (S, "load"))
    assert load["n_iterations"] == load["repeats"] == 6   # one load per process: 2 jobs x 3 rounds
    assert sorted(load["raw_latencies_ms"]) == [102.0, 103.0, 106.0, 107.0, 110.0, 111.0]


def test_memory_processes_get_the_fixed_threshold_and_a_short_job(monkeypatch, store):
    fake = FakeChild()
    monkeypatch.setattr(repeats, "run_in_child", fake)
    rows = bench_models(_models()[1:], _section(repeats=2, memory_mmap_threshold=65536), store)
    # Per round and job: its latency process (inherited env, the section's timing), then its
    # memory process (the threshold fixed, no minimum duration).
    assert fake.calls == [("teacher", 1, 0.5, None), ("teacher", 1, 0.0, MMAP_ENV),
                          ("teacher", 4, 0.5, None), ("teacher", 4, 0.0, MMAP_ENV)] * 2
    fwd = next(r for r in rows if (r["target"], r["batch_size"]) == ("forward", 1))
    # Latency from calls 0 and 4, memory (600 + n) from calls 1 and 5 only.
    assert fwd["per_repeat"]["latency_p50_ms"] == [11.0, 15.0]
    assert fwd["per_repeat"]["cpu_peak_rss_mb"] == [601.0, 605.0] and fwd["cpu_peak_rss_mb"] == 603.0
    assert fwd["environment"]["memory_env"] == MMAP_ENV and fwd["environment"]["repeats"] == 2
    assert fwd["environment"]["process"]["call"] == 4          # facts of a latency process
    load = next(r for r in rows if r["target"] == "load")
    assert load["raw_latencies_ms"] == [100.0, 102.0, 104.0, 106.0]  # latency processes only
    assert load["per_repeat"]["cpu_peak_rss_mb"] == [601.0, 603.0, 605.0, 607.0]


def test_rows_are_written_only_after_their_last_repeat(monkeypatch, store):
    fake = FakeChild(store=store)
    monkeypatch.setattr(repeats, "run_in_child", fake)
    bench_models(_models(), _section(), store)
    # Rounds 1 and 2 write nothing. In round 3, each job's two rows land after its process,
    # and a model's load row after its last job.
    assert fake.stored_at_call == [0] * 8 + [0, 2, 2 + 3, 5 + 2]
    assert store.query("SELECT count(*) FROM benchmarks")[1][0][0] == 10


def test_a_dead_repeat_fails_the_rows_of_its_job_and_stops_repeating_it(monkeypatch, store):
    fake = FakeChild(fail=lambda n, job, env: ChildFailed("killed by SIGKILL") if n == 5 else None)
    monkeypatch.setattr(repeats, "run_in_child", fake)
    rows = bench_models(_models(), _section(), store)
    # Call 5 is round 2's teacher 4x8: its rows fail at once, and round 3 skips that job.
    assert [(m, b) for m, b, _, _ in fake.calls][8:] == [("teacher", 1), ("student", 1), ("student", 4)]
    by_key = {(r["model_key"], r["target"], r["batch_size"]): r for r in rows}
    for target in ("first_forward", "forward"):
        assert by_key[(T, target, 4)]["status"] == "failed"
        assert by_key[(T, target, 4)]["error"] == "repeat 2 of 3: killed by SIGKILL"
        assert by_key[(T, target, 1)]["status"] == "done"
    # The death adds no load sample; the load row uses the teacher's 4 processes that answered.
    assert by_key[(T, "load", 0)]["status"] == "done" and by_key[(T, "load", 0)]["n_iterations"] == 4
    stored = dict(store.query("SELECT bench_id, status FROM benchmarks")[1])
    assert stored[by_key[(T, "forward", 4)]["bench_id"]] == "failed"


def test_a_target_failing_in_one_repeat_fails_only_its_row(monkeypatch, store):
    oom = {"forward": {"error": "Traceback ...\nRuntimeError: out of memory", "memory": {}}}
    fake = FakeChild(fail=lambda n, job, env: oom if n == 1 else None)
    monkeypatch.setattr(repeats, "run_in_child", fake)
    rows = bench_models(_models()[1:], _section(memory_mmap_threshold=65536), store)
    assert len(fake.calls) == 12   # first_forward still needs its repeats: nothing is skipped
    by_key = {(r["target"], r["batch_size"]): r for r in rows}
    failed = by_key[("forward", 1)]
    assert failed["status"] == "failed"
    assert failed["error"].startswith("repeat 1 of 3: memory process: Traceback")
    assert by_key[("first_forward", 1)]["status"] == "done" and by_key[("first_forward", 1)]["repeats"] == 3
    assert by_key[("forward", 4)]["status"] == "done"


def test_a_model_that_never_loads_is_tried_once(monkeypatch, store):
    no_load = {"load": {"error": "Traceback ...\nOSError: no weights", "memory": {}}}
    fake = FakeChild(fail=lambda n, job, env: no_load)
    monkeypatch.setattr(repeats, "run_in_child", fake)
    rows = bench_models(_models()[1:], _section(), store)
    assert len(fake.calls) == 2      # each job once: all its rows failed in round 1
    assert {r["status"] for r in rows} == {"failed"} and len(rows) == 5
    assert all("no weights" in r["error"] for r in rows)


# -- the environment of a child --------------------------------------------------------------------

def read_environment(names: list[str]) -> dict[str, str | None]:
    return {n: os.environ.get(n) for n in names}


def mmapped_bytes_after_reallocating(size: int) -> int | None:
    """Allocate, free and allocate again `size` bytes with glibc's malloc; return how many bytes
    glibc then holds in mmapped chunks (None without glibc's mallinfo2). With the dynamic
    threshold the first free raises the threshold, so the second block comes from the heap."""
    import ctypes

    libc = ctypes.CDLL(None)
    if not hasattr(libc, "mallinfo2"):
        return None

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
            "fordblks", "keepcost")]

    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    libc.mallinfo2.restype = MallInfo2
    before = libc.mallinfo2().hblkhd
    libc.free(libc.malloc(size))
    block = libc.malloc(size)
    held = libc.mallinfo2().hblkhd - before
    libc.free(block)
    return held


def test_env_reaches_the_child_and_the_parent_keeps_its_own(monkeypatch):
    monkeypatch.setenv("BENCH_TEST_KEPT", "parent")
    monkeypatch.delenv("BENCH_TEST_NEW", raising=False)
    names = ["BENCH_TEST_KEPT", "BENCH_TEST_NEW"]
    seen = run_in_child(read_environment, names, env={"BENCH_TEST_KEPT": "child", "BENCH_TEST_NEW": "1"})
    assert seen == {"BENCH_TEST_KEPT": "child", "BENCH_TEST_NEW": "1"}
    assert read_environment(names) == {"BENCH_TEST_KEPT": "parent", "BENCH_TEST_NEW": None}


def test_a_fixed_mmap_threshold_reaches_glibc_in_the_child():
    size = 4_000_000  # above both the default initial threshold (128 KiB) and the fixed one
    default = run_in_child(mmapped_bytes_after_reallocating, size)
    if default is None:
        pytest.skip("not glibc (no mallinfo2): MALLOC_MMAP_THRESHOLD_ means nothing here")
    fixed = run_in_child(mmapped_bytes_after_reallocating, size, env=MMAP_ENV)
    assert default == 0          # dynamic threshold: the freed block raised it; reused from the heap
    assert fixed >= size         # fixed threshold: mmapped again, returned to the OS when freed


# -- configuration and the table -------------------------------------------------------------------

def test_repeats_and_threshold_settings():
    s = load_bench_section(None)
    assert s.repeats == 3 and s.memory_mmap_threshold == 65536 and s.memory_env() == MMAP_ENV
    assert load_bench_section({"memory_mmap_threshold": None}).memory_env() is None
    with pytest.raises(ConfigError, match=r"benchmark.repeats: 0 .*>= 1"):
        load_bench_section({"repeats": 0})
    with pytest.raises(ConfigError, match=r"benchmark.memory_mmap_threshold: .*glibc ignores"):
        load_bench_section({"memory_mmap_threshold": 64 * 1024 * 1024})


def _table_row(**update):
    base = {"model_key": "t", "teacher_key": "t", "target": "forward", "device": "cpu", "dtype": "fp32",
            "batch_size": 1, "seq_len": 128, "status": "done", "error": None, "repeats": 3,
            "latency_p50_ms": 47.3, "latency_p50_spread": 0.04, "latency_p90_ms": 50.0,
            "throughput_seq_s": 20.0, "throughput_tok_s": 2560.0, "cpu_peak_rss_mb": 900.0,
            "cpu_model_rss_mb": 500.0, "cpu_model_rss_spread": 0.004, "cuda_peak_allocated_mb": None,
            "cpu_model_memory_ratio": None, "cuda_memory_ratio": None, "speedup_p50": None}
    return base | update


def test_table_shows_the_spread_and_marks_an_unstable_row():
    steady = _table_row()
    shaky = _table_row(model_key="s", latency_p50_ms=20.0, latency_p50_spread=UNSTABLE_SPREAD + 0.02,
                       speedup_p50=2.37, cpu_model_rss_mb=100.0, cpu_model_memory_ratio=0.2)
    old = _table_row(model_key="o", repeats=None, latency_p50_spread=None, cpu_model_rss_spread=None)
    lines = format_table([steady, shaky, old]).splitlines()
    assert "reps" in lines[0].split()
    assert "47.30 ±4%" in lines[2] and "500 ±0%" in lines[2] and "!" not in lines[2]
    assert "20.00 ±12%!" in lines[3] and "2.37" in lines[3]
    assert "±" not in lines[4] and " - " in lines[4]   # a row stored before repeats: no spread
    assert [is_unstable(r) for r in (steady, shaky, old)] == [False, True, False]
    assert is_unstable(_table_row(cpu_model_rss_spread=0.3))


def test_bench_stores_the_repeats_and_prints_spreads_with_the_unstable_flag(monkeypatch, store):
    monkeypatch.setattr(repeats, "run_in_child", FakeChild())
    printed: list[str] = []
    table = bench(_models()[1:], _section(batch_sizes=[1]), store, echo=printed.append)
    cols, values = store.query("SELECT * FROM benchmarks WHERE target = 'forward'")
    (stored,) = [dict(zip(cols, v)) for v in values]
    per = json.loads(stored["per_repeat"])
    # Calls 0, 1, 2: forward p50 = 10 + n + 1; memory 500 + n over a 400 MB baseline.
    assert per["latency_p50_ms"] == [11.0, 12.0, 13.0] and stored["latency_p50_ms"] == 12.0
    assert stored["repeats"] == 3 and stored["latency_p50_spread"] == pytest.approx(2 / 12)
    assert per["cpu_peak_rss_mb"] == [500.0, 501.0, 502.0]
    assert stored["cpu_peak_rss_spread"] == pytest.approx(2 / 501)
    assert stored["cpu_model_rss_spread"] == pytest.approx(2 / 101)
    assert len(json.loads(stored["raw_latencies_ms"])) == stored["n_iterations"] == 6
    (forward,) = [r for r in table if r["target"] == "forward"]
    assert forward["latency_p50_spread"] == stored["latency_p50_spread"]   # read back for the table
    text = "\n".join(printed)
    assert "12.00 ±17%!" in text and "101 ±2%" in text
    assert "rows unstable; ! unstable: the row's processes spread by more than 10%" in text
