"""The paper's two-step recipe through the distillation wrapper: each distill stage learns from
the right teacher (the original for step 1, the FFN-pruned model for step 2), its settings key
the cache, and its report lands in the manifest."""
from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer

from compression.build import build_grid
from compression.tensors.modelio import KEPT_TOKEN_IDS_FILE
from compression.plan import make_plan
from compression.tiny import local_resolve, one_thread, tiny_grid
from core.errors import ConfigError
from models.params import count_parameters

SECTION = {
    "recipe": "two_step", "seed": 3,
    "distill": {"steps": 2, "batch_size": 4, "max_length": 32, "checkpoint_every": None},
    "points": [{"name": "small", "params": {"layers": 2, "ffn": 48, "hidden": 16, "vocab": 120,
                                            "calibration_lines": 16, "distill_step2": {"learning_rate": 5e-5}}}],
}


@pytest.fixture(scope="module")
def built(tmp_path_factory, teachers):
    tmp_path = tmp_path_factory.mktemp("two_step")
    grid = tiny_grid(tmp_path / "data", {"xlmr": teachers["xlmr"]}, SECTION)
    with one_thread():
        points = build_grid(grid, data_dir=None, cache_dir=tmp_path / "cache", resolve=local_resolve,
                            echo=lambda m: None)
    return grid, points, tmp_path / "cache"


def test_two_step_distils_from_the_right_teachers(built):
    grid, points, cache = built
    (point,) = points
    assert point.error is None and point.built
    chain = point.manifest["chain"]
    assert [e["label"] for e in chain] == ["depth(2,stride)", "distill", "ffn(48)", "hidden(16,truncate)",
                                           "distill", "vocab(120)"]
    teacher_key = chain[0]["parent_key"]
    assert chain[1]["report"]["teacher_key"] == teacher_key       # step 1: the original teacher
    assert chain[4]["report"]["teacher_key"] == chain[2]["key"]   # step 2: the FFN-pruned model
    assert chain[1]["config"]["settings"]["steps"] == 2
    assert chain[4]["config"]["settings"]["learning_rate"] == 5e-5
    for step in (chain[1], chain[4]):
        assert step["report"]["steps"] == 2 and step["report"]["finished"]
        assert step["report"]["text_lines"] == 400 and step["data_fingerprint"] and step["seed"] == 3
    assert not any(p.name.endswith(".ckpt") for p in (cache / ".work").iterdir())
    ids = json.loads((point.path / KEPT_TOKEN_IDS_FILE).read_text())
    assert len(ids) == point.manifest["vocab_size"]
    for stage_key in point.stage_keys:  # every stage, the distilled ones too, is a plain HF model
        model = AutoModelForMaskedLM.from_pretrained(cache / stage_key, trust_remote_code=False)
        tok = AutoTokenizer.from_pretrained(cache / stage_key)
        with torch.no_grad():
            logits = model(**tok(["Il kelb kbir."], return_tensors="pt")).logits
        assert logits.shape[-1] == len(tok) and torch.isfinite(logits).all()
        assert count_parameters(model).as_dict() == json.loads(
            (cache / stage_key / "compression_manifest.json").read_text())["params"]


def test_distill_settings_key_the_cache(built, tmp_path):
    grid, points, cache = built
    changed = tiny_grid(tmp_path / "data", {"xlmr": grid.teachers[0].source},
                        {**SECTION, "distill": {**SECTION["distill"], "learning_rate": 3e-4}})
    changed.teachers = grid.teachers
    plan = make_plan(changed, data_dir=None, cache_dir=cache, resolve=local_resolve)
    assert [s.cached for s in plan.points[0].stages] == [True, False, False, False, False, False]


def test_distill_settings_are_validated_at_plan_time(tmp_path, teachers):
    grid = tiny_grid(tmp_path / "data", {"xlmr": teachers["xlmr"]},
                     {**SECTION, "distill": {"stepz": 3}})
    with pytest.raises(ConfigError, match=r"stage 2 distill: distill\..*stepz"):
        make_plan(grid, data_dir=None, cache_dir=tmp_path / "cache", resolve=local_resolve)


def test_kept_token_ids_file_is_the_one_distillation_reads():
    from compression.distill.models import KEPT_TOKEN_IDS_FILE as read_by_distill
    assert KEPT_TOKEN_IDS_FILE == read_by_distill
