"""Named read-only queries over the results store, each returning a pandas DataFrame.

All SQL the leaderboard runs is in this file. Aggregation lives in DuckDB: the store's persistent
views (v_main_test, v_relative, v_bench_vs_teacher) plus a few TEMP views created on each
connection (a read-only file cannot hold new views). Values enter SQL only as bound parameters.

Concurrency (see harness.store): a DuckDB file has one writer process or many read-only ones, so
every query opens the file read-only, runs, and closes; a connection never outlives a call, and
opening retries while a grid holds the write lock.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import duckdb
import pandas as pd

from core.errors import UserError
from harness.store import PROTOCOL_LABELS, Store, StoreBusy, StoreError

# How long a page load waits for a writing grid to release the file before giving up.
LOCK_TIMEOUT_S = 15.0


class DatabaseBusy(UserError):
    """The file stayed locked by a writer longer than LOCK_TIMEOUT_S."""


class DatabaseUnreadable(UserError):
    """The file exists but DuckDB cannot open it (not a DuckDB file, newer format, ...)."""


# -- TEMP views: model attributes joined onto the store's persistent views ----------------------
TEMP_VIEWS = """
CREATE OR REPLACE TEMP VIEW lb_model_info AS
SELECT m.model_key,
       -- two models may share a name (the same point built with other distillation settings):
       -- then show their keys, whose hash tells them apart
       CASE WHEN count(*) OVER (PARTITION BY coalesce(m.name, m.model_key)) > 1 THEN m.model_key
            ELSE coalesce(m.name, m.model_key) END AS model,
       m.kind,
       coalesce(m.teacher_key, m.model_key) AS teacher_key,
       coalesce(t.name, m.teacher_key, m.model_key) AS teacher,
       m.language AS model_language,
       coalesce(m.teacher_data, t.teacher_data) AS teacher_data,
       coalesce(m.stage_chain, '') AS stage_chain,
       m.params_total, m.params_embedding, m.params_non_embedding,
       m.vocab_size, m.hidden_size, m.num_layers, m.ffn_size,
       coalesce(m.compression_ratio, CASE WHEN m.kind = 'teacher' THEN 1.0 END) AS compression_ratio
FROM models m LEFT JOIN models t ON t.model_key = m.teacher_key;

CREATE OR REPLACE TEMP VIEW lb_main_scores AS
SELECT i.*, s.task, s.language, s.protocol_hash, s.metric, s.derived, s.mean, s.std, s.n, s.seeds
FROM v_main_test s JOIN lb_model_info i USING (model_key);

CREATE OR REPLACE TEMP VIEW lb_relative AS
SELECT i.*, r.task, r.language, r.protocol_hash, r.derived, r.metric, r.score, r.teacher_score,
       r.teacher_seeds_matched, r.relative_score, r.relative_drop, r.relative_std, r.paired_seeds
FROM v_relative r JOIN lb_model_info i USING (model_key);

-- The teacher's pre-training data for each language: the column the teacher's teacher_data
-- names, and whether the teacher saw the language at all (in_xlmr / in_mbert, or a NULL size).
CREATE OR REPLACE TEMP VIEW lb_degradation AS
SELECT r.*, l.name AS language_name,
       CASE r.teacher_data WHEN 'cc100' THEN l.cc100_gib
                           WHEN 'wikipedia' THEN l.wikipedia_gib END AS teacher_gib,
       CASE
         WHEN l.code IS NULL THEN 'no size recorded'
         WHEN r.teacher_data IS NULL OR r.teacher_data NOT IN ('cc100', 'wikipedia')
              THEN 'teacher data unknown'
         WHEN r.teacher_data = 'cc100' AND l.cc100_gib > 0 AND coalesce(l.in_xlmr, true) THEN 'seen'
         WHEN r.teacher_data = 'wikipedia' AND l.wikipedia_gib > 0 AND coalesce(l.in_mbert, true)
              THEN 'seen'
         ELSE 'not seen by teacher'
       END AS data_status
