"""The results file as users give it: a file that is not ours is refused in one line naming it,
and left unchanged; reading commands open read-only and never migrate; `--export` snapshots it."""
from __future__ import annotations

import duckdb
import pytest
from typer.testing import CliRunner

from cli.app import app
from harness.store import MIGRATIONS, RunInfo, RunKey, Store, StoreError, connect_with_retry


def _text(path):
    path.write_text("model,score\nteacher,0.9\n")


def _random(path):
    path.write_bytes(bytes(range(256)) * 40)


def _other_tables(path):
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE sales (id INTEGER, amount DOUBLE); INSERT INTO sales VALUES (1, 2.5)")
    con.close()


@pytest.fixture
def grid(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text(f"models: [{{name: m, source: {tmp_path / 'nowhere'}}}]\n"
                    "languages: [mlt_Latn]\ntasks: [topic]\n")
    return path


def _one_line_error(result, db):
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(db) in lines[0], result.output
    return lines[0]


@pytest.mark.parametrize("make, what", [(_text, "not a DuckDB database"),
                                        (_random, "not a DuckDB database"),
                                        (_other_tables, "DuckDB database of something else")])
@pytest.mark.parametrize("command", ["eval", "results"])
def test_a_file_that_is_not_a_results_file_is_one_line_and_unchanged(tmp_path, grid, make, what, command):
    db = tmp_path / "f.duckdb"
    make(db)
    before = db.read_bytes()
    args = ["eval", "--models", str(grid), "--no-bench"] if command == "eval" else ["results"]
    line = _one_line_error(CliRunner().invoke(app, [*args, "--db", str(db)]), db)
    assert what in line and "--db" in line        # what is wrong, and the way out
    assert db.read_bytes() == before


def test_an_unwritable_file_is_one_line(tmp_path, grid, monkeypatch):
    db = tmp_path / "r.duckdb"
    Store(db).init()
    real = duckdb.connect

    def connect(path, read_only=False, **kw):   # root can write anything: simulate the OS refusing
        if not read_only:
            raise duckdb.IOException(f'IO Error: Cannot open file "{path}": Permission denied')
        return real(path, read_only=read_only, **kw)

    monkeypatch.setattr(duckdb, "connect", connect)
    line = _one_line_error(CliRunner().invoke(app, ["eval", "--models", str(grid), "--no-bench",
                                                    "--db", str(db)]), db)
    assert "cannot be written (permission denied)" in line
    # reading needs no write access
    assert CliRunner().invoke(app, ["results", "--db", str(db)]).exit_code == 0


def test_results_reads_without_migrating_and_says_how_to_upgrade(tmp_path):
    db = tmp_path / "old.duckdb"
    Store(db).init()
    table, column, _ = MIGRATIONS[-1]
    with Store(db).transaction() as con:    # a file from before the last migration
        con.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    before = db.read_bytes()
    line = _one_line_error(CliRunner().invoke(app, ["results", "--db", str(db)]), db)
    assert "older version of the harness" in line and f"{table}.{column}" in line and "--upgrade" in line
    assert db.read_bytes() == before
    upgraded = CliRunner().invoke(app, ["results", "--db", str(db), "--upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    assert "no finished runs" in upgraded.output


def _with_an_old_view(db):
    """A file from before v_relative had its paired spread: the view without the new columns."""
    Store(db).init()
    with Store(db).transaction() as con:
        con.execute("CREATE OR REPLACE VIEW v_relative AS SELECT * EXCLUDE (relative_std, "
                    "paired_seeds) FROM v_relative")
    return db


def test_a_view_from_an_older_version_is_reported_and_upgraded(tmp_path):
    db = _with_an_old_view(tmp_path / "old-view.duckdb")
    before = db.read_bytes()
    line = _one_line_error(CliRunner().invoke(app, ["results", "--db", str(db), "--degradation"]), db)
    assert "older version of the harness" in line and "v_relative.relative_std" in line
    assert "--upgrade" in line and db.read_bytes() == before
    upgraded = CliRunner().invoke(app, ["results", "--db", str(db), "--upgrade", "--degradation"])
    assert upgraded.exit_code == 0, upgraded.output
    assert "no finished runs" in upgraded.output


def test_results_does_not_write_a_current_file(tmp_path):
    db = tmp_path / "r.duckdb"
    Store(db).init()
    before = db.read_bytes()
    assert CliRunner().invoke(app, ["results", "--db", str(db)]).exit_code == 0
    assert db.read_bytes() == before


def test_export_parquet_for_notebooks(tmp_path):
    db = tmp_path / "r.duckdb"
    store = Store(db).init()
    store.start_run(RunInfo(RunKey("m", "topic", "mlt_Latn", 1, "p"), "sib200", False, None))
    out = tmp_path / "snap"
    result = CliRunner().invoke(app, ["results", "--db", str(db), "--export", "parquet", str(out)])
    assert result.exit_code == 0, result.output
    assert {"runs.parquet", "scores.parquet", "v_main_test.parquet"} <= {p.name for p in out.iterdir()}
    con = duckdb.connect()
    assert con.execute(f"SELECT count(*) FROM '{out / 'runs.parquet'}'").fetchone()[0] == 1
    # and the helper for reading the live file
    with connect_with_retry(db, read_only=True, lock_timeout_s=1) as live:
        assert live.execute("SELECT count(*) FROM runs").fetchone()[0] == 1


def test_store_error_names_the_file(tmp_path):
    bad = tmp_path / "x.duckdb"
    _text(bad)
    with pytest.raises(StoreError, match="x.duckdb is not a DuckDB database"):
        Store(bad).init()
