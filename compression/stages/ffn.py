"""FFN width reduction: keep the `width` most important intermediate neurons of every layer.

Importance is first-order Taylor, accumulated over calibration text (see importance.py): by
default |sum(W * dL/dW) + b * dL/db| over the neuron's row of the intermediate projection and
its bias (the paper's formula), optionally over its column of the output projection. Kept
neurons stay in their original order, so keeping all of them reproduces the parent exactly.
"""
from __future__ import annotations

from pathlib import Path

import torch

from compression.schema import FfnStage
from compression.tensors.importance import axis_terms, calibrate
from compression.tensors.modelio import load_state, save_model
from compression.tensors.shapes import ModelShape
from compression.tensors.surgery import Surgery, apply_surgery
from core.errors import ConfigError

# bump when a change of this module changes what it outputs: it is part of every cache key
VERSION = 1


def _scored_tensor(taylor: str):
    part = ".intermediate.dense." if taylor == "input" else ".output.dense."
    return lambda name: part in name and ".attention." not in name


def neuron_scores(parent_dir: Path, cfg: FfnStage, ctx) -> tuple[dict[int, torch.Tensor], dict]:
    is_scored = _scored_tensor(cfg.taylor)

    def collect(model):
        return {f"ffn.{layer}": t for layer, t in axis_terms(model, "ffn", name_filter=is_scored).items()}

    scores, facts = calibrate(parent_dir, cfg, ctx, collect=collect, trainable=is_scored,
                              desc="ffn: Taylor importance")
    return {int(k.split(".")[1]): v for k, v in scores.items()}, facts


def apply(parent_dir: Path, cfg: FfnStage, ctx, out_dir: Path) -> dict:
    config, state = load_state(parent_dir)
    check(ModelShape.from_config(config), cfg)
    parent_width = config.intermediate_size
    if cfg.width == parent_width:  # nothing to choose: skip the calibration pass
        keep = {layer: torch.arange(parent_width) for layer in range(config.num_hidden_layers)}
        facts: dict = {"calibration_lines": 0}
        kept_share = [1.0] * config.num_hidden_layers
    else:
        scores, facts = neuron_scores(parent_dir, cfg, ctx)
        keep, kept_share = {}, []
        for layer in range(config.num_hidden_layers):
            s = scores[layer]
            top = torch.topk(s, cfg.width).indices
            keep[layer] = torch.sort(top).values
            kept_share.append(round(float(s[top].sum() / s.sum()), 6) if float(s.sum()) > 0 else None)
    new_state = apply_surgery(state, Surgery(ffn=keep))
    config.intermediate_size = cfg.width
    save_model(out_dir, config, new_state, parent_dir=Path(parent_dir))
    return {**facts, "parent_width": parent_width, "width": cfg.width,
            "importance_kept_share_per_layer": kept_share}


def check(shape: ModelShape, cfg: FfnStage) -> None:
    if cfg.width > shape.ffn:
        raise ConfigError(f"ffn: width {cfg.width} is larger than the parent's FFN width {shape.ffn}")


def predict_shape(shape: ModelShape, cfg: FfnStage) -> ModelShape:
    return shape.with_(ffn=cfg.width)
