"""`harness compress` through a real grid file, and the shipped examples/paper.yaml."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cli.compress import compress
from compression.plan import expand_points
from compression.tensors.shapes import ModelShape
from compression.tiny import tiny_corpus
from core.errors import UserError
from harness.grid import load_grid

ROOT = Path(__file__).resolve().parents[2]


def test_compress_command_on_a_grid_file(tmp_path, teachers, capsys):
    (tmp_path / "mt.txt").write_text("\n".join(tiny_corpus("aa", 300)), encoding="utf-8")
    grid = {
        "name": "tiny", "languages": ["mlt_Latn"], "tasks": ["topic"],
        "teachers": [{"name": "tiny-xlmr", "source": str(teachers["xlmr"])}],
        "compression": {
            "recipe": "prune_only", "cache_dir": str(tmp_path / "cache"),
            "text": {"catalogue": False, "sources": [{"kind": "files", "files": {"mlt_Latn": [str(tmp_path / "mt.txt")]}}]},
            "axes": {"layers": [2], "vocab": [120, 90]}},
    }
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(grid), encoding="utf-8")

    planned = compress(path, data_dir=tmp_path / "no-data", dry_run=True)
    assert [p.built for p in planned] == [False, False]
    out = capsys.readouterr().out
    assert "3 stage(s) to build, 0 cached" in out and "tiny-xlmr--mlt_Latn--L2-V90" in out

    built = compress(path, data_dir=tmp_path / "no-data")
    assert all(p.built for p in built)
    assert {p.params["total"] for p in built} == {p.params["total"] for p in planned}
    assert "ok" in capsys.readouterr().out
    again = compress(path, data_dir=tmp_path / "no-data", dry_run=True)
    assert all(p.built for p in again)
    assert "0 stage(s) to build, 3 cached" in capsys.readouterr().out

    path.write_text(yaml.safe_dump({**grid, "compression": {**grid["compression"], "axes": {"layers": [9]}}}))
    with pytest.raises(UserError, match=r"stage 1 depth\(9,stride\): depth: layers 9 is more than the parent's 4"):
        compress(path, data_dir=tmp_path, dry_run=True)


def test_paper_grid_parses_and_expands():
    grid = load_grid(ROOT / "examples" / "paper.yaml")
    section = grid.compression
    points = expand_points(section, [t.name for t in grid.teachers], grid.languages)
    assert len(points) == 2 * 3 * (3 * 2 + 4)
    by_key = {(p.teacher, p.language, p.point): p for p in points}
    mbert = by_key[("mbert", "mlt_Latn", "L6-F2048-H312-V5k")]
    assert [s.label() for s in mbert.chain] == ["depth(6,last_k)", "distill", "ffn(2048)", "hidden(312,truncate)",
                                                "distill", "vocab(5000)"]
    assert by_key[("xlmr", "swh_Latn", "L6-F2048-H564-V40k")].chain[0].strategy == "stride"
    assert [s.label() for s in by_key[("xlmr", "slk_Latn", "vocab-5k")].chain] == ["vocab(5000)"]
    from compression.stages.distill import distill_config
    distill_config(mbert.chain[1].settings, seed=section.seed)  # the paper's settings are valid


def test_paper_grid_sizes_from_the_teachers_shapes():
    """The paper's maximum compression, from the published configs of the two teachers."""
    xlmr = ModelShape(vocab=250002, hidden=768, layers=12, heads=12, ffn=3072, positions=514, token_types=1)
    mbert = ModelShape(vocab=119547, hidden=768, layers=12, heads=12, ffn=3072, positions=512, token_types=2)
    pooler = 768 * 768 + 768  # the published totals (278,043,648 and 177,853,440) include the pooler
    assert xlmr.params().total == 278_043_648 - pooler and mbert.params().total == 177_853_440 - pooler
    for teacher in (xlmr, mbert):
        smallest = teacher.with_(layers=6, ffn=2048, hidden=312, vocab=5000)
        assert smallest.params().total / teacher.params().total < 0.08  # >= 92% fewer, as in the paper
