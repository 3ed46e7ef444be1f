"""Memory: what each figure in the `benchmarks` table means, and how it is taken.

Every figure is in MB = 10**6 bytes, and belongs to the *measuring process*: a fresh child process
per model and shape (see `harness.bench.isolate`), so one model never inflates the next one's.

- `cpu_peak_rss_mb`: peak resident set size (RAM pages actually held) of the measuring process,
  over the measured target. On Linux it is VmHWM of /proc/self/status, whose high-water mark is
  reset to the current RSS (writing 5 to /proc/self/clear_refs) when a target starts: the peak of
  the 'forward' target therefore includes what is already resident (interpreter, libraries, the
  weights) plus everything the forward adds, but not a transient of the model load. Where the
  reset is not possible it is the peak since the process started (ru_maxrss), and the row's
  environment says so. It includes the Python interpreter, torch and transformers (a few hundred
  MB): compare models with `cpu_model_rss_mb` when what matters is the model's own share.
- `cpu_baseline_rss_mb`: the RSS of the measuring process just before the model is loaded
  (interpreter and libraries imported, nothing of the model yet). `cpu_model_rss_mb` =
  peak - baseline is the memory the model and its work add.
- `cuda_peak_allocated_mb`: `torch.cuda.max_memory_allocated` since the target started: bytes in
  live tensors at the worst moment (weights + activations + workspace tensors).
- `cuda_peak_reserved_mb`: `torch.cuda.max_memory_reserved`: what PyTorch's caching allocator held
  from the driver at its worst moment (allocated + cached free blocks). Always >= allocated.
- `nvml_process_mb`: the device memory NVML attributes to the measuring process, read right after
  the target: it adds the CUDA context and library workspaces (cuBLAS, cuDNN) to what the caching
  allocator reserved, i.e. what `nvidia-smi` shows for the process. None, with the reason in the
  row's environment, when nvidia-ml-py is not installed or NVML does not list the process (a
  container's PID namespace can hide it).
"""
from __future__ import annotations

import os
import resource
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

MB = 1e6
_PROC_STATUS = "/proc/self/status"
_PROC_CLEAR_REFS = "/proc/self/clear_refs"


def current_rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / MB


def _vm_hwm_mb() -> float | None:
    try:
        with open(_PROC_STATUS, encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / MB  # the kernel writes kB (KiB)
    except OSError:
        return None
    return None


def peak_rss_mb() -> float:
    """The process's RSS high-water mark (since the last reset, or since it started)."""
    hwm = _vm_hwm_mb()
    if hwm is not None:
        return hwm
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / MB if sys.platform == "darwin" else maxrss * 1024 / MB  # bytes vs KiB


def reset_peak_rss() -> bool:
    """Reset the RSS high-water mark to the current RSS; False where the OS does not allow it."""
    try:
        with open(_PROC_CLEAR_REFS, "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        return False
    return _vm_hwm_mb() is not None


@dataclass(frozen=True)
class MemoryFigures:
    cpu_peak_rss_mb: float | None
    cpu_baseline_rss_mb: float | None
    cuda_peak_allocated_mb: float | None = None
    cuda_peak_reserved_mb: float | None = None
    nvml_process_mb: float | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def cpu_model_rss_mb(self) -> float | None:
        if self.cpu_peak_rss_mb is None or self.cpu_baseline_rss_mb is None:
            return None
        return self.cpu_peak_rss_mb - self.cpu_baseline_rss_mb

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["notes"] = list(self.notes)
        d["cpu_model_rss_mb"] = self.cpu_model_rss_mb
        return d


def _nvml_process_mb(device_index: int) -> tuple[float | None, str | None]:
    """Device memory NVML attributes to this process, or (None, why not)."""
    try:
        import pynvml
    except ImportError:
        return None, "nvml_process_mb: nvidia-ml-py (pynvml) is not installed"
    import torch

    try:
        pynvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - any NVML failure just leaves the figure empty
        return None, f"nvml_process_mb: NVML did not initialise ({exc})"
    try:
        handle = None
        uuid = getattr(torch.cuda.get_device_properties(device_index), "uuid", None)
        if uuid is not None:  # CUDA and NVML number devices differently under CUDA_VISIBLE_DEVICES
            try:
                handle = pynvml.nvmlDeviceGetHandleByUUID(f"GPU-{uuid}")
            except Exception:  # noqa: BLE001
                handle = None
        if handle is None:
            handle = pynvml.nvmlDeviceGetHandleByIndex(device_index)
        used = [p.usedGpuMemory for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
                if p.pid == os.getpid()]
    except Exception as exc:  # noqa: BLE001
        return None, f"nvml_process_mb: NVML query failed ({exc})"
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass
    if not used or any(u is None for u in used):
        return None, "nvml_process_mb: NVML does not list this process (PID namespace?)"
    return sum(used) / MB, None


class MemoryTracker:
    """Memory of this process for a sequence of measured targets.

    Create it before the model loads (that RSS is the baseline), call `start()` when a target
    starts and `read()` when it ends.
    """

    def __init__(self, device: str = "cpu"):
        self.device = str(device)
        self.is_cuda = self.device.startswith("cuda")
        self.baseline_rss_mb = current_rss_mb()
        self.rss_reset_works = True

    def start(self) -> None:
        self.rss_reset_works = reset_peak_rss()
        if self.is_cuda:
            import torch

            torch.cuda.synchronize()
            torch.cuda.empty_cache()  # so the reserved peak is this target's, not a leftover
            torch.cuda.reset_peak_memory_stats()

    def read(self) -> MemoryFigures:
        notes: list[str] = []
        if not self.rss_reset_works:
            notes.append("cpu_peak_rss_mb: peak since the process started (no high-water reset)")
        allocated = reserved = nvml = None
        if self.is_cuda:
            import torch

            torch.cuda.synchronize()
            allocated = torch.cuda.max_memory_allocated() / MB
            reserved = torch.cuda.max_memory_reserved() / MB
            nvml, why = _nvml_process_mb(torch.cuda.current_device())
            if why:
                notes.append(why)
        return MemoryFigures(cpu_peak_rss_mb=peak_rss_mb(), cpu_baseline_rss_mb=self.baseline_rss_mb,
                             cuda_peak_allocated_mb=allocated, cuda_peak_reserved_mb=reserved,
                             nvml_process_mb=nvml, notes=tuple(notes))
