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
