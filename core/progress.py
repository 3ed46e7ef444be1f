"""Progress bars for long work: counts, rates and a postfix, on stderr; quiet when not a TTY
unless forced (HARNESS_PROGRESS=1), so logs of CI runs stay readable."""
from __future__ import annotations

import os
import sys
from typing import Iterable, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress_enabled() -> bool:
    env = os.environ.get("HARNESS_PROGRESS")
    if env is not None:
        return env not in ("0", "false", "no", "")
    return sys.stderr.isatty()


def bar(iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str = "",
        unit: str = "it", leave: bool = False, **kwargs) -> tqdm:
    """A tqdm bar with the project's defaults (rate shown in `unit`/s)."""
    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave,
                disable=not progress_enabled(), dynamic_ncols=True, file=sys.stderr, **kwargs)