FROM lb_relative r LEFT JOIN languages l ON l.code = r.language;
"""

# A protocol family is a grid's whole protocol section: within it each task has one resolved
# protocol (hash). Databases written before the `protocols` table existed get one family per hash.
# label: the store's short label of the task's protocol (profile/precision, teacher-label settings).
PROTOCOL_VIEW = f"""
CREATE OR REPLACE TEMP VIEW lb_protocols AS
SELECT p.protocol_id, p.task, p.protocol_hash, p.profile, l.label
FROM protocols p LEFT JOIN {PROTOCOL_LABELS} l USING (protocol_hash)
UNION ALL
SELECT DISTINCT r.protocol_hash, r.task, r.protocol_hash, NULL, NULL FROM runs r
WHERE NOT EXISTS (SELECT 1 FROM protocols p WHERE p.task = r.task AND p.protocol_hash = r.protocol_hash);
"""
PROTOCOL_VIEW_WITHOUT_TABLE = """
CREATE OR REPLACE TEMP VIEW lb_protocols AS
SELECT DISTINCT protocol_hash AS protocol_id, task, protocol_hash, NULL AS profile, NULL AS label FROM runs;
"""

# -- named queries ------------------------------------------------------------------------------
SQL: dict[str, str] = {
    "tables": "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'",
    "overview": """
        SELECT (SELECT count(*) FROM models) AS n_models,
               (SELECT count(*) FROM models WHERE kind = 'teacher') AS n_teachers,
               (SELECT count(*) FROM models WHERE kind = 'compressed') AS n_compressed,
               (SELECT count(*) FROM runs WHERE status = 'done') AS n_runs_done,
               (SELECT count(*) FROM runs WHERE status = 'running') AS n_runs_running,
               (SELECT count(*) FROM runs WHERE status = 'failed') AS n_runs_failed,
               (SELECT count(*) FROM scores WHERE split = 'test' AND is_main) AS n_main_scores,
               (SELECT count(*) FROM benchmarks WHERE status = 'done') AS n_benchmarks,
               (SELECT count(*) FROM languages) AS n_languages""",
    "protocols": """
        SELECT p.protocol_id, any_value(p.profile) AS profile, max(p.label) AS label,  -- a teacher-label label sorts after the plain one it extends
               count(DISTINCT r.run_id) AS n_runs,
               string_agg(DISTINCT p.task, ', ' ORDER BY p.task) AS tasks
        FROM lb_protocols p JOIN runs r ON r.task = p.task AND r.protocol_hash = p.protocol_hash
        WHERE r.status = 'done'
        GROUP BY p.protocol_id ORDER BY n_runs DESC, p.protocol_id""",
    "protocol_members": "SELECT task, protocol_hash FROM lb_protocols WHERE protocol_id = ?",
    "models": "SELECT * FROM lb_model_info ORDER BY kind <> 'teacher', teacher, model",
    "main_scores": """
        SELECT s.* FROM lb_main_scores s JOIN lb_protocols p ON p.task = s.task
             AND p.protocol_hash = s.protocol_hash
        WHERE p.protocol_id = ?
        ORDER BY s.teacher, s.kind <> 'teacher', s.model, s.task, s.language""",
    "relative_scores": """
        SELECT s.* FROM lb_relative s JOIN lb_protocols p ON p.task = s.task
             AND p.protocol_hash = s.protocol_hash
        WHERE p.protocol_id = ?
        ORDER BY s.teacher, s.model, s.task, s.language""",
    "degradation_points": """
        SELECT s.* FROM lb_degradation s JOIN lb_protocols p ON p.task = s.task
             AND p.protocol_hash = s.protocol_hash
        WHERE p.protocol_id = ?
        ORDER BY s.teacher, s.stage_chain, s.language, s.task""",
    # the manifests of compressed models (leaderboard/budget.py reads their distillation stages)
    "compressed_manifests": """
        SELECT model_key, CAST(manifest AS VARCHAR) AS manifest FROM models
        WHERE kind = 'compressed' AND manifest IS NOT NULL ORDER BY model_key""",
    "languages": "SELECT * FROM languages ORDER BY code",
    "benchmark_shapes": """
        SELECT target, device, dtype, batch_size, seq_len, count(DISTINCT model_key) AS n_models
        FROM benchmarks WHERE status = 'done'
        GROUP BY target, device, dtype, batch_size, seq_len
        ORDER BY target <> 'forward', n_models DESC, device, dtype, batch_size, seq_len""",
    "benchmarks_at": """
        SELECT b.model_key, b.latency_p50_ms, b.latency_p90_ms, b.throughput_seq_s,
               CASE WHEN b.device = 'cpu' THEN b.cpu_peak_rss_mb
                    ELSE coalesce(b.cuda_peak_allocated_mb, b.nvml_process_mb) END AS memory_mb,
               v.speedup_p50
        FROM benchmarks b
        LEFT JOIN v_bench_vs_teacher v ON v.model_key = b.model_key AND v.target = b.target
             AND v.device = b.device AND v.dtype = b.dtype AND v.batch_size = b.batch_size
             AND v.seq_len = b.seq_len
        WHERE b.status = 'done' AND b.target = ? AND b.device = ? AND b.dtype = ?
              AND b.batch_size = ? AND b.seq_len = ?""",
    "model_record": "SELECT * FROM models WHERE model_key = ?",
    "model_score_summary": """
        SELECT task, language, split, metric, is_main, derived, mean, std, n, seeds, protocol_hash
        FROM v_score_summary WHERE model_key = ?
        ORDER BY task, language, split <> 'test', NOT is_main, metric""",
    "model_seed_scores": """
        SELECT s.task, s.language, s.split, s.metric, s.seed, s.value, s.is_main, s.derived,
               s.protocol_hash
        FROM scores s JOIN runs r USING (run_id)
        WHERE r.status = 'done' AND s.model_key = ?
        ORDER BY s.task, s.language, s.split <> 'test', NOT s.is_main, s.metric, s.seed""",
    "model_runs": """
        SELECT task, language, seed, status, dataset, derived, derivation, n_train, n_dev, n_test,
               best_epoch, train_seconds, eval_seconds, finished_at, error, protocol_hash
        FROM runs WHERE model_key = ? ORDER BY status <> 'failed', task, language, seed""",
    "model_benchmarks": """
        SELECT target, device, dtype, batch_size, seq_len, status, n_iterations,
               latency_p50_ms, latency_p90_ms, latency_p99_ms, throughput_seq_s, throughput_tok_s,
               cpu_peak_rss_mb, cuda_peak_allocated_mb, cuda_peak_reserved_mb, nvml_process_mb,
               error
        FROM benchmarks WHERE model_key = ?
        ORDER BY target, device, dtype, batch_size, seq_len""",
}

# Queries that read the TEMP views need them created on their connection first.
_NEEDS_TEMP_VIEWS = {"models", "main_scores", "relative_scores", "degradation_points", "protocols",
                     "protocol_members"}


@contextlib.contextmanager
def connect(db_path: str | Path, *, with_views: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived read-only connection (retrying while a writer holds the lock)."""
    store = Store(db_path, lock_timeout_s=LOCK_TIMEOUT_S)
    with contextlib.ExitStack() as stack:
        try:
            con = stack.enter_context(store.connect(read_only=True))
        except StoreBusy as exc:  # the store's retry ran out: say it in the page's terms
            raise DatabaseBusy(f"{db_path} is locked by a process writing results; "
                               "reload the page in a moment") from exc
        except StoreError as exc:
            raise DatabaseUnreadable(str(exc)) from exc
        if with_views:
            con.execute(TEMP_VIEWS)
            has_protocols = con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = 'protocols'").fetchone()[0]
            con.execute(PROTOCOL_VIEW if has_protocols else PROTOCOL_VIEW_WITHOUT_TABLE)
        yield con


