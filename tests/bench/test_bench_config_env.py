"""The `benchmark:` grid section (defaults, one-line errors) and the environment record."""
from __future__ import annotations

import json
import socket

import pytest

from harness.bench.config import BenchSection, load_bench_section
from harness.env import environment, git_revision, hardware, versions
from core.errors import ConfigError


def test_defaults_are_the_documented_grid():
    s = load_bench_section(None)
    assert s.enabled is True
    assert (s.batch_sizes, s.seq_lens) == ([1, 8, 32], [128, 512])
    assert s.targets == ["load", "first_forward", "forward", "real"]
    assert s.resolved_devices(cuda_available=False) == ["cpu"]
    assert s.resolved_devices(cuda_available=True) == ["cuda", "cpu"]
    assert s.resolved_dtypes("cpu") == ["fp32"]  # the suite sets HARNESS_CPU_BF16=0


def test_auto_dtypes_add_bf16_where_the_device_has_it(monkeypatch):
    s = load_bench_section(None)
    monkeypatch.setenv("HARNESS_CPU_BF16", "1")
    assert s.resolved_dtypes("cpu") == ["fp32", "bf16"]
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    monkeypatch.setattr("torch.cuda.is_bf16_supported", lambda *a, **k: True)
    assert s.resolved_dtypes("cuda") == ["fp32", "bf16"]


def test_int8_dynamic_is_a_cpu_dtype():
    s = load_bench_section({"dtypes": ["fp32", "int8-dynamic"]})
    assert s.resolved_dtypes("cpu") == ["fp32", "int8-dynamic"]
    assert s.resolved_dtypes("cuda") == ["fp32"]


def test_in_eval_is_the_enabled_field():
    assert load_bench_section(None).in_eval is True
    assert load_bench_section({"enabled": False}).in_eval is False


def test_explicit_lists_are_kept_deduplicated():
    s = load_bench_section({"devices": "cpu", "dtypes": ["bf16", "fp32", "bf16"],
                            "batch_sizes": [4, 1, 4], "real_languages": ["mlt_Latn"]})
    assert s.devices == ["cpu"] and s.dtypes == ["bf16", "fp32"] and s.batch_sizes == [1, 4]
    assert s.resolved_dtypes("cpu") == ["bf16", "fp32"]


@pytest.mark.parametrize("data, field, value, allowed", [
    ({"devices": ["gpu"]}, "benchmark.devices", "'gpu'", "cpu, cuda"),
    ({"dtypes": "fp8"}, "benchmark.dtypes", "'fp8'", "fp32, bf16, fp16"),
    ({"targets": ["load", "fwd"]}, "benchmark.targets", "'fwd'", "load, first_forward, forward, real"),
    ({"batch_sizes": [0, 1]}, "benchmark.batch_sizes", "0", "positive integers"),
    ({"real_languages": ["mlt"]}, "benchmark.real_languages", "'mlt'", "ISO 639-3 + script"),
    ({"min_duration_s": -1}, "benchmark.min_duration_s", "-1", ">= 0"),
    ({"threads": 0}, "benchmark.threads", "0", "null or an integer >= 1"),
    ({"warmup": "a"}, "benchmark.warmup", "'a'", "valid integer"),
])
def test_errors_name_the_field_the_value_and_what_is_allowed(data, field, value, allowed):
    with pytest.raises(ConfigError) as info:
        load_bench_section(data)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(field) and value in msg and allowed in msg


def test_unknown_field_lists_the_known_ones():
    with pytest.raises(ConfigError, match="unknown field 'batch'.*batch_sizes"):
        load_bench_section({"batch": [1]})


def test_cuda_without_a_gpu_is_a_user_error():
    s = BenchSection(devices=["cuda", "cpu"])
    with pytest.raises(ConfigError, match="cuda.*no CUDA device.*devices: auto"):
        s.resolved_devices(cuda_available=False)


def test_environment_is_json_and_names_no_host():
    env = environment()
    text = json.dumps(env)
    assert set(env) >= {"versions", "git_rev", "hardware"}
    host = socket.gethostname()
    if len(host) >= 6:
        assert host not in text
    v, hw = versions(), hardware()
    assert v["python"].count(".") == 2 and v["torch"] and v["transformers"]
    assert hw["cpu_model"] and hw["cpu_logical_cores"] >= 1 and hw["torch_threads"] >= 1
    assert isinstance(hw["cuda_available"], bool)


def test_git_revision_of_a_non_repository_is_none(tmp_path):
    assert git_revision(tmp_path) is None


def test_git_revision_names_the_commit_and_a_dirty_tree(tmp_path):
    import shutil
    import subprocess

    if shutil.which("git") is None:
        pytest.skip("git is not installed")

    def git(*args):
        return subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c",
                               "user.email=t@example.org", *args], check=True,
                              capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    assert git_revision(tmp_path) is None  # no commit yet
    (tmp_path / "f.txt").write_text("a")
    git("add", "f.txt")
    git("commit", "-q", "-m", "one")
    head = git("rev-parse", "HEAD")
    assert git_revision(tmp_path) == head
    (tmp_path / "f.txt").write_text("b")
    assert git_revision(tmp_path) == head + "-dirty"
