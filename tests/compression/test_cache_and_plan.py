"""The stage cache and the planner: shared prefixes, no work the second time, rebuild only what a
changed setting touches, atomic entries, and parameter predictions equal to the built models."""
from __future__ import annotations

import json
import os

import pytest

import compression.build as build_module
import compression.stages as stages_module
from compression.build import build_grid
from compression.plan import make_plan
from compression.tiny import local_resolve, tiny_grid
from core.errors import ConfigError

SECTION = {
    "recipe": "prune_only", "seed": 7,
    "defaults": {"layers": 2, "calibration_lines": 16},
    "axes": {"ffn": [48, 32], "vocab": [120, None]},
    "points": [{"name": "imp", "chain": [
        {"stage": "hidden", "size": 16, "init": "importance", "heads": 2, "calibration_lines": 16},
        {"stage": "depth", "layers": 3, "strategy": "first_last_k"},
        {"stage": "vocab", "size": 100}]}],
}


@pytest.fixture
def counting(monkeypatch):
    """Count the stages actually run (by label)."""
    calls: list[str] = []
    real = stages_module.run_stage

    def spy(parent, cfg, ctx, out):
        calls.append(cfg.label())
        return real(parent, cfg, ctx, out)
    monkeypatch.setattr(build_module, "run_stage", spy)
    return calls


def _build(tmp_path, teachers, section=SECTION, **kw):
    grid = tiny_grid(tmp_path / "data", teachers, section)
    return build_grid(grid, data_dir=None, cache_dir=tmp_path / "cache", resolve=local_resolve,
                      echo=lambda m: None, **kw)


def test_shared_prefixes_second_run_and_predictions(tmp_path, teachers, counting):
    two = {k: teachers[k] for k in ("bert", "e5")}
    grid = tiny_grid(tmp_path / "data", two, SECTION)
    plan = make_plan(grid, data_dir=None, cache_dir=tmp_path / "cache", resolve=local_resolve)
    assert len(plan.points) == 2 * 5
    # per teacher: depth(2) shared by 4 points, ffn(48)/ffn(32) each by 2, two vocab stages, 3 for "imp"
    assert len(plan.to_build()) == 2 * (1 + 2 + 2 + 3)
    predicted = {p.model_key: p.params.as_dict() for p in plan.points}

    built = _build(tmp_path, two)
    assert len(counting) == len(plan.to_build())
    for b in built:
        assert b.built and b.error is None
        assert b.params == predicted[b.model_key] == b.manifest["params"]
        assert b.path.name == b.stage_keys[-1]
    assert {b.name for b in built} >= {"bert--aa--L2-F48-V120", "e5--aa--imp", "bert--aa--L2-F32"}
    assert all(b.model_key.startswith(b.name + "--") for b in built)

    counting.clear()
    again = _build(tmp_path, two)
    assert counting == []  # a second run does no work
    assert [b.path for b in again] == [b.path for b in built]
    assert all(s.cached for s in make_plan(grid, data_dir=None, cache_dir=tmp_path / "cache",
                                           resolve=local_resolve).stages())


def test_changed_settings_rebuild_only_what_depends_on_them(tmp_path, teachers, counting):
    one = {"bert": teachers["bert"]}
    _build(tmp_path, one)
    counting.clear()
    _build(tmp_path, one, {**SECTION, "axes": {"ffn": [48, 32], "vocab": [110, None]}})
    assert sorted(counting) == ["vocab(110)", "vocab(110)"]  # depth and ffn reused

    counting.clear()
    _build(tmp_path, one, {**SECTION, "defaults": {"layers": 2, "layer_strategy": "last_k", "calibration_lines": 16}})
    assert sorted(counting) == sorted(["depth(2,last_k)", "ffn(48)", "ffn(32)", "vocab(120)", "vocab(120)"])

    counting.clear()  # the seed changes calibration (ffn, importance) but not depth or truncation
    _build(tmp_path, one, {**SECTION, "seed": 8})
    assert "depth(2,stride)" not in counting and "ffn(48)" in counting
    assert "hidden(16,importance,heads=2)" in counting


