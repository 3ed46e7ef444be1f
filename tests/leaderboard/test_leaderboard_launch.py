"""`harness leaderboard` -> launch(): the streamlit command line and the database path."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness.store import DEFAULT_DB
from leaderboard import launch as launch_mod
from leaderboard.launch import APP, DB_ENV, build_command, launch, resolve_db_path


def test_build_command(tmp_path):
    db = tmp_path / "r.duckdb"
    cmd = build_command(db, port=8599, headless=True, address="127.0.0.1")
    assert cmd[:5] == [sys.executable, "-m", "streamlit", "run", str(APP)]
    assert APP.is_file()
    opts = dict(zip(cmd[5:-3:2], cmd[6:-3:2]))
    assert opts["--server.port"] == "8599" and opts["--server.headless"] == "true"
    assert opts["--server.address"] == "127.0.0.1"
    assert opts["--browser.gatherUsageStats"] == "false"
    assert cmd[-3:] == ["--", "--db", str(db.resolve())]
    default = build_command(db)
    assert "--server.port" not in default
    assert default[default.index("--server.address") + 1] == "localhost"
    assert "--server.address" not in build_command(db, address=None)


def test_resolve_db_path_precedence(tmp_path):
    assert resolve_db_path(["--db", "a.duckdb"], {DB_ENV: "b.duckdb"}) == Path("a.duckdb")
    assert resolve_db_path(["--other", "x"], {DB_ENV: "b.duckdb"}) == Path("b.duckdb")
    assert resolve_db_path([], {}) == DEFAULT_DB


def test_launch_runs_streamlit(monkeypatch, tmp_path):
    seen = {}

    def fake_run(cmd, check):
        seen["cmd"] = cmd
        return subprocess.CompletedProcess(cmd, 3)

    monkeypatch.setattr(launch_mod.subprocess, "run", fake_run)
    assert launch(tmp_path / "x.duckdb", port=1234, headless=True) == 3
    assert seen["cmd"][-1] == str((tmp_path / "x.duckdb").resolve())
