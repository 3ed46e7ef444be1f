"""`harness eval` end to end on a tiny model and small task files written by the test:
results land in DuckDB, a second eval skips them, a failure is stored and the grid goes on, an
interrupted grid resumes without duplicates, and `harness results` prints the summary again."""
from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from cli.app import app
from tests.harness.conftest import rows, run_eval


def test_eval_stores_scores_and_second_run_skips(grid_file, tmp_path):
    db = tmp_path / "r.duckdb"
    first = run_eval(grid_file, db)
    assert first.exit_code == 0, first.output
    assert "precision auto -> fp32 (" in first.output  # the tests force fp32 (HARNESS_CPU_BF16=0)
    assert "toy_topic" in first.output and "upos_accuracy" in first.output
    runs = rows(db, "SELECT status, count(*) FROM runs GROUP BY status")
    assert runs == [("done", 8)]  # 2 tasks x 2 languages x 2 seeds
    n_scores = rows(db, "SELECT count(*) FROM scores")[0][0]
    # test and dev scores of the selected checkpoint, every metric of the task:
    # 4 runs per task; toy_topic has 2 metrics, toy_pos 1; two splits each
    assert n_scores == 4 * (2 * 2) + 4 * (1 * 2)
    assert rows(db, "SELECT DISTINCT split FROM scores ORDER BY 1") == [("dev",), ("test",)]
    model = rows(db, "SELECT kind, params_total, params_embedding FROM models")[0]
    assert model[0] == "model" and model[1] > model[2] > 0

    second = run_eval(grid_file, db)
    assert second.exit_code == 0, second.output
    assert "8 of 8 runs already stored" in second.output
    assert rows(db, "SELECT count(*) FROM scores")[0][0] == n_scores

    shown = CliRunner().invoke(app, ["results", "--db", str(db)])
    assert shown.exit_code == 0 and "toy_pos" in shown.output and "tiny" in shown.output


def test_failure_is_stored_and_the_grid_goes_on(grid_file, tmp_path, monkeypatch):
    import harness.finetune.train as train

    real = train.finetune_and_score

    def flaky(model_dir, spec, data, proto, seed, **kw):
        if spec.name == "toy_pos" and data.language == "swh_Latn":
            raise RuntimeError("injected failure")
        return real(model_dir, spec, data, proto, seed, **kw)

    monkeypatch.setattr(train, "finetune_and_score", flaky)
    db = tmp_path / "r.duckdb"
    result = run_eval(grid_file, db)
    assert result.exit_code == 1
    assert "injected failure" in result.output
    assert dict(rows(db, "SELECT status, count(*) FROM runs GROUP BY status")) == {"done": 6, "failed": 2}
    err = rows(db, "SELECT error FROM runs WHERE status = 'failed' LIMIT 1")[0][0]
    assert "Traceback" in err and "injected failure" in err

    monkeypatch.setattr(train, "finetune_and_score", real)
    again = run_eval(grid_file, db)  # failed runs are not retried unless asked
    assert again.exit_code == 1 and "--retry-failed" in again.output
    retried = run_eval(grid_file, db, "--retry-failed")
    assert retried.exit_code == 0, retried.output
    assert rows(db, "SELECT status, count(*) FROM runs GROUP BY status") == [("done", 8)]


