"""Recipes: functions from recipe parameters to a chain of stages.

`two_step` is the paper's recipe (Gurgurov et al. 2025): depth reduction initialised from the
teacher and distilled from it (step 1), FFN pruning by Taylor importance, hidden-size reduction
distilled from the FFN-pruned model (step 2), and vocabulary trimming last. A parameter left at
None drops its stage, and a distillation step is kept only when its step changed the model, so
`{vocab: 5000}` alone is vocabulary-only trimming.
"""
from __future__ import annotations

from typing import Any, Callable

from compression.schema import (DepthStage, DistillStage, FfnStage, HiddenStage, RecipeParams,
                                VocabStage)
from core.errors import ConfigError
from core.registry import Registry

Recipe = Callable[[RecipeParams], list]
RECIPES: Registry[Recipe] = Registry("recipe")


def _distill_settings(p: RecipeParams, step: dict[str, Any]) -> dict[str, Any]:
    settings = {**p.distill, **step}
    if p.loss is not None:
        settings.setdefault("loss", p.loss)
    return settings


def _depth(p: RecipeParams) -> list:
    return [DepthStage(layers=p.layers, strategy=p.layer_strategy)] if p.layers is not None else []


def _ffn(p: RecipeParams) -> list:
    return [FfnStage(width=p.ffn, calibration_lines=p.calibration_lines)] if p.ffn is not None else []


def _hidden(p: RecipeParams) -> list:
    if p.hidden is None:
        if p.heads is not None:
            raise ConfigError(f"heads: {p.heads} needs a hidden size (heads are selected by the "
                              "hidden stage); set 'hidden' too")
        return []
    return [HiddenStage(size=p.hidden, init=p.hidden_init, heads=p.heads,
                        calibration_lines=p.calibration_lines)]


def _vocab(p: RecipeParams) -> list:
    if p.vocab is None and p.vocab_min_count is None:
        return []
    return [VocabStage(size=p.vocab, min_count=p.vocab_min_count)]


@RECIPES.register("two_step")
def two_step(p: RecipeParams) -> list:
    """depth + distill -> ffn -> hidden + distill -> vocab (the paper's order).

    The second distillation learns from the input of the stage before it: with a hidden-size
    reduction, the FFN-pruned model (the paper); without one, the model before FFN pruning, so
    an FFN-only reduction is distilled too rather than left untrained."""
    chain = _depth(p)
    if chain:
        chain.append(DistillStage(settings=_distill_settings(p, p.distill_step1)))
    step2 = _ffn(p) + _hidden(p)
    if step2:
        chain += step2 + [DistillStage(settings=_distill_settings(p, p.distill_step2))]
    return chain + _vocab(p)


@RECIPES.register("one_step")
def one_step(p: RecipeParams) -> list:
    """depth -> ffn -> hidden, one distillation from the original teacher, then vocab."""
    chain = _depth(p) + _ffn(p) + _hidden(p)
    if chain:
        chain.append(DistillStage(teacher="original", settings=_distill_settings(p, p.distill_step1)))
    return chain + _vocab(p)


@RECIPES.register("prune_only")
def prune_only(p: RecipeParams) -> list:
    """depth -> ffn -> hidden -> vocab with no training at all (a floor, and fast tests)."""
    return _depth(p) + _ffn(p) + _hidden(p) + _vocab(p)


@RECIPES.register("vocab_first")
def vocab_first(p: RecipeParams) -> list:
    """vocab -> depth + distill -> ffn -> hidden + distill: trimming first makes every later
    stage cheaper (a 250k-row embedding dominates small encoders such as e5-small); the
    distillation must then map student ids to the teacher's (vocab_map.json)."""
    return _vocab(p) + two_step(p.model_copy(update={"vocab": None, "vocab_min_count": None}))


def expand_recipe(name: str, params: RecipeParams) -> list:
    return RECIPES.get(name)(params)


def _short_int(n: int) -> str:
    if n >= 1000 and n % 100 == 0:
        k = n / 1000
        return f"{k:g}k"
    return str(n)


def point_name(params: RecipeParams, varying: tuple[str, ...] = ()) -> str:
    """A readable, unique name for a recipe point, e.g. 'L6-F1024-H192-V5k'."""
    parts = []
    if params.layers is not None:
        parts.append(f"L{params.layers}")
    if params.ffn is not None:
        parts.append(f"F{params.ffn}")
    if params.hidden is not None:
        parts.append(f"H{params.hidden}")
    if params.heads is not None:
        parts.append(f"A{params.heads}")
    if params.vocab is not None:
        parts.append(f"V{_short_int(params.vocab)}")
    if params.vocab_min_count is not None:
        parts.append(f"Vmin{params.vocab_min_count}")
    sized = {"layers", "ffn", "hidden", "heads", "vocab", "vocab_min_count"}
    for key in varying:
        if key not in sized:
            value = getattr(params, key)
            text = value if isinstance(value, str) else "_".join(
                f"{k}{v}" for k, v in sorted(value.items())) if isinstance(value, dict) else str(value)
            parts.append(str(text).replace("/", "_"))
    return "-".join(parts) or "teacher"
