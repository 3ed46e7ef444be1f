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


@pytest.mark.parametrize("name", ["hidden-truncate", "hidden-svd", "hidden-importance"])
def test_the_hidden_stage_writes_the_map_back_to_its_parents_width(name, teachers, ctx, tmp_path):
    """The map the next distillation starts its projection from: parent x new width, and it is the
    very map the stage applied (the new word embeddings are the parent's times it): one-hot columns
    of the first dimensions (truncate) or the chosen ones (importance), orthonormal columns (svd)."""
    from safetensors.torch import load_file

    from compression.distill.models import read_hidden_map

    parent, cfg = teachers["bert"], STAGES[name]
    out = run_stage(parent, cfg, ctx, tmp_path / "out")
    m = read_hidden_map(out)
    parent_width = read_config(parent).hidden_size
    assert m is not None and tuple(m.shape) == (parent_width, cfg.size)
    if cfg.init == "svd":
        assert torch.allclose(m.T @ m, torch.eye(cfg.size), atol=1e-4)
    else:
        assert torch.equal(m.sum(dim=0), torch.ones(cfg.size)) and set(m.unique().tolist()) == {0.0, 1.0}
        assert m.sum(dim=1).max() == 1.0                       # no parent dimension kept twice
        if cfg.init == "truncate":
            assert torch.equal(m[:cfg.size], torch.eye(cfg.size))
    old, new = load_file(str(parent / "model.safetensors")), load_file(str(out / "model.safetensors"))
    key = next(k for k in new if k.endswith("embeddings.word_embeddings.weight"))
    assert torch.allclose(new[key], old[key] @ m, atol=1e-5)
