"""The compression section of the grid file: one-line errors naming the field, value and fix;
recipes turn parameters into the paper's chains."""
from __future__ import annotations

import pytest

from compression.config import CompressionSection
from compression.schema import DistillStage, RecipeParams
from compression.plan import expand_points
from compression.recipes import expand_recipe, point_name
from core.errors import ConfigError
from harness.grid import parse_grid

BASE = {"languages": ["mlt_Latn", "swh_Latn"], "tasks": ["topic"],
        "teachers": [{"name": "xlmr", "source": "xlm-roberta-base"}, {"name": "mbert", "source": "hf:bert-base-multilingual-cased"}]}


def _error(compression: dict) -> str:
    with pytest.raises(ConfigError) as info:
        parse_grid({**BASE, "compression": compression}, "grid.yaml")
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("compression,expected", [
    ({"axes": {"hiden": [312]}}, "compression.axes: unknown parameter 'hiden' (did you mean 'hidden'"),
    ({"axes": {"hidden": [4]}}, "hidden: 4 is not allowed: Input should be greater than or equal to 8"),
    ({"axes": {"layer_strategy": ["strid"]}}, "'strid' is not allowed: Input should be 'first_k', 'last_k', 'stride'"),
    ({"axes": {"vocab": []}}, "vocab: the list of values is empty"),
    ({"recipe": "two-step"}, "compression.recipe: unknown recipe 'two-step' (did you mean 'two_step'"),
    ({"defaults": {"layres": 6}}, "compression.defaults: unknown parameter 'layres' (did you mean 'layers'"),
    ({"defaults": {"layers": 0}}, "compression.defaults.layers: Input should be greater than or equal to 1 (got 0)"),
    ({"per_teacher": {"mbert": {"layer_strategy": "last"}}}, "mbert.layer_strategy: Input should be"),
    ({"points": [{"name": "a", "chain": [{"stage": "ffn", "width": 8, "heads": 2}]}]}, "select heads in the hidden stage"),
    ({"points": [{"name": "a", "chain": [{"stage": "depht", "layers": 3}]}]}, "'depht' found using 'stage' does not match"),
    ({"points": [{"name": "a", "chain": [{"stage": "depth", "layers": 3, "strategy": "mid"}]}]}, "depth.strategy: Input should be"),
    ({"points": [{"name": "a", "chain": [{"stage": "vocab"}]}]}, "a vocab stage needs 'size'"),
    ({"points": [{"name": "a", "params": {"layers": 2}, "chain": [{"stage": "depth", "layers": 2}]}]}, "exactly one of 'params'"),
    ({"points": [{"name": "a b", "params": {"layers": 2}}]}, "'a b' is not a valid point name"),
    ({"points": [{"name": "a", "params": {"vocab": 5000}}, {"name": "a", "params": {"vocab": 40000}}]}, "names must be unique"),
    ({"points": [{"name": "a", "chain": [{"stage": "distill", "teacher": -1}]}]}, "must be >= 0"),
    ({"text": {"sources": [{"kind": "hf"}]}}, "compression.text.sources[0].hf.path: Field required"),
    ({"seeds": 3}, "unknown field 'seeds'"),
])
def test_errors_are_one_line_and_name_the_field(compression, expected):
    assert expected in _error(compression)


def test_a_valid_section_parses_inside_the_grid():
    grid = parse_grid({**BASE, "compression": {
        "defaults": {"layers": 6, "ffn": 2048}, "per_teacher": {"mbert": {"layer_strategy": "last_k"}},
        "distill": {"steps": 10}, "axes": {"hidden": [564, 312], "vocab": [40000, 5000]},
        "points": [{"name": "vocab-only", "params": {"vocab": 20000}, "teachers": ["xlmr"]}]}})
    points = expand_points(grid.compression, ["xlmr", "mbert"], ["mlt_Latn", "swh_Latn"])
    assert len(points) == 2 * 2 * 4 + 2
    names = {(p.teacher, p.point) for p in points}
    assert ("mbert", "L6-F2048-H312-V5k") in names and ("xlmr", "vocab-only") in names
    mbert = next(p for p in points if p.teacher == "mbert" and p.point == "L6-F2048-H564-V40k")
    assert [s.label() for s in mbert.chain] == [
        "depth(6,last_k)", "distill", "ffn(2048)", "hidden(564,truncate)", "distill", "vocab(40000)"]
    assert all(s.settings == {"steps": 10} for s in mbert.chain if isinstance(s, DistillStage))
    xlmr = next(p for p in points if p.teacher == "xlmr" and p.point == "L6-F2048-H564-V40k")
    assert xlmr.chain[0].strategy == "stride"


def test_recipes():
    p = RecipeParams(layers=6, ffn=2048, hidden=312, vocab=5000, distill={"lr": 1e-4},
                     distill_step2={"lr": 5e-5}, loss="mlm_kl")
    two = expand_recipe("two_step", p)
    assert [s.stage for s in two] == ["depth", "distill", "ffn", "hidden", "distill", "vocab"]
    assert two[1].settings == {"lr": 1e-4, "loss": "mlm_kl"} and two[4].settings == {"lr": 5e-5, "loss": "mlm_kl"}
    assert [s.stage for s in expand_recipe("one_step", p)] == ["depth", "ffn", "hidden", "distill", "vocab"]
    assert [s.stage for s in expand_recipe("prune_only", p)] == ["depth", "ffn", "hidden", "vocab"]
    assert [s.stage for s in expand_recipe("vocab_first", p)] == ["vocab", "depth", "distill", "ffn", "hidden", "distill"]
    assert [s.stage for s in expand_recipe("two_step", RecipeParams(vocab=5000))] == ["vocab"]
    ffn_only = expand_recipe("two_step", RecipeParams(ffn=1024, layers=6))
    assert [s.stage for s in ffn_only] == ["depth", "distill", "ffn", "distill"]  # FFN pruning is distilled too
    assert point_name(p) == "L6-F2048-H312-V5k"
    assert point_name(RecipeParams(vocab=2500, hidden_init="svd", hidden=128), ("hidden_init",)) == "H128-V2.5k-svd"


def test_section_defaults():
    s = CompressionSection()
    assert s.recipe == "two_step" and s.text.catalogue and s.cache_dir is None
