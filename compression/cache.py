"""The stage cache: every stage output lives under a key = hash(parent key, stage config, data).

- The teacher's key hashes its source, revision and a digest of its files, so an edited local
  teacher is a different teacher.
- A stage's key hashes its parent's key, its full config, its module's VERSION (bumped when a code
  change alters outputs), the fingerprint of the text it uses (only
  for stages that read text: a depth reduction is shared by every language), the seed (only for
  stages that draw random numbers) and, for a distillation, its teacher's key. Points that share a
  prefix of their chain therefore share its entries, a second run finds everything, and a changed
  setting changes the keys of that stage and of everything after it, nothing before.
- An entry is written in a work directory and renamed into place only when complete (rename is
  atomic), so an interrupted build never leaves a half-written entry. Distillation work
  directories survive an interruption so a checkpointing distillation can resume; others are
  removed. A lock file per key keeps two processes from building the same entry. Locks and work
  directories name their process as pid@host: on storage shared by several machines (a Ray
  cluster), a process is judged dead, and its lock or work directory cleared, only by its own host.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import time
import uuid
from pathlib import Path
from typing import Callable

from compression.manifest import MANIFEST_FILE
from compression.stages import stage_module
from core.errors import UserError
from core.paths import pid_alive

CACHE_FORMAT = 1
DEFAULT_CACHE_DIR = Path("results") / "compression"
_DIGEST_BYTES = 1 << 20


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def dir_digest(path: Path) -> str:
    """A cheap content digest of a model directory: config, tokenizer files in full, weight
    files by size and their first and last MiB."""
    h = hashlib.sha256()
    for f in sorted(Path(path).iterdir()):
        if not f.is_file() or f.name == MANIFEST_FILE:
            continue
        h.update(f.name.encode())
        size = f.stat().st_size
        h.update(str(size).encode())
        with f.open("rb") as fh:
            if size <= 2 * _DIGEST_BYTES:
                h.update(fh.read())
            else:
                h.update(fh.read(_DIGEST_BYTES))
                fh.seek(size - _DIGEST_BYTES)
                h.update(fh.read())
    return h.hexdigest()[:24]


def teacher_key(source: str, revision: str | None, path: Path) -> str:
    return "teacher-" + _hash({"format": CACHE_FORMAT, "source": source, "revision": revision,
                                "files": dir_digest(path)})[:20]


def stage_key(parent_key: str, cfg, *, data_fingerprint: str | None, seed: int | None,
              distill_teacher_key: str | None = None) -> str:
    payload = {"format": CACHE_FORMAT, "parent": parent_key, "stage": cfg.model_dump(mode="json"),
               "version": stage_module(cfg.stage).VERSION, "data": data_fingerprint, "seed": seed,
               "teacher": distill_teacher_key}
    return f"{cfg.stage}-{_hash(payload)[:20]}"


def _owner() -> str:
    return f"{os.getpid()}@{socket.gethostname()}"


def _owner_gone(owner: str) -> bool:
    """Whether the process named by `owner` ('pid@host', or a bare pid from an older version:
    this host) is known to be dead. Another host's processes cannot be checked from here."""
    pid, _, host = owner.strip().partition("@")
    if host and host != socket.gethostname():
        return False
    return pid.isdigit() and int(pid) > 0 and not pid_alive(int(pid))


class StageCache:
    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root is not None else DEFAULT_CACHE_DIR

    def path(self, key: str) -> Path:
        return self.root / key

    def has(self, key: str) -> bool:
        return (self.path(key) / MANIFEST_FILE).is_file()

    def _lock(self, key: str, wait_s: float = 24 * 3600) -> Path | None:
        """Take the key's lock; None when another process finished the entry meanwhile."""
        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        lock = locks / f"{key}.lock"
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                os.write(fd, _owner().encode())
                os.close(fd)
                return lock
            except FileExistsError:
                try:
                    holder = lock.read_text()
                except OSError:
                    holder = ""
                if _owner_gone(holder):
                    lock.unlink(missing_ok=True)  # stale: its process is gone
                    continue
                if self.has(key):
                    return None
                if time.monotonic() > deadline:
                    raise UserError(f"cache entry {key} is being built by process {holder.strip() or '?'}; "
                                    f"wait for it or remove {lock}")
                time.sleep(2)

    def build(self, key: str, fn: Callable[[Path], None], *, resumable: bool = False) -> Path:
        """Return the entry for `key`, calling fn(work_dir) to write it when it is missing."""
        final = self.path(key)
        if self.has(key):
            return final
        lock = self._lock(key)
        if lock is None:
            return final
        try:
            if self.has(key):
                return final
            if resumable:
                work = self.root / ".work" / key
            else:
                work = self.root / ".tmp" / f"{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
            work.mkdir(parents=True, exist_ok=True)
            try:
                fn(work)
                if not (work / MANIFEST_FILE).is_file():
                    raise RuntimeError(f"stage {key} finished without writing {MANIFEST_FILE}")
                if final.exists():  # a partial entry from an older version: never trust it
                    shutil.rmtree(final)
                os.rename(work, final)
            except BaseException:
                if not resumable:
                    shutil.rmtree(work, ignore_errors=True)
                raise
            return final
        finally:
            lock.unlink(missing_ok=True)

    def clean_stale(self) -> int:
        """Remove temporary directories left by killed processes of this host; returns how many."""
        tmp = self.root / ".tmp"
        removed = 0
        for d in tmp.iterdir() if tmp.is_dir() else []:
            name, _, host = d.name.partition("@")
            parts = name.rsplit("-", 2)
            if len(parts) == 3 and _owner_gone(f"{parts[1]}@{host}" if host else parts[1]):
                shutil.rmtree(d, ignore_errors=True)
                removed += 1
        return removed
