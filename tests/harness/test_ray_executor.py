"""`--executor ray` on a local Ray instance started by the test, with a tiny model and toy tasks:
the same stored rows as the local executor, a worker killed mid-run retried with no duplicate or
lost row, a failing task stored as failed, Ctrl-C then rerun resumes, stages built as tasks."""
from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from core.paths import network_filesystem
from harness.grid import load_grid
from harness.store import Store
from tests.harness.conftest import rows, run_eval

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")
pytestmark = pytest.mark.ray

ROWS = ("SELECT r.run_id, r.status, r.model_key, r.task, r.language, r.seed, s.split, s.metric, s.value "
        "FROM runs r LEFT JOIN scores s USING (run_id) ORDER BY 1, 7, 8")


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray instance for the module (workers are reused, so each test pays no start-up)."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "HARNESS_CPU_BF16": "0"}})
    yield ray
    ray.shutdown()


def _executor(grid_file, db, **kw):
    from harness.ray_executor import RayExecutor
    from harness.runner import models_from_grid, register_protocol, resolve_models

    grid = load_grid(grid_file)
    store = Store(db).init()
    register_protocol(store, grid)
    executor = RayExecutor(grid, store, grid_file.parent / "data", log=lambda s: None, **kw)
    return executor, resolve_models(models_from_grid(grid))


def _same_rows(a: list[tuple], b: list[tuple]) -> None:
    assert [r[:8] for r in a] == [r[:8] for r in b]
    for x, y in zip(a, b):
        assert math.isclose(x[8], y[8], abs_tol=0.02), (x, y)


def test_ray_stores_the_same_rows_as_the_local_executor(ray_session, grid_file, tmp_path):
    local, distributed = tmp_path / "local.duckdb", tmp_path / "ray.duckdb"
    assert run_eval(grid_file, local).exit_code == 0
    result = run_eval(grid_file, distributed, "--executor", "ray")
    assert result.exit_code == 0, result.output
    assert "8 run(s) done" in result.output
    _same_rows(rows(local, ROWS), rows(distributed, ROWS))
    assert rows(distributed, "SELECT count(*), count(DISTINCT run_id) FROM runs") == [(8, 8)]


def test_a_worker_killed_mid_run_is_retried_without_duplicates(ray_session, grid_file, tmp_path):
    marker = tmp_path / "killed-once"

    def dies_once(model_path, spec, data, proto, seed, device, label_job=None):
        from harness.ray_executor import finetune_task
        if spec.name == "toy_pos" and seed == 2 and not marker.exists():
            marker.write_text(str(os.getpid()))
            os._exit(1)  # the worker process dies mid-task, as a killed or preempted node would
        return finetune_task(model_path, spec, data, proto, seed, device, label_job)

    db = tmp_path / "r.duckdb"
    executor, models = _executor(grid_file, db, finetune=dies_once)
    outcome = executor.run(models)
    assert marker.exists()  # a worker did die
    assert outcome.done == 8 and not outcome.failed
    assert rows(db, "SELECT status, count(*), count(DISTINCT run_id) FROM runs GROUP BY 1") == [("done", 8, 8)]
    assert rows(db, "SELECT count(*) FROM scores")[0][0] == 4 * 4 + 4 * 2


def test_a_failing_task_is_stored_as_failed_and_the_grid_goes_on(ray_session, grid_file, tmp_path):
    def fails_on_swahili_pos(model_path, spec, data, proto, seed, device, label_job=None):
        from harness.ray_executor import finetune_task
        if spec.name == "toy_pos" and data.language == "swh_Latn":
            raise RuntimeError("injected failure")
        return finetune_task(model_path, spec, data, proto, seed, device, label_job)

    db = tmp_path / "r.duckdb"
    executor, models = _executor(grid_file, db, finetune=fails_on_swahili_pos)
    outcome = executor.run(models)
    assert outcome.done == 6 and len(outcome.failed) == 2
    assert dict(rows(db, "SELECT status, count(*) FROM runs GROUP BY 1")) == {"done": 6, "failed": 2}
    error = rows(db, "SELECT error FROM runs WHERE status = 'failed' LIMIT 1")[0][0]
    assert "injected failure" in error and "Traceback" in error


def test_ctrl_c_cancels_outstanding_tasks_and_a_rerun_resumes(ray_session, grid_file, tmp_path, monkeypatch):
    from harness.ray_executor import RayExecutor

    real = RayExecutor._run_done
    seen = []

    def interrupted_after_two(self, run, ref):
        if len(seen) == 2:
            raise KeyboardInterrupt
        seen.append(run.key.run_id)
        real(self, run, ref)

    db = tmp_path / "r.duckdb"
    monkeypatch.setattr(RayExecutor, "_run_done", interrupted_after_two)
    executor, models = _executor(grid_file, db)
    with pytest.raises(KeyboardInterrupt):
        executor.run(models)
    before = dict(rows(db, "SELECT status, count(*) FROM runs GROUP BY 1"))
    assert before.get("done") == 2 and before.get("running") == 6
    kept = rows(db, "SELECT run_id, metric, value FROM scores ORDER BY 1, 2")

    monkeypatch.setattr(RayExecutor, "_run_done", real)
    result = run_eval(grid_file, db, "--executor", "ray")
    assert result.exit_code == 0, result.output
    assert "2 of 8 runs already stored; 6 to go" in result.output
    assert rows(db, "SELECT status, count(*), count(DISTINCT run_id) FROM runs GROUP BY 1") == [("done", 8, 8)]
    assert set(kept) <= set(rows(db, "SELECT run_id, metric, value FROM scores"))


