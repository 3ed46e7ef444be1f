"""The matmul peak: a real measurement on tiny shapes, and its one-line summary."""
from harness.bench.peak import PeakRow, format_peak, matmul_gflops, measure_peak


def test_peak_is_measured_per_dtype_and_shape():
    rows = measure_peak("cpu", shapes=((64, 32, 48),), min_duration_s=0.01, rounds=1)
    assert [(r.dtype, r.m, r.k, r.n) for r in rows] == [("fp32", 64, 32, 48), ("bf16", 64, 32, 48)]
    assert all(r.gflops > 0 for r in rows)
    assert matmul_gflops(8, 8, 8, "fp32", min_duration_s=0.01, rounds=1) > 0


def test_summary_shows_the_best_shape_and_the_ratio():
    rows = [PeakRow("cpu", "fp32", 1, 2, 3, 50.0), PeakRow("cpu", "fp32", 4, 5, 6, 75.0),
            PeakRow("cpu", "bf16", 1, 2, 3, 170.0)]
    line = format_peak(rows)
    assert "fp32 75" in line and "bf16 170 (2.3x fp32)" in line and line.startswith("cpu matmul peak")


def test_a_stored_peak_is_reused_until_what_it_depends_on_changes(tmp_path, monkeypatch):
    """harness bench measures the peak once per processor, torch and thread count; --force,
    another thread count, another torch or a value stored before fingerprints re-measure it."""
    import copy

    import cli.bench as cli_bench
    from harness.bench.config import BenchSection
    from harness.env import environment
    from harness.store import Store

    calls = []

    def tiny_measure(device, threads=None):
        calls.append(threads)
        return measure_peak(device, shapes=((16, 8, 8),), min_duration_s=0.001, rounds=1)

    monkeypatch.setattr(cli_bench, "measure_peak", tiny_measure)
    store, env = Store(tmp_path / "r.duckdb").init(), environment()
    one_thread = BenchSection(devices=["cpu"], threads=1)

    first = cli_bench.measure_and_store_peak(one_thread, store, env)
    assert calls == [1] and "stored peak" not in first
    stored = store.get_meta("matmul_peak:cpu")
    assert stored["fingerprint"]["threads"] == 1 and len(stored["rows"]) == 2

    again = cli_bench.measure_and_store_peak(one_thread, store, env)
    assert calls == [1] and again.splitlines()[0] == first and "stored peak, measured cpu on" in again

    cli_bench.measure_and_store_peak(one_thread, store, env, force=True)
    cli_bench.measure_and_store_peak(BenchSection(devices=["cpu"], threads=2), store, env)
    newer_torch = copy.deepcopy(env)
    newer_torch["versions"]["torch"] = "99.0"
    cli_bench.measure_and_store_peak(BenchSection(devices=["cpu"], threads=2), store, newer_torch)
    assert calls == [1, 1, 2, 2]

    store.set_meta("matmul_peak:cpu", [{"dtype": "bf16", "gflops": 170.5}])   # before fingerprints
    cli_bench.measure_and_store_peak(one_thread, store, env)
    assert calls == [1, 1, 2, 2, 1]
