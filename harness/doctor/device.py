"""The device the check runs on: resolving `--device`, and the facts `harness doctor` prints."""
from __future__ import annotations

import re
from typing import Any

_CUDA = re.compile(r"^cuda(:\d+)?$")


def resolve_device(device: str | None, gpu: bool = True) -> str:
    """The device the checks run on: `device` as given ('cpu', 'cuda', 'cuda:N'), or CUDA when
    none is given. A missing CUDA device is the user's mistake, told in one line with the way out."""
    import torch

    from core.errors import UserError

    if device is not None and device != "cpu" and not _CUDA.match(device):
        raise UserError(f"--device must be cpu, cuda or cuda:N (got {device!r})")
    if device == "cpu":
        return "cpu"
    if not torch.cuda.is_available():
        why = ("this torch is a CPU build" if torch.version.cuda is None
               else f"torch {torch.__version__} (CUDA {torch.version.cuda}) finds no usable GPU")
        flag = "--gpu" if gpu and device is None else f"--device {device}"
        raise UserError(f"{flag} needs a CUDA device, and there is none ({why}); to run the same "
                        f"checks on the CPU: harness doctor --gpu --device cpu --quick")
    device = device or "cuda"
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        raise UserError(f"--device {device}: torch sees {torch.cuda.device_count()} CUDA device(s) "
                        f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    return device


def device_facts(device: str) -> dict[str, Any]:
    """torch and CUDA versions, the device's name, and whether it multiplies bf16 natively."""
    import torch

    from core.precision import cpu_bf16_features, fast_bf16

    facts: dict[str, Any] = {
        "device": device, "torch": torch.__version__, "cuda_runtime": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "cuda_device_count": torch.cuda.device_count() if torch.cuda.is_available() else 0,
        "cpu_bf16_features": list(cpu_bf16_features()), "torch_threads": torch.get_num_threads(),
    }
    if device.startswith("cuda"):
        index = torch.device(device).index or 0
        props = torch.cuda.get_device_properties(index)
        facts.update(device_name=props.name, capability=f"{props.major}.{props.minor}",
                     device_memory_gb=round(props.total_memory / 1e9, 2),
                     bf16_supported=cuda_bf16_native(), cudnn=torch.backends.cudnn.version())
    else:
        from harness.env import hardware
        facts.update(device_name=hardware()["cpu_model"], bf16_supported=fast_bf16("cpu"))
    return facts


def format_facts(facts: dict[str, Any]) -> str:
    """The device facts in a few lines (what `harness doctor` prints without --gpu)."""
    lines = [f"torch {facts['torch']}, CUDA runtime {facts['cuda_runtime'] or '- (a CPU build)'}, "
             f"{facts['cuda_device_count']} CUDA device(s)",
             f"device {facts['device']}: {facts.get('device_name')}"
             + (f", capability {facts['capability']}, {facts['device_memory_gb']} GB" if 'capability' in facts else ""),
             f"bf16: {'native' if facts.get('bf16_supported') else 'not native (emulated, slower than fp32)'}"
             + (f"; CPU features: {', '.join(facts['cpu_bf16_features']) or 'none'}"
                if not facts['device'].startswith('cuda') else "")]
    return "\n".join(lines)



def cuda_bf16_native() -> bool:
    """Whether the current GPU multiplies bf16 natively (Ampere and later), emulation not counted."""
    import torch

    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # an older torch without the argument counts native support only
        return bool(torch.cuda.is_bf16_supported())