def test_stages_are_built_as_tasks_into_the_same_cache_entries(ray_session, tmp_path):
    """Two points sharing their first stages, with distillations: Ray builds each stage once, in
    dependency order, into the same cache entries (keys, parameter counts) as the local build."""
    from compression.build import build_grid
    from compression.tiny import local_resolve, tiny_grid, write_tiny_teacher
    from harness.ray_executor import build_grid_ray

    section = {"recipe": "prune_only", "seed": 3,
               "distill": {"steps": 2, "batch_size": 4, "max_length": 32, "checkpoint_every": None},
               "points": [{"name": "deep", "chain": [{"stage": "vocab", "size": 120},
                                                     {"stage": "depth", "layers": 2}, {"stage": "distill"}]},
                          {"name": "shallow", "chain": [{"stage": "vocab", "size": 120},
                                                        {"stage": "depth", "layers": 1}, {"stage": "distill"}]}]}
    grid = tiny_grid(tmp_path / "data", {"xlmr": write_tiny_teacher("xlmr", tmp_path / "teacher")}, section)
    local = build_grid(grid, data_dir=None, cache_dir=tmp_path / "local", resolve=local_resolve, echo=lambda m: None)
    built = build_grid_ray(grid, data_dir=None, cache_dir=tmp_path / "ray", resolve=local_resolve, log=lambda m: None)
    assert all(p.built and not p.error for p in built)
    assert [(p.model_key, p.params, p.stage_keys) for p in built] == \
           [(p.model_key, p.params, p.stage_keys) for p in local]
    entries = sorted(p.name for p in (tmp_path / "ray").iterdir() if not p.name.startswith("."))
    assert len(entries) == 5  # one shared vocab stage, two depth cuts, two distillations
    assert entries == sorted(p.name for p in (tmp_path / "local").iterdir() if not p.name.startswith("."))


def test_ray_missing_is_one_line(monkeypatch, grid_file, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)
    result = run_eval(grid_file, tmp_path / "r.duckdb", "--executor", "ray")
    assert result.exit_code != 0
    assert "pip install -e '.[ray]'" in result.output and "Traceback" not in result.output


def test_network_filesystem_is_read_from_the_mount_table(tmp_path):
    mounts = tmp_path / "mounts"
    mounts.write_text("/dev/sda1 / ext4 rw 0 0\nserver:/export /shared nfs4 rw 0 0\n"
                      "tmpfs /shared/tmp tmpfs rw 0 0\n")
    assert network_filesystem(Path("/shared/grid/r.duckdb"), mounts) == "nfs4"
    assert network_filesystem(Path("/shared/tmp/r.duckdb"), mounts) is None
    assert network_filesystem(Path("/home/me/r.duckdb"), mounts) is None


def test_local_workers_refuse_a_network_db_claimed_from_another_host(grid_file, tmp_path, monkeypatch):
    import core.paths

    db = tmp_path / "r.duckdb"
    assert run_eval(grid_file, db).exit_code == 0
    with Store(db).connect() as con:
        con.execute("UPDATE runs SET status = 'running', worker = 'other-node:123:1.00' "
                    "WHERE run_id = (SELECT min(run_id) FROM runs)")
    monkeypatch.setattr(core.paths, "network_filesystem", lambda path: "nfs4")
    result = run_eval(grid_file, db)
    assert result.exit_code != 0
    assert "network filesystem (nfs4)" in result.output and "--executor ray" in result.output
    assert len(result.output.strip().splitlines()[-1]) < 300
    assert rows(db, "SELECT count(*) FROM runs WHERE status = 'done'")[0][0] == 7  # nothing lost


def test_connect_starts_workers_without_transformers_progress_bars(ray_session):
    """Workers' output reaches the driver's terminal; a local instance started by `connect` keeps
    transformers' per-save bars out of it (the module's own session is restarted after)."""
    from harness.ray_executor import connect

    def shows_progress_bars() -> bool:  # defined here so that it is shipped by value
        from transformers.utils import logging as hf_logging

        return hf_logging.is_progress_bar_enabled()

    ray.shutdown()
    try:
        connect(None, log=lambda s: None)
        assert ray.get(ray.remote(num_cpus=0)(shows_progress_bars).remote()) is False
    finally:
        ray.shutdown()
