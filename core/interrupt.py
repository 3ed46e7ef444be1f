"""`kill` (SIGTERM) stops long work like Ctrl-C, and the request cannot be lost.

Raising KeyboardInterrupt from the signal handler alone is not enough: when the signal lands while
Python runs a `__del__` method or a weakref callback (garbage collection during a training step),
the exception is printed as "Exception ignored in ..." and the work goes on. So the handler also
records the request, and every long loop calls `check()` once per step or run, which raises it
again at the next boundary."""
from __future__ import annotations

import signal

_requested: int | None = None


def request_stop(signum: int, frame=None) -> None:
    """The SIGTERM handler: remember the request, then interrupt at once where Python lets us."""
    global _requested
    _requested = signum
    raise KeyboardInterrupt(f"signal {signum}")


def check() -> None:
    """Raise KeyboardInterrupt if a stop was requested (call at each step of long work)."""
    if _requested is not None:
        raise KeyboardInterrupt(f"signal {_requested}")


def install() -> None:
    """Route SIGTERM to `request_stop` (a background job started with `&` ignores SIGINT)."""
    signal.signal(signal.SIGTERM, request_stop)


def clear() -> None:
    """Forget a request (a process that goes on after handling one, e.g. a test)."""
    global _requested
    _requested = None
