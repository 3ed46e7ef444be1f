"""What a fixed tiny grid produces (chains, shapes, parameter counts, kept layers/heads/tokens,
segmentation reports, fingerprints), pinned in snapshots/compression_tiny_grid.json, so that a
change of compression settings or code shows as a diff.

Timings, paths, cache keys and library versions are left out (they change without the
compression changing), and so are floats of gradient computations (calibration losses, the
share of importance kept), which may differ in the last digits between machines.

To accept a change deliberately: UPDATE_SNAPSHOTS=1 pytest tests/regression
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from compression.build import build_grid
from compression.tiny import local_resolve, tiny_grid, write_tiny_teacher

SNAPSHOT = Path(__file__).parent / "snapshots" / "compression_tiny_grid.json"
UPDATE = os.environ.get("UPDATE_SNAPSHOTS", "") not in ("", "0", "false", "no")

GRID = {
    "recipe": "prune_only", "seed": 11,
    "defaults": {"layers": 2, "ffn": 48, "calibration_lines": 24},
    "per_teacher": {"e5": {"layer_strategy": "last_k"}},
    "axes": {"hidden": [16, 24], "vocab": [130]},
    "points": [
        {"name": "vocab-only", "params": {"vocab": 150}},
        {"name": "importance", "chain": [
            {"stage": "hidden", "size": 16, "init": "importance", "heads": 2, "calibration_lines": 24},
            {"stage": "depth", "layers": 3, "strategy": "first_last_k"},
            {"stage": "ffn", "width": 32, "taylor": "output", "calibration_lines": 24},
            {"stage": "vocab", "min_count": 30}]},
        {"name": "svd", "chain": [{"stage": "hidden", "size": 16, "init": "svd"}, {"stage": "vocab", "size": 120}]},
    ],
}
NOISY_REPORT_KEYS = {"calibration_loss_value", "importance_kept_share_per_layer", "svd_energy_kept"}


def _entry(e: dict) -> dict:
    return {"label": e["label"], "config": e["config"], "shape": e["shape"], "params": e["params"],
            "data_fingerprint": e["data_fingerprint"], "seed": e["seed"],
            "report": {k: v for k, v in e["report"].items() if k not in NOISY_REPORT_KEYS}}


def _point(b) -> dict:
    m = b.manifest
    return {"stage_chain": b.stage_chain, "shape": m["shape"], "params": m["params"],
            "compression_ratio": m["compression_ratio"], "reduction": m["reduction"],
            "vocab_size": m["vocab_size"], "teacher_params": m["teacher"]["params"],
            "chain": [_entry(e) for e in m["chain"]]}


@pytest.fixture(scope="module")
def produced(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("regression")
    teachers = {kind: write_tiny_teacher(kind, root / kind) for kind in ("bert", "e5")}
    grid = tiny_grid(root / "data", teachers, GRID)
    points = build_grid(grid, data_dir=None, cache_dir=root / "cache", resolve=local_resolve, echo=lambda m: None)
    assert all(p.built and p.error is None for p in points), [p.error for p in points]
    return {p.name: _point(p) for p in points}


def test_tiny_grid_matches_its_snapshot(produced):
    if UPDATE:
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(json.dumps(produced, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
        pytest.skip(f"snapshot rewritten: {SNAPSHOT}")
    assert SNAPSHOT.is_file(), f"no snapshot yet: run UPDATE_SNAPSHOTS=1 pytest {Path(__file__).name}"
    expected = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    assert sorted(produced) == sorted(expected), "the grid's points changed"
    for key in sorted(expected):
        assert produced[key] == expected[key], f"{key} differs from the snapshot (UPDATE_SNAPSHOTS=1 to accept)"


def test_snapshot_covers_every_stage_kind_and_both_tokenizers():
    expected = json.loads(SNAPSHOT.read_text(encoding="utf-8")) if SNAPSHOT.is_file() else {}
    if not expected:
        pytest.skip("no snapshot yet")
    labels = {e["label"].split("(")[0] for p in expected.values() for e in p["chain"]}
    assert labels == {"depth", "ffn", "hidden", "vocab"}
    models = {e["report"].get("tokenizer_model") for p in expected.values() for e in p["chain"]} - {None}
    assert models == {"WordPiece", "Unigram"}
