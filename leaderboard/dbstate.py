"""What the results database holds, and what to tell the user when it holds too little.

An empty or partial database is a normal state (a grid has not run yet, or is half-way), so every
case gets a message saying what to run instead of a stack trace.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.store import HARNESS_TABLES, HARNESS_VIEWS, Store, StoreBusy, StoreError
from leaderboard import queries

EVAL_CMD = "harness eval --models examples/grid.yaml"
BENCH_CMD = "harness bench --models examples/grid.yaml"

# What the pages read; `meta` (written by newer files only) is left to Store's version check.
REQUIRED_RELATIONS = (HARNESS_TABLES - {"meta"}) | HARNESS_VIEWS

NO_COMPRESSED = (
    "No compressed models in the database yet, only teachers. Add a `compression` section to the "
    f"grid and run `{EVAL_CMD}`."
)
NO_BENCHMARKS = f"No benchmarks yet: `{BENCH_CMD}` measures latency and memory for every model."
NO_LANGUAGES = (
    "The languages table is empty, so the teachers' pre-training data sizes are unknown. "
    f"`{EVAL_CMD}` fills it from tasks/teacher_data_sizes.csv."
)


@dataclass(frozen=True)
class DbState:
    path: Path
    kind: str                           # 'ok' | 'missing' | 'directory' | 'unreadable' | 'busy' | 'outdated'
                                        # | 'no_tables' | 'no_runs'
    problem: str | None = None          # set when nothing can be shown: the message to show
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.problem is None

    def count(self, name: str) -> int:
        return int(self.counts.get(name, 0))


def inspect(db_path: str | Path) -> DbState:
    """Open the file read-only once and classify it: missing, unreadable, busy, empty, usable."""
    path = Path(db_path)
    if not path.exists():
        return DbState(path, "missing",
                       f"No results database at `{path}`. Run `{EVAL_CMD}` to create it, "
                       "or open another file with `harness leaderboard --db PATH`.")
    if path.is_dir():
        return DbState(path, "directory",
                       f"`{path}` is a directory; pass the DuckDB file with `--db PATH`.")
    try:
        missing = REQUIRED_RELATIONS - set(queries.tables(path)["table_name"])
        if missing:
            return DbState(path, "no_tables",
                           f"`{path}` is a DuckDB file without the harness tables (missing: "
                           f"{', '.join(sorted(missing))}). Run `{EVAL_CMD}` to create them.")
        try:   # a file from an older version: the message says how to upgrade it
            Store(path, lock_timeout_s=queries.LOCK_TIMEOUT_S).open_for_reading()
        except StoreBusy as exc:
            return DbState(path, "busy", str(exc))
        except StoreError as exc:
            return DbState(path, "outdated", str(exc))
        counts = {k: int(v) for k, v in queries.overview(path).iloc[0].items()}
    except queries.DatabaseBusy as exc:  # the messages already say what to do
        return DbState(path, "busy", str(exc))
    except queries.DatabaseUnreadable as exc:
        return DbState(path, "unreadable", str(exc))
    if counts["n_main_scores"] == 0:
        running, failed = counts["n_runs_running"], counts["n_runs_failed"]
        detail = f" ({running} running, {failed} failed)" if running or failed else ""
        return DbState(path, "no_runs",
                       f"No finished runs in `{path}` yet{detail}. Run `{EVAL_CMD}`; this page "
                       "shows results as soon as the first run is stored.", counts)
    return DbState(path, "ok", None, counts)
