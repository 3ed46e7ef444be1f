"""Where the project keeps things it can rebuild: converted models, fetched data, stage outputs."""
from __future__ import annotations

import os
import socket
from pathlib import Path

APP_NAME = "lrl-harness"


def cache_root() -> Path:
    """$HARNESS_CACHE_DIR, else the user cache directory (e.g. ~/.cache/lrl-harness)."""
    env = os.environ.get("HARNESS_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir
    return Path(user_cache_dir(APP_NAME))


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def worker_id() -> str:
    """This process, as `host:pid` (who owns a run or a lock)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def worker_alive(worker: str | None) -> bool | None:
    """True/False for a worker on this host; None when it ran elsewhere (cannot tell)."""
    if not worker or ":" not in worker:
        return None
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    return pid_alive(int(pid))
