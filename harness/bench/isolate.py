"""Run one measurement in a fresh child process (multiprocessing 'spawn').

A fresh interpreter per measurement is what makes memory figures mean something: the peak RSS
of a process that has held a larger model before, or whose allocator caches a larger batch's
buffers, says nothing about this one. 'spawn' (not 'fork') also keeps CUDA usable in the child
and starts it without the parent's heap.
"""
from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import traceback
from typing import Any, Callable, Iterator, Mapping


class ChildFailed(RuntimeError):
    """The child raised (the message carries its traceback) or died without an answer."""


def _child_main(conn, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
    try:
        result = fn(*args, **kwargs)
    except BaseException:  # noqa: BLE001 - everything goes back to the parent as text
        conn.send(("error", traceback.format_exc()))
    else:
        conn.send(("ok", result))
    finally:
        conn.close()


def _death_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (likely out of memory: the OS killed it)" if -exitcode == signal.SIGKILL else ""
        return f"the measuring process was killed by {name}{hint}"
    return f"the measuring process exited with code {exitcode} without a result"


@contextlib.contextmanager
def _environment(env: Mapping[str, str] | None) -> Iterator[None]:
    """os.environ with `env` applied, restored afterwards.

    A spawned child is exec'ed with the parent's environment as it is at `Process.start()`, and
    some settings are read only when a process starts (glibc reads MALLOC_* when malloc
    initialises), so they can reach the child only this way. The parent's own allocator has
    long been initialised, so it is not affected.
    """
    if not env:
        yield
        return
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update({name: str(value) for name, value in env.items()})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_in_child(fn: Callable[..., Any], *args: Any, timeout_s: float | None = None,
                 env: Mapping[str, str] | None = None, **kwargs: Any) -> Any:
    """Call `fn(*args, **kwargs)` in a fresh spawned process and return its (picklable) result.

    `fn` must be importable (a module-level function). `env`: environment variables set for the
    child only (see `_environment`). Raises ChildFailed with the child's traceback if it raised,
    or with the reason if it died or ran past `timeout_s`.
    """
    ctx = mp.get_context("spawn")
    recv_end, send_end = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child_main, args=(send_end, fn, args, kwargs), daemon=True)
    with _environment(env):
        proc.start()
    send_end.close()  # so recv() sees EOF if the child dies
    try:
        if not recv_end.poll(timeout_s):
            proc.kill()
            proc.join()
            raise ChildFailed(f"the measuring process ran past {timeout_s:.0f} s and was stopped")
        try:
            status, payload = recv_end.recv()
        except EOFError:
            proc.join()
            raise ChildFailed(_death_reason(proc.exitcode)) from None
    finally:
        recv_end.close()
        if proc.is_alive():
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
                proc.join()
    if status == "error":
        raise ChildFailed(payload)
    return payload
