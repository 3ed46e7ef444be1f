"""The grid's compressed points as models to evaluate: built when missing, or (`eval --no-compress`)
only the points already in the stage cache, the missing ones named and left unbuilt."""
from __future__ import annotations

import shutil

from compression.tiny import local_resolve, tiny_grid, write_tiny_teacher
from harness.compressed_models import compressed_eval_models

SECTION = {"recipe": "prune_only", "seed": 3,
           "points": [{"name": "deep", "chain": [{"stage": "vocab", "size": 120}, {"stage": "depth", "layers": 2}]},
                      {"name": "shallow", "chain": [{"stage": "vocab", "size": 120}, {"stage": "depth", "layers": 1}]}]}


def test_without_build_only_cached_points_are_evaluated_and_nothing_is_built(tmp_path, capsys):
    grid = tiny_grid(tmp_path / "data", {"xlmr": write_tiny_teacher("xlmr", tmp_path / "teacher")}, SECTION)
    cache = tmp_path / "cache"
    opts = dict(data_dir=None, cache_dir=cache, resolve=local_resolve, echo=lambda m: None)

    assert compressed_eval_models(grid, build=False, **opts) == []
    assert not cache.exists() or not [p for p in cache.iterdir() if not p.name.startswith(".")]
    assert capsys.readouterr().err.count("drop --no-compress") == 2

    built = compressed_eval_models(grid, **opts)
    assert [m.name for m in built] == ["xlmr--aa--deep", "xlmr--aa--shallow"]
    shutil.rmtree(built[1].path)                  # the shallow point's last stage leaves the cache

    cached = compressed_eval_models(grid, build=False, **opts)
    assert [(m.key, m.path) for m in cached] == [(built[0].key, built[0].path)]
    assert not built[1].path.exists()             # not rebuilt
    err = capsys.readouterr().err
    assert built[1].key in err and built[0].key not in err