def run_query(db_path: str | Path, name: str, params: Sequence[Any] = ()) -> pd.DataFrame:
    """Run the named query with bound `params` on a fresh read-only connection."""
    sql = SQL[name]
    with connect(db_path, with_views=name in _NEEDS_TEMP_VIEWS) as con:
        return con.execute(sql, list(params)).df()


# Public, named entry points: one function per question the app asks.
def tables(db: str | Path) -> pd.DataFrame:
    return run_query(db, "tables")


def overview(db: str | Path) -> pd.DataFrame:
    return run_query(db, "overview")


def protocols(db: str | Path) -> pd.DataFrame:
    return run_query(db, "protocols")


def models(db: str | Path) -> pd.DataFrame:
    return run_query(db, "models")


def protocol_members(db: str | Path, protocol_id: str) -> pd.DataFrame:
    return run_query(db, "protocol_members", [protocol_id])


def main_scores(db: str | Path, protocol_id: str) -> pd.DataFrame:
    return run_query(db, "main_scores", [protocol_id])


def relative_scores(db: str | Path, protocol_id: str) -> pd.DataFrame:
    return run_query(db, "relative_scores", [protocol_id])


def degradation_points(db: str | Path, protocol_id: str) -> pd.DataFrame:
    return run_query(db, "degradation_points", [protocol_id])


def compressed_manifests(db: str | Path) -> pd.DataFrame:
    return run_query(db, "compressed_manifests")


def languages(db: str | Path) -> pd.DataFrame:
    return run_query(db, "languages")


def benchmark_shapes(db: str | Path) -> pd.DataFrame:
    return run_query(db, "benchmark_shapes")


def benchmarks_at(db: str | Path, target: str, device: str, dtype: str, batch_size: int,
                  seq_len: int) -> pd.DataFrame:
    return run_query(db, "benchmarks_at", [target, device, dtype, int(batch_size), int(seq_len)])


def model_record(db: str | Path, model_key: str) -> pd.DataFrame:
    return run_query(db, "model_record", [model_key])


def model_score_summary(db: str | Path, model_key: str) -> pd.DataFrame:
    return run_query(db, "model_score_summary", [model_key])


def model_seed_scores(db: str | Path, model_key: str) -> pd.DataFrame:
    return run_query(db, "model_seed_scores", [model_key])


def model_runs(db: str | Path, model_key: str) -> pd.DataFrame:
    return run_query(db, "model_runs", [model_key])


def model_benchmarks(db: str | Path, model_key: str) -> pd.DataFrame:
    return run_query(db, "model_benchmarks", [model_key])


NAMED: dict[str, Callable[..., pd.DataFrame]] = {
    f.__name__: f for f in (
        tables, overview, protocols, protocol_members, models, main_scores, relative_scores,
        degradation_points, compressed_manifests, languages, benchmark_shapes, benchmarks_at,
        model_record, model_score_summary, model_seed_scores, model_runs, model_benchmarks,
    )
}