def test_text_change_rebuilds_data_stages_only(tmp_path, teachers, counting):
    one = {"bert": teachers["bert"]}
    section = {"recipe": "prune_only", "defaults": {"layers": 2}, "axes": {"vocab": [120]}}
    _build(tmp_path, one, section)
    counting.clear()
    grid = tiny_grid(tmp_path / "data", one, section)  # (re)writes the text files: then we change them
    (tmp_path / "data" / "aa.txt").write_text("Il kelb kbir.\nIl-mara sabiħa.\n" * 20, encoding="utf-8")
    build_grid(grid, data_dir=None, cache_dir=tmp_path / "cache", resolve=local_resolve, echo=lambda m: None)
    assert counting == ["vocab(120)"]  # the depth stage reads no text: reused


def test_interrupted_build_leaves_no_entry(tmp_path, teachers, monkeypatch):
    one = {"bert": teachers["bert"]}
    section = {"recipe": "prune_only", "defaults": {"layers": 2}, "axes": {"vocab": [120]}}
    import compression.stages.vocab as vocab

    def boom(parent_dir, cfg, ctx, out_dir):
        (out_dir / "config.json").write_text("{}")  # half-written output
        raise KeyboardInterrupt
    monkeypatch.setattr(vocab, "apply", boom)
    with pytest.raises(KeyboardInterrupt):
        _build(tmp_path, one, section)
    cache = tmp_path / "cache"
    entries = sorted(p.name for p in cache.iterdir() if not p.name.startswith("."))
    assert [e.split("-")[0] for e in entries] == ["depth"]  # the finished stage is kept
    assert not any((cache / ".tmp").iterdir()) and not any((cache / ".locks").iterdir())

    monkeypatch.undo()
    built = _build(tmp_path, one, section)
    assert built[0].built


def test_failed_stage_marks_its_points_and_the_rest_goes_on(tmp_path, teachers, monkeypatch):
    import compression.stages.ffn as ffn

    def broken(*a, **k):
        raise RuntimeError("boom")
    monkeypatch.setattr(ffn, "apply", broken)
    built = _build(tmp_path, {"bert": teachers["bert"]})
    status = {b.name: b for b in built}
    assert "boom" in status["bert--aa--L2-F48-V120"].error
    assert status["bert--aa--imp"].built and status["bert--aa--imp"].error is None


def test_dry_run_builds_nothing_and_prints_the_plan(tmp_path, teachers):
    lines: list[str] = []
    grid = tiny_grid(tmp_path / "data", {"bert": teachers["bert"]}, SECTION)
    points = build_grid(grid, data_dir=None, cache_dir=tmp_path / "cache", resolve=local_resolve,
                        dry_run=True, echo=lines.append)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
    assert all(not p.built and p.path is None for p in points)
    text = "\n".join(lines)
    assert "5 models" in text and "8 stage(s) to build, 0 cached" in text
    assert "bert--aa--L2-F32-V120" in text and "depth(2,stride) > ffn(32) > vocab(120)" in text
    for p in points:
        assert f"{p.params['total']:,}" in text


def test_plan_errors_name_the_point_and_the_problem(tmp_path, teachers):
    def plan(section):
        grid = tiny_grid(tmp_path / "data", {"bert": teachers["bert"]}, section)
        return make_plan(grid, data_dir=None, cache_dir=tmp_path / "cache", resolve=local_resolve)
    with pytest.raises(ConfigError, match=r"point 'L2-F128' \(bert, aa\), stage 2 ffn\(128\): .*larger than"):
        plan({"recipe": "prune_only", "axes": {"layers": [2], "ffn": [128]}})
    with pytest.raises(ConfigError, match="has no stage"):
        plan({"points": [{"name": "nothing", "params": {}}]})
    with pytest.raises(ConfigError, match="first in a chain has no teacher"):
        plan({"points": [{"name": "d", "chain": [{"stage": "distill"}]}]})
    with pytest.raises(ConfigError, match="per_teacher: 'bret' is not a teacher.*did you mean 'bert'"):
        plan({"per_teacher": {"bret": {"layers": 2}}, "axes": {"layers": [2]}})
    with pytest.raises(ConfigError, match="languages: 'bb' is not in the grid's languages"):
        plan({"points": [{"name": "x", "params": {"layers": 2}, "languages": ["bb"]}]})
    with pytest.raises(ConfigError, match="heads: 2 needs a hidden size"):
        plan({"axes": {"heads": [2]}})


