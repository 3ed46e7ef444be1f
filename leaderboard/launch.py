"""Starting the app: `harness leaderboard [--db PATH]` calls launch().

The database reaches the app as `streamlit run leaderboard/app.py -- --db PATH`; the app also
reads $HARNESS_DB, then falls back to results/harness.duckdb.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Mapping, Sequence

from harness.store import DEFAULT_DB

APP = Path(__file__).with_name("app.py")
DB_ENV = "HARNESS_DB"


def resolve_db_path(argv: Sequence[str] | None = None,
                    environ: Mapping[str, str] | None = None) -> Path:
    """--db in the script's arguments, else $HARNESS_DB, else results/harness.duckdb."""
    argv = sys.argv[1:] if argv is None else argv
    environ = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--db")
    known, _ = parser.parse_known_args(list(argv))
    return Path(known.db or environ.get(DB_ENV) or DEFAULT_DB).expanduser()


def build_command(db_path: Path, port: int | None = None, headless: bool = False,
                  address: str | None = "localhost") -> list[str]:
    """The `streamlit run` command line for the app on `db_path`.

    Served on localhost by default: results stay on the machine (reach a remote one through an
    SSH tunnel), and Streamlit does not look up the machine's external IP. address="0.0.0.0"
    (or None: Streamlit's own default) serves on every interface."""
    cmd = [sys.executable, "-m", "streamlit", "run", str(APP),
           "--server.headless", str(bool(headless)).lower(),
           "--server.showEmailPrompt", "false",
           "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none",
           "--client.toolbarMode", "viewer"]
    if port is not None:
        cmd += ["--server.port", str(int(port))]
    if address is not None:
        cmd += ["--server.address", address]
    return cmd + ["--", "--db", str(Path(db_path).expanduser().resolve())]


def launch(db_path: Path, port: int | None = None, headless: bool = False,
           address: str | None = "localhost") -> int:
    """Run the app until it is stopped (Ctrl-C); returns Streamlit's exit status.

    A missing or empty database is not an error here: the app itself says what to run."""
    cmd = build_command(db_path, port=port, headless=headless, address=address)
    try:
        return subprocess.run(cmd, check=False).returncode
    except KeyboardInterrupt:
        return 0
