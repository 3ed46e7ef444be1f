"""The `compression:` section of the grid file: stage configs, recipe parameters, axes and points.

A compressed model is a *chain* of stages applied to a teacher. A grid point gets its chain either
from a recipe (the paper's two-step recipe by default) filled in with recipe parameters, or from
an explicit list of stages. Parameters come, in increasing precedence, from `defaults`,
`per_teacher[<teacher>]`, and the point itself (its `params`, or one combination of `axes`).

    compression:
      recipe: two_step
      defaults: {layer_strategy: stride, hidden_init: truncate}
      per_teacher: {mbert: {layer_strategy: last_k}}
      distill: {steps: 2000}                # settings for every distillation stage
      axes: {layers: [6], hidden: [312, 192], vocab: [40000, 5000]}
      points:
        - {name: vocab-only, params: {vocab: 20000}}
        - name: tiny
          chain:
            - {stage: depth, layers: 4, strategy: first_last_k}
            - {stage: vocab, size: 8000}
"""
from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import (BaseModel, ConfigDict, Field, ValidationError, field_validator,
                      model_validator)

from harness.registry import did_you_mean, unknown_name_message

LAYER_STRATEGIES = ("first_k", "last_k", "stride", "first_last_k")
HIDDEN_INITS = ("truncate", "svd", "importance")
CALIBRATION_LOSSES = ("auto", "mlm", "hidden")
POINT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
    keep_chars: bool = Field(True, description="keep single-character pieces of the text's characters, "
                                               "so unseen words still segment without <unk>")
    report_lines: int = Field(2000, ge=0, description="dev lines used for the segmentation report")

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
                                     description="compression.distill.DistillConfig fields")

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
# Recipe parameters, axes and points


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
                                                "hidden_mse, hidden_cosine: see compression.distill)")
    distill: dict[str, Any] = Field(default_factory=dict, description="settings for every distill stage")
    distill_step1: dict[str, Any] = Field(default_factory=dict, description="settings for step 1 only")
    distill_step2: dict[str, Any] = Field(default_factory=dict, description="settings for step 2 only")


RECIPE_FIELDS = tuple(RecipeParams.model_fields)


def _check_recipe(name: str) -> str:
    from compression.recipes import RECIPES
    if name not in RECIPES:
        raise ValueError(unknown_name_message("recipe", name, RECIPES.names()))
    return name


def _check_param_keys(data: Any, where: str = "") -> Any:
    """Unknown recipe parameters, named with did-you-mean (`where` prefixes nested names)."""
    if isinstance(data, dict):
        for key in data:
            if key not in RECIPE_FIELDS:
                raise ValueError(f"{where}unknown parameter {key!r}{did_you_mean(str(key), RECIPE_FIELDS)}; "
                                 f"allowed: {', '.join(RECIPE_FIELDS)}")
    return data


class PointSpec(StrictModel):
    """A named grid point: recipe parameters or an explicit chain of stages."""
    name: str
    params: dict[str, Any] | None = None
    chain: list[StageConfig] | None = None
    recipe: str | None = None
    teachers: list[str] | None = None
    languages: list[str] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not POINT_NAME.match(v):
            raise ValueError(f"{v!r} is not a valid point name: use letters, digits, '.', '_' and '-'")
        return v

    @field_validator("params")
    @classmethod
    def _params(cls, v):
        if v is not None:
            _check_param_keys(v)
            RecipeParams.model_validate(v)
        return v

    @model_validator(mode="after")
    def _one_source(self):
        if (self.params is None) == (self.chain is None):
            raise ValueError(f"point {self.name!r} needs exactly one of 'params' (recipe parameters) "
                             "or 'chain' (a list of stages)")
        if self.chain is not None and not self.chain:
            raise ValueError(f"point {self.name!r}: 'chain' is empty")
        if self.chain is not None and self.recipe is not None:
            raise ValueError(f"point {self.name!r}: 'recipe' applies to 'params', not to an explicit 'chain'")
        return self


# --------------------------------------------------------------------------------------------------
# Text


