"""The latency tracker against known work (a sleep of known length) and its stop rule."""
from __future__ import annotations

import time

import numpy as np
import pytest

from harness.bench.latency import LatencyStats, measure_latency, time_once

SLEEP_S = 0.05


def _sleep():
    time.sleep(SLEEP_S)


def test_known_sleep_is_measured_within_10_percent():
    stats = measure_latency(_sleep, warmup=1, min_iterations=5, min_duration_s=0.0)
    assert SLEEP_S * 1e3 * 0.9 < stats.p50_ms < SLEEP_S * 1e3 * 1.1
    assert SLEEP_S * 1e3 * 0.9 < stats.mean_ms < SLEEP_S * 1e3 * 1.1
    assert stats.throughput(per_call=8) == pytest.approx(8 / (stats.mean_ms / 1e3))


def test_time_once_measures_a_known_sleep_and_returns_the_result():
    ms, result = time_once(lambda: (time.sleep(SLEEP_S), "done")[1])
    assert result == "done"
    assert SLEEP_S * 1e3 * 0.9 < ms < SLEEP_S * 1e3 * 1.1


def test_minimum_count_is_honoured_when_duration_is_already_reached():
    calls = []
    stats = measure_latency(lambda: calls.append(1), warmup=3, min_iterations=25, min_duration_s=0.0)
    assert stats.count == 25
    assert len(calls) == 28  # warm-up calls run but are not timed


def test_minimum_duration_is_honoured_when_count_is_already_reached():
    stats = measure_latency(lambda: time.sleep(0.01), warmup=0, min_iterations=2, min_duration_s=0.15)
    assert stats.count >= 2
    assert stats.total_s >= 0.15 * 0.9  # timed work, the wall clock between calls aside
    assert stats.count > 2


def test_max_iterations_caps_a_long_duration_but_never_the_minimum_count():
    stats = measure_latency(lambda: None, warmup=0, min_iterations=4, min_duration_s=60,
                            max_iterations=7)
    assert stats.count == 7
    stats = measure_latency(lambda: None, warmup=0, min_iterations=9, min_duration_s=60,
                            max_iterations=3)
    assert stats.count == 9


def test_multiple_of_stops_after_whole_passes():
    stats = measure_latency(lambda: None, warmup=0, min_iterations=5, min_duration_s=0.0, multiple_of=3)
    assert stats.count == 6


def test_statistics_of_known_values():
    values = [float(v) for v in range(1, 101)]  # 1..100 ms
    s = LatencyStats.from_values(values)
    assert s.count == 100
    assert s.mean_ms == pytest.approx(50.5)
    assert s.std_ms == pytest.approx(np.std(values))
    assert s.p50_ms == pytest.approx(50.5)
    assert s.p90_ms == pytest.approx(np.percentile(values, 90))
    assert s.p99_ms == pytest.approx(99.01)
    assert s.total_s == pytest.approx(5.05)
    assert s.as_dict()["values_ms"] == values


def test_single_value_has_zero_spread():
    s = LatencyStats.from_values([3.0])
    assert (s.std_ms, s.p50_ms, s.p99_ms) == (0.0, 3.0, 3.0)


def test_bad_values_are_refused():
    with pytest.raises(ValueError, match="no latency values"):
        LatencyStats.from_values([])
    with pytest.raises(ValueError, match="negative"):
        LatencyStats.from_values([1.0, -0.5])
    with pytest.raises(ValueError, match="at least 1"):
        measure_latency(lambda: None, min_iterations=0)


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA device")
def test_cuda_events_measure_a_known_sleep_within_10_percent():
    # The stream is idle, so the start event completes when recorded and the end event when
    # recorded after the host sleep: elapsed_time is the sleep (optimum-benchmark's check).
    stats = measure_latency(_sleep, device="cuda", warmup=1, min_iterations=5, min_duration_s=0.0)
    assert SLEEP_S * 1e3 * 0.9 < stats.p50_ms < SLEEP_S * 1e3 * 1.1


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA device")
def test_cuda_events_time_device_work_not_launch():
    import torch

    a = torch.randn(4096, 4096, device="cuda")
    small = measure_latency(lambda: a @ a, device="cuda", warmup=2, min_iterations=5, min_duration_s=0.0)
    b = torch.randn(8192, 8192, device="cuda")
    big = measure_latency(lambda: b @ b, device="cuda", warmup=2, min_iterations=5, min_duration_s=0.0)
    # 8x the FLOPs: a timer that only saw the (equal) launch cost would report equal times.
    assert big.p50_ms > 4 * small.p50_ms
