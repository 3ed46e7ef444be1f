"""Where the project keeps things it can rebuild: converted models, fetched data, stage outputs."""
from __future__ import annotations

import hashlib
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
    """Whether a live process with this id exists on this machine (a zombie, which has exited
    and waits to be reaped, is not alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        pass
    return _start_time(pid) is not None


def _start_time(pid: int) -> float | None:
    """The process's start time (seconds since the epoch), or None when it is gone or a zombie."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc.create_time()
    except psutil.NoSuchProcess:
        return None
    except psutil.AccessDenied:  # exists; its start time is not ours to read
        return float("nan")


def worker_id(pid: int | None = None) -> str:
    """A process, as `host:pid:start` (who owns a run): the start time (psutil's create_time, to
    the centisecond) tells a process from a later one that got the same pid."""
    pid = os.getpid() if pid is None else pid
    start = _start_time(pid)
    return f"{socket.gethostname()}:{pid}:{start:.2f}" if start is not None else f"{socket.gethostname()}:{pid}"


# A recorded start time and the live process's may differ by psutil's rounding of boot time.
_START_TOLERANCE_S = 1.0


def worker_alive(worker: str | None) -> bool | None:
    """True/False for a worker on this host; None when it ran elsewhere (cannot tell).

    Alive means: a live (non-zombie) process with that pid which started when the worker did; a
    process that reused the pid started later, so the worker is dead. An id without a start time
    (written by an older version) is judged by the pid alone."""
    if not worker or ":" not in worker:
        return None
    host, _, rest = worker.partition(":")
    pid, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    now_start = _start_time(int(pid))
    if now_start is None:
        return False
    if not start or now_start != now_start:    # legacy id, or a start time we may not read (nan)
        return True
    try:
        return abs(now_start - float(start)) <= _START_TOLERANCE_S
    except ValueError:
        return True


_NETWORK_FS = {"nfs", "nfs4", "cifs", "smb3", "smbfs", "lustre", "gpfs", "beegfs", "ceph", "glusterfs",
               "fuse.sshfs", "fuse.glusterfs", "fuse.cephfs", "9p", "afs", "ocfs2", "gfs2"}


def network_filesystem(path: Path, mounts_file: Path = Path("/proc/mounts")) -> str | None:
    """The type of the network filesystem holding `path` (nfs, cifs, lustre, ...), or None (a local
    one, or no mount table to read)."""
    try:
        mounts = mounts_file.read_text().splitlines()
    except OSError:
        return None
    target = str(Path(path).resolve())
    best_mount, best_type = "", None
    for line in mounts:
        parts = line.split()
        if len(parts) < 3:
            continue
        mount = parts[1].replace("\\040", " ")
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best_mount):
            best_mount, best_type = mount, parts[2]
    return best_type if best_type in _NETWORK_FS else None


def worker_host(worker: str | None) -> str | None:
    """The host of a `host:pid:start` worker id."""
    return worker.partition(":")[0] if worker and ":" in worker else None


_hash_cache: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of a file, cached per (resolved path, size, mtime_ns)."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _hash_cache:
        h = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
        _hash_cache[key] = h.hexdigest()
    return _hash_cache[key]