class FilesSource(StrictModel):
    """Local UTF-8 text files (one line a sentence) per language, relative to the data directory."""
    kind: Literal["files"]
    files: dict[str, list[str]] = Field(description="language -> training text files")
    dev: dict[str, list[str]] | None = Field(None, description="language -> dev text files, for "
                                                                "reports only (never trained on)")


class HFSource(StrictModel):
    """A Hugging Face dataset, streamed and capped (e.g. Wikipedia):

        {kind: hf, path: wikimedia/wikipedia, name: "20231101.{wikipedia}", max_lines: 200000}

    `name` / `data_files` may use {language}, {iso639_3}, {wikipedia}, {cc100} placeholders,
    or be a mapping language -> value. Pin `revision` for reproducible builds."""
    kind: Literal["hf"]
    path: str
    name: str | dict[str, str] | None = None
    data_files: str | list[str] | dict[str, str | list[str]] | None = None
    split: str = "train"
    column: str = "text"
    revision: str | None = None
    languages: list[str] | None = Field(None, description="languages this source serves (default: all)")
    max_lines: int = Field(100_000, ge=1)
    min_chars: int = Field(20, ge=0)


TextSource = Annotated[Union[FilesSource, HFSource], Field(discriminator="kind")]


class TextConfig(StrictModel):
    """Target-language training text for vocabulary mining, calibration and distillation.
    Never dev or test text (the catalogue's training_texts guarantees it for its part)."""
    catalogue: bool = Field(True, description="raw text and task training text from the data catalogue")
    include_raw: bool = True
    include_task_train: bool = True
    tasks: list[str] | None = Field(None, description="restrict task training text to these tasks")
    sources: list[TextSource] = Field(default_factory=list)
    max_lines: int | None = Field(None, ge=1, description="cap on lines after de-duplication "
                                                          "(a seeded sample)")


# --------------------------------------------------------------------------------------------------
# The section


class CompressionSection(StrictModel):
    recipe: str = Field("two_step", description="recipe for axes and params points")
    seed: int = 42
    cache_dir: str | None = Field(None, description="stage cache (default results/compression)")
    text: TextConfig = Field(default_factory=TextConfig)
    distill: dict[str, Any] = Field(default_factory=dict,
                                    description="DistillConfig settings for every distill stage")
    defaults: dict[str, Any] = Field(default_factory=dict, description="recipe parameters for all points")
    per_teacher: dict[str, dict[str, Any]] = Field(default_factory=dict,
                                                   description="teacher name -> recipe parameters")
    axes: dict[str, list[Any]] = Field(default_factory=dict,
                                       description="recipe parameter -> values, crossed into points")
    points: list[PointSpec] = Field(default_factory=list)

    @field_validator("recipe")
    @classmethod
    def _known_recipe(cls, v: str) -> str:
        return _check_recipe(v)

    @field_validator("defaults")
    @classmethod
    def _defaults(cls, v):
        _check_param_keys(v)
        RecipeParams.model_validate(v)
        return v

    @field_validator("per_teacher")
    @classmethod
    def _per_teacher(cls, v):
        for teacher, params in v.items():
            _check_param_keys(params, f"{teacher}: ")
            try:
                RecipeParams.model_validate(params)
            except ValidationError as err:
                first = err.errors()[0]
                raise ValueError(f"{teacher}.{'.'.join(map(str, first['loc']))}: {first['msg']} "
                                 f"(got {first.get('input')!r})") from None
        return v

    @field_validator("axes")
    @classmethod
    def _axes(cls, v):
        _check_param_keys(v)
        for key, values in v.items():
            if not values:
                raise ValueError(f"{key}: the list of values is empty")
            for value in values:
                try:
                    RecipeParams.model_validate({key: value})
                except Exception as err:  # noqa: BLE001 - re-raised as one line
                    first = getattr(err, "errors", lambda: [{"msg": str(err)}])()[0]["msg"]
                    raise ValueError(f"{key}: {value!r} is not allowed: {first}") from None
            if len(set(map(repr, values))) != len(values):
                raise ValueError(f"{key}: a value is listed twice")
        return v

    @model_validator(mode="after")
    def _unique_points(self):
        names = [p.name for p in self.points]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"points: names must be unique: {dupes}")
        for point in self.points:
            if point.recipe is not None:
                _check_recipe(point.recipe)
        return self
