"""Depth, FFN and hidden-size stages: exactness at full size, and importance that finds what matters."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from compression.schema import DepthStage, FfnStage, HiddenStage
from compression.stages.depth import select_layers
from compression.stages import run_stage
from core.errors import ConfigError

MLM_AND_ENCODER = ["bert", "xlmr", "e5"]


def _report(out: Path) -> dict:
    return json.loads((out / "compression_manifest.json").read_text())["chain"][-1]["report"]


def _edited_copy(teacher: Path, tmp_path: Path, edit) -> Path:
    """A copy of `teacher` whose tensors `edit(tensors)` changed in place."""
    copy = tmp_path / "edited"
    shutil.copytree(teacher, copy)
    tensors = load_file(copy / "model.safetensors")
    edit(tensors)
    save_file(tensors, copy / "model.safetensors", metadata={"format": "pt"})
    return copy


def _prefix(tensors: dict) -> str:
    return next(n for n in tensors if n.endswith("embeddings.word_embeddings.weight")).split("embeddings.")[0]


@pytest.mark.parametrize("strategy,expected", [
    ("first_k", [0, 1, 2, 3]), ("last_k", [8, 9, 10, 11]), ("stride", [0, 3, 6, 9]),
    ("first_last_k", [0, 1, 10, 11])])
def test_layer_strategies(strategy, expected):
    assert select_layers(12, 4, strategy) == expected
    assert select_layers(12, 6, "stride") == [0, 2, 4, 6, 8, 10]  # DistilBERT: one layer out of two
    assert select_layers(12, 3, "first_last_k") == [0, 1, 11]


def test_depth_copies_the_selected_layers(teachers, ctx, tmp_path):
    out = run_stage(teachers["bert"], DepthStage(layers=2, strategy="last_k"), ctx, tmp_path / "d")
    parent, child = load_file(teachers["bert"] / "model.safetensors"), load_file(out / "model.safetensors")
    for name, t in child.items():
        source = name.replace("layer.0.", "layer.2.").replace("layer.1.", "layer.3.") if ".layer." in name else name
        assert torch.equal(t, parent[source]), name
    assert not any(".layer.2." in n for n in child)
    assert _report(out)["kept_layers"] == [2, 3]
    with pytest.raises(ConfigError, match="between 1 and"):
        run_stage(teachers["bert"], DepthStage(layers=9), ctx, tmp_path / "e")


@pytest.mark.parametrize("kind", MLM_AND_ENCODER)
def test_ffn_keeping_every_neuron_is_exact(kind, teachers, ctx, tmp_path, train_texts, helpers):
    out = run_stage(teachers[kind], FfnStage(width=64), ctx, tmp_path / "f")
    batch = helpers.encode(teachers[kind], train_texts[:4])
    assert torch.equal(helpers.outputs(out, batch), helpers.outputs(teachers[kind], batch))


@pytest.mark.parametrize("kind,taylor", [("bert", "input"), ("e5", "input"), ("xlmr", "output")])
def test_ffn_prunes_dead_neurons_first(kind, taylor, teachers, ctx, tmp_path):
    dead = [3, 17, 40, 63]

    def kill(tensors):  # neurons whose output column is zero contribute nothing: Taylor score 0
        p = _prefix(tensors)
        for layer in range(4):
            tensors[f"{p}encoder.layer.{layer}.output.dense.weight"][:, dead] = 0
            if taylor == "input":
                tensors[f"{p}encoder.layer.{layer}.intermediate.dense.weight"][dead] = 0
                tensors[f"{p}encoder.layer.{layer}.intermediate.dense.bias"][dead] = 0
    teacher = _edited_copy(teachers[kind], tmp_path, kill)
    out = run_stage(teacher, FfnStage(width=60, taylor=taylor, calibration_lines=32, batch_size=8), ctx, tmp_path / "f")
    report = _report(out)
    assert report["calibration_loss"] == ("hidden" if kind == "e5" else "mlm")
    assert report["calibration_lines"] == 32
    parent, child = load_file(teacher / "model.safetensors"), load_file(out / "model.safetensors")
    p = _prefix(parent)
    for layer in range(4):
        w_parent = parent[f"{p}encoder.layer.{layer}.intermediate.dense.weight"]
        w_child = child[f"{p}encoder.layer.{layer}.intermediate.dense.weight"]
        alive = [i for i in range(64) if i not in dead]
        assert torch.equal(w_child, w_parent[alive])  # exactly the live neurons, in order
    assert child[f"{p}encoder.layer.0.output.dense.weight"].shape == (32, 60)


def test_ffn_rejects_heads_and_a_wider_width():
    with pytest.raises(ValueError, match="select heads in the hidden stage"):
        FfnStage(width=8, heads=2)
    from compression.stages.ffn import check
    from compression.tensors.shapes import ModelShape
    with pytest.raises(ConfigError, match="larger than the parent"):
        check(ModelShape(100, 32, 4, 4, 64, 64, 2), FfnStage(width=65))


@pytest.mark.parametrize("kind", MLM_AND_ENCODER)
def test_hidden_truncation_to_full_width_is_exact(kind, teachers, ctx, tmp_path, train_texts, helpers):
    out = run_stage(teachers[kind], HiddenStage(size=32, init="truncate"), ctx, tmp_path / "h")
    batch = helpers.encode(teachers[kind], train_texts[:4])
    assert torch.equal(helpers.outputs(out, batch), helpers.outputs(teachers[kind], batch))


def test_hidden_truncation_keeps_first_dims_per_head(teachers, ctx, tmp_path):
    out = run_stage(teachers["bert"], HiddenStage(size=16, init="truncate"), ctx, tmp_path / "h")
    parent, child = load_file(teachers["bert"] / "model.safetensors"), load_file(out / "model.safetensors")
    name = "bert.encoder.layer.1.attention.self.value.weight"
    rows = [h * 8 + d for h in range(4) for d in range(4)]  # 4 heads of 8 dims -> 4 heads of 4
    assert torch.equal(child[name], parent[name][rows][:, :16])
    q = "bert.encoder.layer.1.attention.self.query.weight"  # scaled: 1/sqrt(4) scores like 1/sqrt(8)
    torch.testing.assert_close(child[q], parent[q][rows][:, :16] * (4 / 8) ** 0.5)
    assert torch.equal(child["bert.embeddings.word_embeddings.weight"], parent["bert.embeddings.word_embeddings.weight"][:, :16])


def test_hidden_svd_uses_the_embedding_subspace(teachers, ctx, tmp_path):
    out = run_stage(teachers["e5"], HiddenStage(size=16, init="svd"), ctx, tmp_path / "h")
    parent, child = load_file(teachers["e5"] / "model.safetensors"), load_file(out / "model.safetensors")
    e_parent, e_child = parent["embeddings.word_embeddings.weight"], child["embeddings.word_embeddings.weight"]
    _, s, _ = torch.linalg.svd(e_parent.double(), full_matrices=False)
    # E P with P the top right-singular vectors keeps exactly the top singular values
    torch.testing.assert_close(torch.linalg.svdvals(e_child.double()), s[:16], rtol=1e-4, atol=1e-4)
    energy = _report(out)["svd_energy_kept"]
    assert energy == pytest.approx(float((s[:16] ** 2).sum() / (s ** 2).sum()), abs=1e-5)


def test_hidden_importance_drops_dead_dimensions_and_heads(teachers, ctx, tmp_path):
    dead_dims, dead_head = [5, 6, 20, 31], 2

    def kill(tensors):
        for name, t in tensors.items():
            from compression.tensors.layout import tensor_axes
            ta = tensor_axes(name)
            for d in ta.dims("hidden"):
                t.index_fill_(d, torch.tensor(dead_dims), 0.0)
            if ta.layer is not None and ("attention.self" in name or "attention.output.dense.weight" in name):
                axis = [i for i, a in enumerate(ta.axes) if a in ("qk", "vo")][0]
                t.index_fill_(axis, torch.arange(dead_head * 8, dead_head * 8 + 8), 0.0)
    teacher = _edited_copy(teachers["xlmr"], tmp_path, kill)
    cfg = HiddenStage(size=24, init="importance", heads=3, calibration_lines=32, batch_size=8)
    out = run_stage(teacher, cfg, ctx, tmp_path / "h")
    report = _report(out)
    assert all(dead_head not in heads for heads in report["kept_heads"].values())
    parent, child = load_file(teacher / "model.safetensors"), load_file(out / "model.safetensors")
    emb = "roberta.embeddings.word_embeddings.weight"
    alive = [i for i in range(32) if i not in dead_dims]
    child_cols = {tuple(child[emb][:, j].tolist()) for j in range(24)}
    assert len(child_cols) == 24  # 24 distinct columns, all of them live ones (dead ones are zero)
    assert child_cols <= {tuple(parent[emb][:, i].tolist()) for i in alive}
    assert report["head_dim"] == 8


def test_hidden_size_and_heads_must_fit(teachers, ctx, tmp_path):
    with pytest.raises(ConfigError, match="not a multiple of 4 heads"):
        run_stage(teachers["bert"], HiddenStage(size=18), ctx, tmp_path / "a")
    with pytest.raises(ConfigError, match="wider than the parent"):
        run_stage(teachers["bert"], HiddenStage(size=24, heads=2), ctx, tmp_path / "b")
    with pytest.raises(ConfigError, match="larger than the parent"):
        run_stage(teachers["bert"], HiddenStage(size=48), ctx, tmp_path / "c")
