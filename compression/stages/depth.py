"""Depth reduction: keep k of the parent's layers, initialised from them.

Strategies (the paper uses last_k for mBERT and stride for XLM-R):
- first_k: layers 0..k-1;       - last_k: the last k layers;
- stride: floor(i * L / k) for i < k, i.e. every other layer for k = L/2 (DistilBERT's choice);
- first_last_k: the first ceil(k/2) and the last floor(k/2) layers.
"""
from __future__ import annotations

from pathlib import Path

from compression.schema import DepthStage
from compression.tensors.modelio import load_state, save_model
from compression.tensors.shapes import ModelShape
from compression.tensors.surgery import Surgery, apply_surgery
from core.errors import ConfigError

# bump when a change of this module changes what it outputs: it is part of every cache key
VERSION = 1


def select_layers(n_layers: int, k: int, strategy: str) -> list[int]:
    if not 1 <= k <= n_layers:
        raise ConfigError(f"depth: layers {k} must be between 1 and the parent's {n_layers}")
    if strategy == "first_k":
        return list(range(k))
    if strategy == "last_k":
        return list(range(n_layers - k, n_layers))
    if strategy == "stride":
        return [i * n_layers // k for i in range(k)]
    if strategy == "first_last_k":
        head = (k + 1) // 2
        return list(range(head)) + list(range(n_layers - (k - head), n_layers))
    raise ConfigError(f"depth: unknown strategy {strategy!r}; allowed: first_k, last_k, stride, first_last_k")


def apply(parent_dir: Path, cfg: DepthStage, ctx, out_dir: Path) -> dict:
    config, state = load_state(parent_dir)
    layers = select_layers(config.num_hidden_layers, cfg.layers, cfg.strategy)
    new_state = apply_surgery(state, Surgery(layers=layers))
    parent_layers = config.num_hidden_layers
    config.num_hidden_layers = cfg.layers
    save_model(out_dir, config, new_state, parent_dir=Path(parent_dir))
    return {"parent_layers": parent_layers, "kept_layers": layers}


def check(shape: ModelShape, cfg: DepthStage) -> None:
    if cfg.layers > shape.layers:
        raise ConfigError(f"depth: layers {cfg.layers} is more than the parent's {shape.layers}")


def predict_shape(shape: ModelShape, cfg: DepthStage) -> ModelShape:
    return shape.with_(layers=cfg.layers)
