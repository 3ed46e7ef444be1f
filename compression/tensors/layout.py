"""Which axis of which tensor is what, for BERT-layout encoders (BERT, RoBERTa, XLM-R, e5).

Every stage is a selection or projection along named axes, so the stages need to know, for each
tensor of a checkpoint, which of its dimensions is the vocabulary, the hidden (residual) width,
an FFN neuron, or an attention dimension, and which layer it belongs to:

- `vocab`: embedding rows and MLM decoder rows / bias;
- `hidden`: the residual stream (every Linear that reads or writes it, every LayerNorm on it);
- `ffn`: intermediate neurons of one layer;
- `qk`: attention dimensions shared by query and key (head-major: head * head_dim + d);
- `vo`: attention dimensions shared by value and the attention output projection.

Query/key dimensions and value/output dimensions are independent subspaces, so they may be
selected independently; HF BERT only requires that each has `heads * head_dim` entries.
A tensor whose name matches no rule raises: a stage never silently skips a weight.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from core.errors import ModelLoadError

SUPPORTED_MODEL_TYPES = ("bert", "roberta", "xlm-roberta", "camembert")

# (pattern on the name without the base-model prefix, axes of the tensor's dimensions)
_LAYER = r"encoder\.layer\.(?P<layer>\d+)\."
_RULES: list[tuple[str, tuple[str | None, ...]]] = [
    (r"embeddings\.word_embeddings\.weight", ("vocab", "hidden")),
    (r"embeddings\.(position|token_type)_embeddings\.weight", (None, "hidden")),
    (r"embeddings\.LayerNorm\.(weight|bias)", ("hidden_ln",)),
    (_LAYER + r"attention\.self\.(query|key)\.weight", ("qk", "hidden")),
    (_LAYER + r"attention\.self\.(query|key)\.bias", ("qk",)),
    (_LAYER + r"attention\.self\.value\.weight", ("vo", "hidden")),
    (_LAYER + r"attention\.self\.value\.bias", ("vo",)),
    (_LAYER + r"attention\.output\.dense\.weight", ("hidden", "vo")),
    (_LAYER + r"attention\.output\.dense\.bias", ("hidden",)),
    (_LAYER + r"(attention\.output|output)\.LayerNorm\.(weight|bias)", ("hidden_ln",)),
    (_LAYER + r"intermediate\.dense\.weight", ("ffn", "hidden")),
    (_LAYER + r"intermediate\.dense\.bias", ("ffn",)),
    (_LAYER + r"output\.dense\.weight", ("hidden", "ffn")),
    (_LAYER + r"output\.dense\.bias", ("hidden",)),
    (r"pooler\.dense\.weight", ("hidden", "hidden")),
    (r"pooler\.dense\.bias", ("hidden",)),
    # MLM heads: BERT (cls.predictions.*) and RoBERTa / XLM-R (lm_head.*)
    (r"(cls\.predictions\.transform|lm_head)\.dense\.weight", ("hidden", "hidden")),
    (r"(cls\.predictions\.transform|lm_head)\.dense\.bias", ("hidden",)),
    (r"(cls\.predictions\.transform\.LayerNorm|lm_head\.layer_norm)\.(weight|bias)", ("hidden_ln",)),
    (r"(cls\.predictions|lm_head)\.decoder\.weight", ("vocab", "hidden")),
    (r"(cls\.predictions|lm_head)(\.decoder)?\.bias", ("vocab",)),
]
_COMPILED = [(re.compile(r"^(?:(?:bert|roberta)\.)?" + p + "$"), axes) for p, axes in _RULES]


@dataclass(frozen=True)
class TensorAxes:
    layer: int | None
    axes: tuple[str | None, ...]

    def dims(self, axis: str) -> list[int]:
        """The dimensions of the tensor that lie along `axis` ('hidden' includes LayerNorms)."""
        return [i for i, a in enumerate(self.axes) if a == axis or (axis == "hidden" and a == "hidden_ln")]


def tensor_axes(name: str) -> TensorAxes:
    for pattern, axes in _COMPILED:
        m = pattern.match(name)
        if m:
            layer = m.groupdict().get("layer")
            return TensorAxes(int(layer) if layer is not None else None, axes)
    raise ModelLoadError(
        f"tensor {name!r} is not part of a BERT-layout encoder; compression supports "
        f"{', '.join(SUPPORTED_MODEL_TYPES)} models (with or without an MLM head)")


def rename_layer(name: str, new_index: int) -> str:
    return re.sub(r"encoder\.layer\.\d+\.", f"encoder.layer.{new_index}.", name, count=1)


def check_model_type(config) -> None:
    model_type = getattr(config, "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ModelLoadError(
            f"model type {model_type!r} is not supported by the compression stages; "
            f"supported: {', '.join(SUPPORTED_MODEL_TYPES)}")
    if getattr(config, "is_decoder", False) or getattr(config, "add_cross_attention", False):
        raise ModelLoadError("decoder / cross-attention BERT models are not supported; use an encoder")
