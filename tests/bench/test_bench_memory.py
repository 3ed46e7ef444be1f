"""The memory tracker against known work: a buffer of known size is measured within 10%."""
from __future__ import annotations

import os
import signal

import pytest

from harness.bench.isolate import ChildFailed, run_in_child
from harness.bench.memory import MB, MemoryTracker, reset_peak_rss

KNOWN_MB = 200


# -- work done inside spawned children (module-level so the child can import them) --------------

def allocate_and_measure(size_mb: int, first_mb: int = 0) -> dict:
    """Touch a numpy buffer of `size_mb` MB between tracker marks; optionally a bigger one first."""
    import numpy as np

    tracker = MemoryTracker("cpu")
    if first_mb:
        big = np.ones(int(first_mb * MB) // 8)
        del big
    tracker.start()
    buf = np.ones(int(size_mb * MB) // 8)  # np.ones writes every page, so all of it is resident
    figures = tracker.read()
    del buf
    return figures.as_dict() | {"reset_works": tracker.rss_reset_works}


def raise_value_error() -> None:
    raise ValueError("boom from the child")


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def cuda_allocate_and_measure(size_mb: int) -> dict:
    import torch

    tracker = MemoryTracker("cuda")
    tracker.start()
    buf = torch.ones(int(size_mb * MB) // 4, dtype=torch.float32, device="cuda")
    figures = tracker.read()
    del buf
    return figures.as_dict()


# -- tests -------------------------------------------------------------------------------------

def test_known_cpu_allocation_is_measured_within_10_percent():
    figures = run_in_child(allocate_and_measure, KNOWN_MB)
    measured = figures["cpu_peak_rss_mb"] - figures["cpu_baseline_rss_mb"]
    assert figures["cpu_model_rss_mb"] == pytest.approx(measured)
    assert KNOWN_MB * 0.9 < measured < KNOWN_MB * 1.1, figures
    # A CPU tracker leaves the device figures empty rather than zero.
    assert figures["cuda_peak_allocated_mb"] is None and figures["cuda_peak_reserved_mb"] is None
    assert figures["nvml_process_mb"] is None


def test_peak_reset_separates_a_target_from_an_earlier_bigger_one():
    """A 400 MB transient before the mark must not show in a 100 MB target's peak."""
    figures = run_in_child(allocate_and_measure, 100, first_mb=400)
    if not figures["reset_works"]:
        pytest.skip("this OS does not allow resetting the RSS high-water mark")
    measured = figures["cpu_peak_rss_mb"] - figures["cpu_baseline_rss_mb"]
    assert 90 < measured < 110, figures
    assert figures["notes"] == []


def test_children_do_not_pollute_each_other():
    big = run_in_child(allocate_and_measure, 300)
    small = run_in_child(allocate_and_measure, 50)
    assert big["cpu_peak_rss_mb"] - small["cpu_peak_rss_mb"] == pytest.approx(250, rel=0.1)
    assert small["cpu_peak_rss_mb"] - small["cpu_baseline_rss_mb"] == pytest.approx(50, rel=0.1)


def test_reset_peak_rss_reports_whether_it_worked():
    assert reset_peak_rss() in (True, False)
    if os.path.exists("/proc/self/clear_refs"):
        assert reset_peak_rss() is True


def test_child_exception_comes_back_with_its_traceback():
    with pytest.raises(ChildFailed, match="boom from the child") as info:
        run_in_child(raise_value_error)
    assert "Traceback" in str(info.value)


def test_killed_child_is_reported_with_the_signal():
    with pytest.raises(ChildFailed, match="SIGKILL.*out of memory"):
        run_in_child(kill_self)


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA device")
def test_known_cuda_allocation_is_measured_within_10_percent():
    figures = run_in_child(cuda_allocate_and_measure, 512)
    assert 512 * 0.9 < figures["cuda_peak_allocated_mb"] < 512 * 1.1, figures
    assert figures["cuda_peak_reserved_mb"] >= figures["cuda_peak_allocated_mb"]
    if figures["nvml_process_mb"] is not None:  # None with a note when NVML cannot see us
        assert figures["nvml_process_mb"] >= figures["cuda_peak_reserved_mb"]
    else:
        assert any("nvml_process_mb" in n for n in figures["notes"])


def _model_rss(path) -> tuple[float, float]:
    """(RSS the model adds after loading, after a first forward of 16 ids), measured in a child."""
    from harness.bench.measure import Job, run_job

    out = run_in_child(run_job, Job(str(path), "cpu", "fp32", 1, 16, ("first_forward",), threads=1))
    targets = out["targets"]
    return (targets["load"]["memory"]["cpu_model_rss_mb"],
            targets["first_forward"]["memory"]["cpu_model_rss_mb"])


def test_a_loaded_model_is_counted_whole_whatever_the_input_touches(tmp_path):
    """Two models that differ only in their vocabulary (50,000 rows x 256 fp32 = 51.2 MB): the
    RSS they add must differ by that, although a 16-id input touches only 16 rows (transformers
    memory-maps the weights, so untouched rows would otherwise never become resident). The
    difference cancels what every load adds besides the weights (modelling code, allocator)."""
    import torch
    from transformers import BertConfig, BertModel

    sizes = {}
    for vocab in (10_000, 60_000):
        torch.manual_seed(0)
        model = BertModel(BertConfig(vocab_size=vocab, hidden_size=256, num_hidden_layers=2,
                                     num_attention_heads=4, intermediate_size=1024),
                          add_pooling_layer=False)
        model.save_pretrained(tmp_path / str(vocab))
        sizes[vocab] = _model_rss(tmp_path / str(vocab))
    expected = 50_000 * 256 * 4 / MB
    for i in (0, 1):  # after load, after the first forward
        measured = sizes[60_000][i] - sizes[10_000][i]
        assert expected * 0.9 < measured < expected * 1.1, (expected, sizes)
