"""Distillation budgets of compressed models, joined with their relative scores (pure pandas).

A compressed model's manifest (`models.manifest`) holds its stage chain; each distillation stage
(`stage: "distill"`) records the objective asked for (`config.settings.loss`, "auto" when unset)
and, in its `report`, what the run did: `tokens_seen`, the objective used (`loss`, "auto"
resolved), `epochs` (passes over the text), `wall_seconds`, `precision`. The budget of a model is
the sum of `tokens_seen` over its distillation stages. Manifests written by older versions may
lack any of these keys: what is there is shown, what is not stays empty, and a model without a
distillation stage in its manifest is left out.

The score is the relative score the leaderboard computes everywhere (`v_relative`: the model's
mean over seeds / its teacher's mean on the same seeds), one row per model, task and language.
"""
from __future__ import annotations

import json
import math
from typing import Any, Iterable

import pandas as pd

from leaderboard.tables import ordered_tasks

DISTILL = "distill"
DEFAULT_REQUEST = "auto"         # DistillConfig.loss when the settings do not name one
UNKNOWN = "unknown"              # neither the report nor the settings say which objective ran

BUDGET_COLUMNS = ["model_key", "distill_stages", "tokens", "tokens_stages", "passes",
                  "wall_seconds", "objective", "requested", "precision"]
POINT_COLUMNS = ["model_key", "model", "teacher_key", "teacher", "language", "task", "metric",
                 "stage_chain", "params_total", "compression_ratio", "derived", *BUDGET_COLUMNS[1:],
                 "budget_complete", "score", "teacher_score", "relative_score", "relative_std",
                 "n_seeds", "teacher_seeds_matched", "curve"]


def _as_dict(manifest: Any) -> dict | None:
    if isinstance(manifest, dict):
        return manifest
    if isinstance(manifest, (str, bytes)) and manifest:
        try:
            value = json.loads(manifest)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None
    return None


def distill_stages(manifest: Any) -> list[dict]:
    """The distillation entries of a manifest's chain (a dict or its JSON text), in chain order."""
    m = _as_dict(manifest)
    chain = m.get("chain") if m else None
    if not isinstance(chain, list):
        return []
    return [e for e in chain if isinstance(e, dict) and e.get("stage") == DISTILL]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def stage_budget(entry: dict) -> dict:
    """One distillation stage: tokens, passes, wall seconds, precision and its objective, asked
    for and used. The objective used is the report's; without it, the one asked for unless that
    was "auto" (which the report alone resolves)."""
    config = entry.get("config") if isinstance(entry.get("config"), dict) else {}
    settings = config.get("settings") if isinstance(config.get("settings"), dict) else {}
    report = entry.get("report") if isinstance(entry.get("report"), dict) else {}
    requested = _text(settings.get("loss")) or DEFAULT_REQUEST
    used = _text(report.get("loss")) or (requested if requested != DEFAULT_REQUEST else UNKNOWN)
    wall = _number(report.get("wall_seconds"))
    return {"tokens": _number(report.get("tokens_seen")),
            "passes": _number(report.get("epochs")),
            "wall_seconds": wall if wall is not None else _number(entry.get("wall_time_s")),
            "precision": _text(report.get("precision")),
            "requested": requested, "objective": used}


def _join(values: Iterable[str | None]) -> str | None:
    """Distinct values in chain order: 'a' for one, 'a → b' for a chain that changes."""
    seen = list(dict.fromkeys(v for v in values if v))
    return " → ".join(seen) if seen else None


def _total(values: list[float | None]) -> float:
    known = [v for v in values if v is not None]
    return float(sum(known)) if known else math.nan


def model_budget(manifest: Any) -> dict | None:
    """The budget of one model (None without a distillation stage). `tokens` sums the stages that
    report tokens_seen (NaN when none does); `tokens_stages` says how many did."""
    stages = [stage_budget(e) for e in distill_stages(manifest)]
    if not stages:
        return None
    tokens = [s["tokens"] for s in stages]
    return {"distill_stages": len(stages), "tokens": _total(tokens),
            "tokens_stages": sum(t is not None for t in tokens),
            "passes": _total([s["passes"] for s in stages]),
            "wall_seconds": _total([s["wall_seconds"] for s in stages]),
            "objective": _join(s["objective"] for s in stages),
            "requested": _join(s["requested"] for s in stages),
            "precision": _join(s["precision"] for s in stages)}


def model_budgets(manifests: pd.DataFrame) -> pd.DataFrame:
    """One row per model with a distillation stage. `manifests`: model_key, manifest."""
    rows = []
    for key, manifest in zip(manifests["model_key"], manifests["manifest"]):
        b = model_budget(manifest)
        if b is not None:
            rows.append({"model_key": key, **b})
    return pd.DataFrame(rows, columns=BUDGET_COLUMNS).astype(
        {"distill_stages": int, "tokens_stages": int, "tokens": float, "passes": float,
         "wall_seconds": float})


def budget_points(budgets: pd.DataFrame, relative: pd.DataFrame,
                  scores: pd.DataFrame) -> pd.DataFrame:
    """One row per distilled model, task and language: its budget and its relative score.

    `relative`: the `relative_scores` query (already narrowed to the protocol and filters), whose
    `relative_std` is paired: the std over seeds of score / teacher's score on the same seed;
    `scores`: the `main_scores` query of the same protocol, for the number of seeds. `curve` names
    the line a point sits on: the same teacher, language, task, stage chain (distillation settings
    are not part of it), parameter count and objective, so points differing only in budget form
    one curve."""
    if budgets.empty or relative.empty:
        return pd.DataFrame(columns=POINT_COLUMNS)
    keys = ["model_key", "task", "language", "protocol_hash"]
    df = relative.merge(budgets, on="model_key").merge(
        scores[[*keys, "n"]], on=keys, how="left")
    df["n_seeds"] = df["n"].astype("Int64")
    df["budget_complete"] = df["tokens_stages"] == df["distill_stages"]
    params = df["params_total"].map(lambda p: "?" if pd.isna(p) else f"{int(p):,}")
    df["curve"] = (df["teacher"].astype(str) + " · " + df["language"].astype(str) + " · "
                   + df["task"].astype(str) + " · " + df["stage_chain"].fillna("").astype(str)
                   + " · " + params + " params · " + df["objective"].fillna(UNKNOWN))
    task_rank = {t: i for i, t in enumerate(ordered_tasks(df["task"].unique()))}
    df["_task"] = df["task"].map(task_rank)
    return df.sort_values(
        ["_task", "language", "teacher", "stage_chain", "objective", "tokens", "model"],
        na_position="last")[POINT_COLUMNS].reset_index(drop=True)
