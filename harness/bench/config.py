"""The `benchmark:` section of the grid file.

    benchmark:
      enabled: true              # also benchmark each model during `harness eval`
      batch_sizes: [1, 8, 32]
      seq_lens: [128, 512]
      dtypes: auto               # auto: fp32, plus bf16 where the device has it fast (a GPU with bf16,
                                 # a CPU with AMX-BF16 / AVX512-BF16). Or a list of fp32, bf16,
                                 # fp16, int8-dynamic (the linear layers quantised to int8 with
                                 # dynamic activation scales; CPU only, a deployment option)
      devices: auto              # auto: cuda (when available) and cpu. Or a list.
      targets: [load, first_forward, forward, real]
      real_task: topic           # 'real' runs this task's tokenized test sentences
      real_languages: []         # for models without a target language (teachers)
      real_max_length: 512
      warmup: 2
      min_iterations: 10
      min_duration_s: 2.0
      threads: null              # torch intra-op threads in the measuring process (null: torch's default)
      seed: 0                    # synthetic input ids
      repeats: 3                 # fresh processes per row, in rounds interleaved across the models
      memory_mmap_threshold: 65536  # memory measured in separate processes with glibc's mmap
                                    # threshold fixed (bytes); null: latency processes measure it too
"""
from __future__ import annotations

import re
from typing import Any, Mapping, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.errors import ConfigError
from core.precision import fast_bf16

DEVICES = ("cpu", "cuda")
DTYPES = ("fp32", "bf16", "fp16", "int8-dynamic")
CPU_ONLY_DTYPES = ("int8-dynamic",)
TARGETS = ("load", "first_forward", "forward", "real")
# glibc ignores an mmap threshold above HEAP_MAX_SIZE / 2 (32 MiB on 64-bit systems).
MAX_MMAP_THRESHOLD = 32 * 1024 * 1024
_LANGUAGE = re.compile(r"^[a-z]{3}_[A-Z][a-z]{3}$")
_CUDA_INDEX = re.compile(r"^cuda:\d+$")


def device_type(device: str) -> str:
    """'cuda:1' -> 'cuda' (the benchmarks table keys rows by device type)."""
    return device.split(":", 1)[0]


def _choices(value: Any, allowed: tuple[str, ...], *, auto: bool) -> Any:
    """'auto' (when allowed) or a non-empty list of distinct names from `allowed`."""
    if auto and value == "auto":
        return value
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items:
        extra = "'auto' or " if auto else ""
        raise ValueError(f"{value!r} is not allowed; expected {extra}a non-empty list of: "
                         f"{', '.join(allowed)}")
    for item in items:
        if item not in allowed:
            extra = " (or 'auto' for the whole field)" if auto else ""
            raise ValueError(f"{item!r} is not allowed; allowed: {', '.join(allowed)}{extra}")
    return list(dict.fromkeys(items))


class BenchSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    batch_sizes: list[int] = Field(default_factory=lambda: [1, 8, 32])
    seq_lens: list[int] = Field(default_factory=lambda: [128, 512])
    dtypes: Union[str, list[str]] = "auto"
    devices: Union[str, list[str]] = "auto"
    targets: list[str] = Field(default_factory=lambda: list(TARGETS))
    real_task: str = "topic"
    real_languages: list[str] = Field(default_factory=list)
    real_max_length: int = 512
    warmup: int = 2
    min_iterations: int = 10
    min_duration_s: float = 2.0
    threads: int | None = None
    seed: int = 0
    repeats: int = 3
    memory_mmap_threshold: int | None = 65536

    @field_validator("batch_sizes", "seq_lens", mode="after")
    @classmethod
    def _positive_list(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError("[] is not allowed; give at least one positive integer")
        bad = [v for v in value if v < 1]
        if bad:
            raise ValueError(f"{bad[0]!r} is not allowed; allowed: positive integers")
        return sorted(set(value))

    @field_validator("dtypes", mode="before")
    @classmethod
    def _dtypes(cls, value: Any) -> Any:
        return _choices(value, DTYPES, auto=True)

    @field_validator("devices", mode="before")
    @classmethod
    def _devices(cls, value: Any) -> Any:
        if isinstance(value, str) and value != "auto":
            value = [value]
        if not isinstance(value, (list, tuple)):
            return _choices(value, DEVICES, auto=True)
        # 'cuda:1' names one GPU: it is checked as 'cuda' and kept as given.
        _choices([device_type(v) if isinstance(v, str) and _CUDA_INDEX.match(v) else v for v in value],
                 DEVICES, auto=True)
        return list(dict.fromkeys(value))

    @field_validator("targets", mode="before")
    @classmethod
    def _targets(cls, value: Any) -> Any:
        return _choices(value, TARGETS, auto=False)

    @field_validator("real_languages", mode="after")
    @classmethod
    def _languages(cls, value: list[str]) -> list[str]:
        for code in value:
            if not _LANGUAGE.match(code):
                raise ValueError(f"{code!r} is not allowed; allowed: ISO 639-3 + script codes "
                                 f"such as 'mlt_Latn'")
        return list(dict.fromkeys(value))

    @field_validator("real_max_length", "min_iterations", "repeats", mode="after")
    @classmethod
    def _at_least_one(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"{value!r} is not allowed; allowed: an integer >= 1")
        return value

    @field_validator("warmup", mode="after")
    @classmethod
    def _non_negative(cls, value: int) -> int:
        if value < 0:
            raise ValueError(f"{value!r} is not allowed; allowed: an integer >= 0")
        return value

    @field_validator("min_duration_s", mode="after")
    @classmethod
    def _non_negative_float(cls, value: float) -> float:
        if value < 0:
            raise ValueError(f"{value!r} is not allowed; allowed: a number of seconds >= 0")
        return value

    @field_validator("threads", mode="after")
    @classmethod
    def _threads(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError(f"{value!r} is not allowed; allowed: null or an integer >= 1")
        return value

    @field_validator("memory_mmap_threshold", mode="after")
    @classmethod
    def _mmap_threshold(cls, value: int | None) -> int | None:
        if value is not None and not 1 <= value <= MAX_MMAP_THRESHOLD:
            raise ValueError(f"{value!r} is not allowed; allowed: null or bytes from 1 to "
                             f"{MAX_MMAP_THRESHOLD} (glibc ignores larger thresholds)")
        return value

    def memory_env(self) -> dict[str, str] | None:
        """The environment of the memory processes, or None when the latency processes measure
        memory too. Fixing glibc's mmap threshold turns off its dynamic adjustment, which made
        the peak RSS of a process depend on the order its buffers were freed (see
        docs/benchmarks.md); it also makes every large buffer fresh pages, which slows a forward
        pass, hence separate processes."""
        if self.memory_mmap_threshold is None:
            return None
        return {"MALLOC_MMAP_THRESHOLD_": str(self.memory_mmap_threshold)}

    # -- resolution against this machine -------------------------------------------------------
    def resolved_devices(self, cuda_available: bool | None = None) -> list[str]:
        """The devices to measure on; 'cuda' named without a GPU is a ConfigError."""
        if cuda_available is None:
            import torch

            cuda_available = torch.cuda.is_available()
        if self.devices == "auto":
            return ["cuda", "cpu"] if cuda_available else ["cpu"]
        if any(device_type(d) == "cuda" for d in self.devices) and not cuda_available:
            raise ConfigError("benchmark.devices names 'cuda' but torch sees no CUDA device; "
                              "use devices: auto or [cpu] on this machine")
        return list(self.devices)

    def resolved_dtypes(self, device: str) -> list[str]:
        """`auto`: fp32, and bf16 where the device computes it natively (core.precision). A listed
        CPU-only dtype is left out on a GPU."""
        if self.dtypes == "auto":
            return ["fp32", "bf16"] if fast_bf16(device) else ["fp32"]
        if device_type(device) != "cpu":
            return [d for d in self.dtypes if d not in CPU_ONLY_DTYPES]
        return list(self.dtypes)

    @property
    def in_eval(self) -> bool:
        """Whether `harness eval` benchmarks its models too (the `enabled` field)."""
        return self.enabled


def format_validation_error(exc: ValidationError, where: str = "benchmark") -> str:
    """One line per problem: '<where>.<field>: <what is wrong and what is allowed>'."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in (where, *err["loc"]))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = (f"unknown field {err['loc'][-1]!r}; allowed: "
                   f"{', '.join(BenchSection.model_fields)}")
            loc = where
        elif "input" in err and not msg.startswith(repr(err["input"])[:20]) and err["type"] != "value_error":
            msg = f"{err['input']!r}: {msg}"
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


def load_bench_section(data: Mapping[str, Any] | None, where: str = "benchmark") -> BenchSection:
    """Validate a `benchmark:` mapping (None: the defaults); errors become one ConfigError line."""
    try:
        return BenchSection.model_validate(dict(data or {}))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, where)) from None
