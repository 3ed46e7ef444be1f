"""The published results: Parquet snapshots under results/published/<name>/ (one file per table,
written by `harness results --export parquet`), committed with the repository so that a fresh clone
can browse them before running anything, as MTEB's results repository does for its leaderboard.

`published_database()` loads every snapshot into one DuckDB file in the cache, rebuilt only when
the snapshots change, for the leaderboard to open when the user has no results of their own.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from core.paths import cache_root
from harness.store import Store

PUBLISHED_DIR = Path("results") / "published"


def snapshots(root: Path = PUBLISHED_DIR) -> list[Path]:
    """The snapshot folders under `root` (those holding runs.parquet), sorted by name."""
    if not root.is_dir():
        return []
    return sorted(d for d in root.iterdir() if (d / "runs.parquet").is_file())


def _fingerprint(dirs: list[Path]) -> str:
    h = hashlib.sha256()
    for d in dirs:
        for f in sorted(d.glob("*.parquet")):
            h.update(f"{d.name}/{f.name}\0".encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def is_snapshot(path: Path) -> bool:
    return Path(path).is_dir() and (Path(path) / "runs.parquet").is_file()


def published_database(root: Path = PUBLISHED_DIR, cache: Path | None = None) -> Path | None:
    """A DuckDB file holding every published snapshot under `root` (None when there is none)."""
    dirs = snapshots(root)
    return snapshot_database(dirs, cache) if dirs else None


def snapshot_database(dirs: list[Path], cache: Path | None = None) -> Path:
    """A DuckDB file in the cache holding the given snapshots, built once per content."""
    target = (cache or cache_root() / "published") / f"published-{_fingerprint(dirs)}.duckdb"
    if target.is_file():
        return target
    partial = target.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    store = Store(partial)
    for d in dirs:
        store.import_snapshot(d)
    partial.replace(target)   # whole or absent: an interrupted build is not taken for a finished one
    return target