def test_interrupted_grid_resumes_without_duplicates(grid_file, tmp_path, monkeypatch):
    import harness.finetune.train as train

    real = train.finetune_and_score
    calls = {"n": 0}

    def interrupted(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(train, "finetune_and_score", interrupted)
    db = tmp_path / "r.duckdb"
    result = run_eval(grid_file, db)
    assert result.exit_code == 130 and "run the same command again to resume" in result.output
    statuses = dict(rows(db, "SELECT status, count(*) FROM runs GROUP BY status"))
    assert statuses == {"done": 2, "running": 1}
    before = rows(db, "SELECT run_id, value FROM scores WHERE split = 'test' ORDER BY 1, 2")

    monkeypatch.setattr(train, "finetune_and_score", real)
    resumed = run_eval(grid_file, db)
    assert resumed.exit_code == 0, resumed.output
    assert "2 of 8 runs already stored; 6 to go" in resumed.output
    assert rows(db, "SELECT status, count(*) FROM runs GROUP BY status") == [("done", 8)]
    after = rows(db, "SELECT run_id, value FROM scores WHERE split = 'test' ORDER BY 1, 2")
    assert set(before) <= set(after)  # nothing stored before was lost or changed
    assert len(after) == len({r for r in after})


def test_same_seed_same_scores(grid_file, tmp_path):
    a, b = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    assert run_eval(grid_file, a).exit_code == 0
    assert run_eval(grid_file, b).exit_code == 0
    sql = "SELECT task, language, seed, metric, value FROM scores ORDER BY 1, 2, 3, 4"
    assert rows(a, sql) == rows(b, sql)


def test_bad_model_directory_is_one_line_and_stores_nothing(tmp_path, toy_tasks):
    bad = tmp_path / "not-a-model"
    bad.mkdir()
    grid = tmp_path / "grid.yaml"
    grid.write_text(f"models: [{{name: broken, source: {bad}}}]\nlanguages: [mlt_Latn]\ntasks: [toy_topic]\n")
    result = run_eval(grid, tmp_path / "r.duckdb")
    assert result.exit_code == 2
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("error:") and str(bad) in line
    assert rows(tmp_path / "r.duckdb", "SELECT count(*) FROM runs")[0][0] == 0


def test_sigterm_interrupts_like_ctrl_c(grid_file, tmp_path):
    """A background job ignores SIGINT; `kill` must still stop a grid cleanly, leaving it to resume.
    The signal is sent while a run is certainly in progress: the toy grid's runs take well under a
    second, so the process is started through a wrapper whose fine-tuning marks that it has begun
    and then waits (a grid that finished before the signal arrived would test nothing)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    db, started = tmp_path / "r.duckdb", tmp_path / "run-started"
    wrapper = tmp_path / "slow_eval.py"
    wrapper.write_text(
        "import pathlib, sys, time\n"
        "import harness.finetune.train as train\n"
        "def slow(*args, **kwargs):\n"
        f"    pathlib.Path({str(started)!r}).touch()\n"
        "    time.sleep(300)  # the test's SIGTERM lands here, mid-run\n"
        "train.finetune_and_score = slow\n"
        "from cli.app import app\n"
        "sys.argv = ['harness', *sys.argv[1:]]\n"
        "sys.exit(app())\n")
    env = {**os.environ, "HARNESS_TASK_DIRS": os.environ["HARNESS_TASK_DIRS"],
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, str(wrapper), "eval", "--models", str(grid_file),
                             "--db", str(db), "--data-dir", str(tmp_path / "data"), "--no-bench"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.monotonic() + 300
    while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert started.exists(), proc.communicate(timeout=60)[0]
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert "run the same command again to resume" in out
    assert "Traceback" not in out
    # the interrupted run stays claimed ('running'), so the same command re-runs it
    assert rows(db, "SELECT status, count(*) FROM runs GROUP BY status") == [("running", 1)]


def test_runs_record_their_precision_and_bf16_runs_are_other_runs(grid_file, tmp_path, monkeypatch):
    """A tiny model trains under bf16 autocast on the CPU path and its runs say so; fp32 when forced;
    the two precisions are different runs of different protocol families."""
    db = tmp_path / "r.duckdb"
    text = grid_file.read_text()
    grid_file.write_text(text.replace("learning_rate: 1.0e-3}", "learning_rate: 1.0e-3, precision: bf16}"))
    assert run_eval(grid_file, db).exit_code == 0
    grid_file.write_text(text.replace("learning_rate: 1.0e-3}", "learning_rate: 1.0e-3, precision: fp32}"))
    assert run_eval(grid_file, db).exit_code == 0
    stored = rows(db, "SELECT json_extract_string(config, '$.protocol.precision') AS p, status, count(*) "
                       "FROM runs GROUP BY p, status ORDER BY p")
    assert stored == [("bf16", "done", 8), ("fp32", "done", 8)]
    assert rows(db, "SELECT count(DISTINCT protocol_id) FROM protocols")[0][0] == 2
    # the summary keeps them apart, labelled by profile and precision
    shown = CliRunner().invoke(app, ["results", "--db", str(db)]).output
    topic = [line for line in shown.splitlines() if " toy_topic " in line and " accuracy " in line]
    assert len(topic) == 4 and {("fewshot/bf16" in x, "fewshot/fp32" in x) for x in topic} == {(True, False), (False, True)}


def test_the_models_runs_are_stored_before_compressed_points_are_built(grid_file, tmp_path, monkeypatch):
    """A user sees the teachers' scores first: compressed points are built only after those runs."""
    import cli.app as cli_app

    db = tmp_path / "r.duckdb"
    seen = []

    def build_points(grid, data_dir, device, build):
        if build:
            seen.append(rows(db, "SELECT count(*) FROM runs WHERE status = 'done'")[0][0])
        return []

    monkeypatch.setattr(cli_app, "_compressed_models", build_points)
    result = run_eval(grid_file, db)
    assert result.exit_code == 0, result.output
    assert seen == [8] and "models: 1 model(s), 8 run(s) planned" in result.output


def test_a_slice_of_the_grid_runs_the_whole_grids_runs(grid_file, tmp_path):
    db = tmp_path / "r.duckdb"
    part = run_eval(grid_file, db, "--task", "toy_pos", "--language", "swh_Latn")
    assert part.exit_code == 0, part.output
    assert rows(db, "SELECT task, language, count(*) FROM runs GROUP BY ALL") == [("toy_pos", "swh_Latn", 2)]
    whole = run_eval(grid_file, db)
    assert whole.exit_code == 0, whole.output
    assert "6 run(s) done, 2 already stored" in whole.output        # the slice's runs were the grid's
    assert rows(db, "SELECT count(*) FROM runs")[0][0] == 8


def test_a_slice_outside_the_grid_is_one_line_and_stores_nothing(grid_file, tmp_path):
    db = tmp_path / "r.duckdb"
    result = run_eval(grid_file, db, "--task", "ner")
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith("error: --task ner: the grid has no such task")
    assert not db.exists()
