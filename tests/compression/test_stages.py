"""Every stage, on every tiny teacher: the output is a plain HF directory that AutoModel loads
without custom code and runs; the manifest's counts equal a count of the loaded model and the
planner's shape-based prediction."""
from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM, AutoTokenizer

from compression.schema import DepthStage, FfnStage, HiddenStage, VocabStage
from compression.manifest import MANIFEST_FILE
from compression.tensors.modelio import read_config
from compression.tensors.shapes import ModelShape
from compression.stages import run_stage, stage_module
from compression.stages.vocab import kept_count
from models.params import count_parameters

STAGES = {
    "depth-first_last": DepthStage(layers=3, strategy="first_last_k"),
    "ffn": FfnStage(width=40, calibration_lines=24, batch_size=8),
    "hidden-truncate": HiddenStage(size=24, init="truncate"),
    "hidden-svd": HiddenStage(size=16, init="svd", heads=2),
    "hidden-importance": HiddenStage(size=16, init="importance", heads=2, calibration_lines=24, batch_size=8),
    "vocab": VocabStage(size=280),
}


@pytest.mark.parametrize("kind", ["bert", "xlmr", "e5", "bpe"])
@pytest.mark.parametrize("name", list(STAGES))
def test_stage_output_is_a_plain_hf_model(kind, name, teachers, ctx, tmp_path, train_texts):
    parent, cfg = teachers[kind], STAGES[name]
    out = run_stage(parent, cfg, ctx, tmp_path / "out")

    tokenizer = AutoTokenizer.from_pretrained(out, trust_remote_code=False)
    batch = tokenizer(train_texts[:3], padding=True, return_tensors="pt")
    encoder = AutoModel.from_pretrained(out, trust_remote_code=False)
    with torch.no_grad():
        hidden = encoder(**batch).last_hidden_state
    config = AutoConfig.from_pretrained(out)
    assert hidden.shape == (3, batch["input_ids"].shape[1], config.hidden_size)
    assert torch.isfinite(hidden).all()
    if kind != "e5":  # the MLM head survives every stage, tied to the embeddings
        mlm = AutoModelForMaskedLM.from_pretrained(out, trust_remote_code=False)
        assert mlm.get_output_embeddings().weight is mlm.get_input_embeddings().weight
        with torch.no_grad():
            assert mlm(**batch).logits.shape[-1] == len(tokenizer)

    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["params"] == count_parameters(encoder).as_dict()
    assert manifest["vocab_size"] == len(tokenizer)
    assert manifest["stage_chain"] == cfg.label()
    assert manifest["chain"][0]["config"] == cfg.model_dump(mode="json")
    teacher_total = count_parameters(AutoModel.from_pretrained(parent)).total
    assert manifest["teacher"]["params"]["total"] == teacher_total
    assert manifest["compression_ratio"] == round(teacher_total / manifest["params"]["total"], 4)
    assert json.loads((out / "config.json").read_text())["compression_provenance"]["stage_chain"] == cfg.label()

    parent_shape = ModelShape.from_config(read_config(parent))
    predicted = stage_module(cfg.stage).predict_shape(parent_shape, cfg)
    if isinstance(cfg, VocabStage):  # what the planner does: count what would be kept
        predicted = predicted.with_(vocab=kept_count(parent, cfg, train_texts))
    assert predicted.params().as_dict() == manifest["params"]
    assert predicted == ModelShape.from_config(config)


def test_chained_manifest_accumulates(teachers, ctx, tmp_path):
    first = run_stage(teachers["xlmr"], DepthStage(layers=2), ctx, tmp_path / "a")
    second = run_stage(first, VocabStage(size=120), ctx, tmp_path / "b")
    manifest = json.loads((second / MANIFEST_FILE).read_text())
    assert [e["stage"] for e in manifest["chain"]] == ["depth", "vocab"]
    assert manifest["stage_chain"] == "depth(2,stride) > vocab(120)"
    assert manifest["chain"][0]["data_fingerprint"] is None  # depth reads no text
    assert manifest["chain"][1]["data_fingerprint"] == "test"
    assert manifest["params"]["total"] < manifest["chain"][0]["params"]["total"]
    assert manifest["teacher"]["name"] == "tiny"
    assert all(e["wall_time_s"] >= 0 for e in manifest["chain"])
