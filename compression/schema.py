"""The schema that stages and recipes share: one config class per stage, and recipe parameters.

compression/config.py (the grid's `compression:` section) and compression/recipes.py (recipe
parameters -> a chain of stages) both build on these classes; keeping them here lets the section
validate recipe names against the recipe registry without the two modules importing each other.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Field, field_validator, model_validator

from core.model import StrictModel

LAYER_STRATEGIES = ("first_k", "last_k", "stride", "first_last_k")
HIDDEN_INITS = ("truncate", "svd", "importance")
CALIBRATION_LOSSES = ("auto", "mlm", "hidden")


# --------------------------------------------------------------------------------------------------
# Stages


class _Calibration(StrictModel):
    """Calibration text for gradient-based importance (one pass, no training)."""
    calibration_lines: int = Field(256, ge=1, le=1_000_000,
                                   description="lines of training text sampled (with the seed)")
    batch_size: int = Field(16, ge=1, le=4096)
    max_length: int = Field(128, ge=8, le=8192)
    loss: Literal["auto", "mlm", "hidden"] = Field(
        "auto", description="mlm: masked-LM loss (needs an MLM head); hidden: MSE of the model's "
                            "hidden states on masked text to its own on clean text; auto: mlm when "
                            "the model has an MLM head, else hidden")


class VocabStage(StrictModel):
    stage: Literal["vocab"] = "vocab"
    size: int | None = Field(None, ge=8, description="keep at most this many tokens (specials included)")
    min_count: int | None = Field(None, ge=1, description="keep tokens seen at least this often")
    keep_chars: Literal["all", "needed", "none"] = Field(
        "all", description="single-character pieces kept besides the frequent tokens: 'all' (every "
                           "character of the training text), 'needed' (only characters of training "
                           "tokens that were not kept, so the training text still segments without "
                           "<unk>), 'none'; true / false mean 'all' / 'none'")
    report_lines: int = Field(2000, ge=0, description="dev lines used for the segmentation report")
    keep_tokens: list[str] | None = Field(
        None, description="strings whose parent pieces are always kept (so they segment as before); "
                          "default: the 'query: ' / 'passage: ' prefixes for e5-family teachers, else none")

    @field_validator("keep_chars", mode="before")
    @classmethod
    def _keep_chars_bool(cls, value):
        return {True: "all", False: "none"}.get(value, value) if isinstance(value, bool) else value

    @model_validator(mode="after")
    def _some_limit(self):
        if self.size is None and self.min_count is None:
            raise ValueError("a vocab stage needs 'size' (top-k tokens) or 'min_count' (or both)")
        return self

    def label(self) -> str:
        parts = ([str(self.size)] if self.size is not None else []) + \
                ([f"min_count={self.min_count}"] if self.min_count is not None else [])
        return f"vocab({','.join(parts)})"


class DepthStage(StrictModel):
    stage: Literal["depth"] = "depth"
    layers: int = Field(ge=1, le=1000)
    strategy: Literal["first_k", "last_k", "stride", "first_last_k"] = "stride"

    def label(self) -> str:
        return f"depth({self.layers},{self.strategy})"


class FfnStage(_Calibration):
    stage: Literal["ffn"] = "ffn"
    width: int = Field(ge=1, description="FFN neurons kept per layer (uniform)")
    taylor: Literal["input", "output"] = Field(
        "input", description="input: |sum(W*dL/dW) + b*dL/db| over the neuron's intermediate row "
                             "and bias (the paper); output: over its output-projection column")
    heads: None = Field(None, description="not supported here, see the hidden stage")

    @model_validator(mode="before")
    @classmethod
    def _no_heads(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("heads") is not None:
            raise ValueError(
                "heads: HF BERT ties head_dim to hidden_size / num_attention_heads, so removing heads "
                "at a fixed hidden size cannot shrink any tensor without custom code; select heads "
                "in the hidden stage instead ({stage: hidden, size: h, heads: n})")
        return data

    def label(self) -> str:
        return f"ffn({self.width})"


class HiddenStage(_Calibration):
    stage: Literal["hidden"] = "hidden"
    size: int = Field(ge=8, description="new hidden size")
    init: Literal["truncate", "svd", "importance"] = "truncate"
    heads: int | None = Field(None, ge=1, description="attention heads kept (default: the parent's); "
                                                     "size must be a multiple of it")

    def label(self) -> str:
        return f"hidden({self.size},{self.init}{f',heads={self.heads}' if self.heads else ''})"

    @property
    def uses_data(self) -> bool:
        return self.init == "importance"


class DistillStage(StrictModel):
    stage: Literal["distill"] = "distill"
    teacher: Literal["auto", "original"] | int = Field(
        "auto", description="auto: the input of the stage before this one (the paper: the teacher for "
                            "step 1, the FFN-pruned model for step 2); original: the chain's teacher; "
                            "n: the model after the chain's first n stages (0 = the teacher)")
    settings: dict[str, Any] = Field(default_factory=dict,
                                     description="compression.distill.loop.DistillConfig fields")

    @field_validator("teacher")
    @classmethod
    def _non_negative(cls, v):
        if isinstance(v, int) and v < 0:
            raise ValueError(f"teacher: {v} must be >= 0 (the number of stages before the teacher)")
        return v

    def label(self) -> str:
        return "distill" if self.teacher == "auto" else f"distill(teacher={self.teacher})"


StageConfig = Annotated[Union[VocabStage, DepthStage, FfnStage, HiddenStage, DistillStage],
                        Field(discriminator="stage")]
STAGE_NAMES = ("vocab", "depth", "ffn", "hidden", "distill")


def stage_chain_label(chain) -> str:
    return " > ".join(s.label() for s in chain)


# --------------------------------------------------------------------------------------------------
# Recipe parameters


class RecipeParams(StrictModel):
    """The knobs a recipe turns into a chain; None leaves that stage out."""
    layers: int | None = Field(None, ge=1)
    layer_strategy: Literal["first_k", "last_k", "stride", "first_last_k"] = "stride"
    ffn: int | None = Field(None, ge=1)
    hidden: int | None = Field(None, ge=8)
    hidden_init: Literal["truncate", "svd", "importance"] = "truncate"
    heads: int | None = Field(None, ge=1)
    vocab: int | None = Field(None, ge=8)
    vocab_min_count: int | None = Field(None, ge=1)
    calibration_lines: int = Field(256, ge=1)
    loss: str | None = Field(None, description="shorthand for distill.loss (auto, mlm_kl, mlm_mse, "
                                                "hidden_mse, hidden_cosine: see compression.distill.loop)")
    distill: dict[str, Any] = Field(default_factory=dict, description="settings for every distill stage")
    distill_step1: dict[str, Any] = Field(default_factory=dict, description="settings for step 1 only")
    distill_step2: dict[str, Any] = Field(default_factory=dict, description="settings for step 2 only")


RECIPE_FIELDS = tuple(RecipeParams.model_fields)

