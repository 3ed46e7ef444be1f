"""The published results (results/published/, committed) open in the leaderboard on a fresh clone:
every view renders without an exception, and the table holds the published models."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from leaderboard.launch import DB_ENV

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "leaderboard" / "app.py"
VIEWS = ("Leaderboard", "Trade-offs", "Degradation vs teacher data", "Distillation budget", "Model")


@pytest.fixture(scope="module")
def published_db(tmp_path_factory):
    from harness.published import published_database, snapshots

    root = ROOT / "results" / "published"
    assert snapshots(root), "results/published/ holds no snapshot"
    return published_database(root, cache=tmp_path_factory.mktemp("published"))


def test_every_view_renders_the_published_results(published_db, monkeypatch):
    from harness.store import Store

    monkeypatch.setenv(DB_ENV, str(published_db))
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    rows = Store(published_db).query("SELECT model_key, name FROM models WHERE kind = 'compressed'",
                                     read_only=True)[1]
    shown = {str(v) for df in at.dataframe for col in df.value.columns for v in df.value[col].astype(str)}
    assert rows and any(key in shown or name in shown for key, name in rows), sorted(shown)[:20]
    for view in VIEWS:
        at.session_state["view"] = view
        at.run()
        assert not at.exception, (view, [e.value for e in at.exception])