def test_manifest_of_a_built_point(tmp_path, teachers):
    built = _build(tmp_path, {"xlmr": teachers["xlmr"]},
                   {"recipe": "prune_only", "points": [{"name": "p", "params": {"layers": 2, "hidden": 16, "vocab": 90}}]})
    m = built[0].manifest
    assert m["stage_chain"] == "depth(2,stride) > hidden(16,truncate) > vocab(90)" == built[0].stage_chain
    assert [e["parent_key"] for e in m["chain"]][1:] == [e["key"] for e in m["chain"]][:-1]
    assert m["chain"][0]["parent_key"].startswith("teacher-")
    assert m["language"] == "aa" and m["teacher"]["name"] == "xlmr"
    assert m["data_fingerprints"] == [m["chain"][2]["data_fingerprint"]]
    assert m["chain"][2]["report"]["dev"]["dev_lines"] == 60
    config = json.loads((built[0].path / "config.json").read_text())
    assert config["compression_provenance"]["key"] == built[0].stage_keys[-1]
    assert built[0].compression_ratio == m["compression_ratio"] > 1


def test_stale_temporaries_and_locks_of_dead_processes_are_cleared(tmp_path):
    import subprocess

    from compression.cache import StageCache
    from compression.manifest import MANIFEST_FILE

    dead = subprocess.Popen(["true"])
    dead.wait()
    cache = StageCache(tmp_path)
    (tmp_path / ".tmp" / f"vocab-abc-{dead.pid}-0123abcd").mkdir(parents=True)
    (tmp_path / ".tmp" / f"vocab-abc-{os.getpid()}-0123abcd").mkdir()  # alive: ours
    assert cache.clean_stale() == 1
    (tmp_path / ".locks").mkdir()
    (tmp_path / ".locks" / "depth-x.lock").write_text(str(dead.pid))

    def write(work):
        (work / MANIFEST_FILE).write_text("{}")
    assert cache.build("depth-x", write) == tmp_path / "depth-x" and cache.has("depth-x")
    assert not (tmp_path / ".locks" / "depth-x.lock").exists()


def test_another_hosts_lock_and_work_directory_are_left_alone(tmp_path):
    """On storage shared by several machines a pid means nothing to the other hosts: another host's
    lock is waited for (here: a short wait that ends in a one-line error naming it), and its work
    directory is not cleared; this host's dead process's are."""
    import socket
    import subprocess

    from compression.cache import StageCache
    from core.errors import UserError

    dead = subprocess.Popen(["true"])
    dead.wait()
    cache = StageCache(tmp_path)
    here = socket.gethostname()
    (tmp_path / ".tmp" / f"vocab-abc-{dead.pid}-0123abcd@other-node-7").mkdir(parents=True)
    (tmp_path / ".tmp" / f"vocab-abc-{dead.pid}-4567abcd@{here}").mkdir()
    assert cache.clean_stale() == 1
    assert [d.name for d in (tmp_path / ".tmp").iterdir()] == [f"vocab-abc-{dead.pid}-0123abcd@other-node-7"]
    (tmp_path / ".locks").mkdir()
    (tmp_path / ".locks" / "depth-x.lock").write_text(f"{dead.pid}@other-node-7")
    with pytest.raises(UserError, match=f"being built by process {dead.pid}@other-node-7"):
        cache._lock("depth-x", wait_s=0)
    (tmp_path / ".locks" / "depth-x.lock").write_text(f"{dead.pid}@{here}")
    lock = cache._lock("depth-x", wait_s=0)
    assert lock.read_text() == f"{os.getpid()}@{here}"
