"""The `compression:` section of the grid file: recipe, axes, points and training text.

The stage configs and recipe parameters it is made of live in compression/schema.py.

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

from pydantic import Field, ValidationError, field_validator, model_validator

from compression.recipes import RECIPES
from compression.schema import RECIPE_FIELDS, RecipeParams, StageConfig
from core.model import StrictModel
from core.registry import did_you_mean, unknown_name_message

POINT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")


# --------------------------------------------------------------------------------------------------
# Recipe names, axes and points


def _check_recipe(name: str) -> str:
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
