"""Shaping the query results into the leaderboard table (pure pandas, no Streamlit).

A row is a model evaluated on a language: a compressed point has one target language, a teacher
is multilingual and gets one row per language it was evaluated on, so each row's scores and its
relative score compare like with like.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.constants import ordered_tasks

TEACHER_CHAIN = "(teacher)"          # how an empty stage chain is shown and filtered

# parameter-count buckets (upper edges, in parameters) and their labels
SIZE_EDGES = (10e6, 30e6, 100e6, 300e6)
SIZE_LABELS = ("< 10M", "10-30M", "30-100M", "100-300M", ">= 300M")
UNKNOWN_SIZE = "unknown"


@dataclass(frozen=True)
class Filters:
    """What the sidebar selects; an empty tuple means everything."""
    teachers: tuple[str, ...] = ()       # teacher_key
    languages: tuple[str, ...] = ()      # evaluation language
    tasks: tuple[str, ...] = ()
    chains: tuple[str, ...] = ()         # stage_chain, TEACHER_CHAIN for ''
    size_buckets: tuple[str, ...] = ()
    include_derived: bool = True         # scores whose training split was derived


def size_bucket(params: float | None) -> str:
    if params is None or (isinstance(params, float) and math.isnan(params)):
        return UNKNOWN_SIZE
    for edge, label in zip(SIZE_EDGES, SIZE_LABELS):
        if params < edge:
            return label
    return SIZE_LABELS[-1]


def chain_label(chain: str | None) -> str:
    return chain if chain else TEACHER_CHAIN


def apply_filters(df: pd.DataFrame, f: Filters) -> pd.DataFrame:
    """Rows of a query result matching the filters (columns that are absent are not filtered)."""
    keep = pd.Series(True, index=df.index)
    if f.teachers and "teacher_key" in df:
        keep &= df["teacher_key"].isin(f.teachers)
    if f.languages and "language" in df:
        keep &= df["language"].isin(f.languages)
    if f.tasks and "task" in df:
        keep &= df["task"].isin(f.tasks)
    if f.chains and "stage_chain" in df:
        keep &= df["stage_chain"].map(chain_label).isin(f.chains)
    if f.size_buckets and "params_total" in df:
        keep &= df["params_total"].map(size_bucket).isin(f.size_buckets)
    if not f.include_derived and "derived" in df:
        keep &= ~df["derived"].fillna(False).astype(bool)
    return df[keep]


MODEL_COLUMNS = ["model_key", "model", "kind", "teacher_key", "teacher", "language", "stage_chain",
                 "params_total", "compression_ratio"]


def build_leaderboard(scores: pd.DataFrame, relative: pd.DataFrame,
                      bench: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (model, language) with, per task, `<task>` (mean), `<task>_std`, `<task>_n`,
    `<task>_derived`; `rel_score` (mean relative score over the tasks shown, teacher = 1),
    `rel_derived`; and, with `bench`, latency/memory/speed-up at the chosen shape."""
    if scores.empty:
        return pd.DataFrame(columns=MODEL_COLUMNS)
    tasks = ordered_tasks(scores["task"].unique())
    base = scores[MODEL_COLUMNS].drop_duplicates(["model_key", "language"]).set_index(
        ["model_key", "language"])
    # dropna=False: with a single seed every std is NULL, and the column must still exist
    wide = scores.pivot_table(index=["model_key", "language"], columns="task",
                              values=["mean", "std", "n", "derived"], aggfunc="first", dropna=False)
    table = base.copy()
    for task in tasks:
        table[task] = wide[("mean", task)].astype(float)
        table[f"{task}_std"] = wide[("std", task)].astype(float)
        table[f"{task}_n"] = wide[("n", task)].astype("Int64")
        table[f"{task}_derived"] = wide[("derived", task)].astype("boolean")

    # relative score: only over the (task, language) cells the table shows
    rel = relative.merge(scores[["model_key", "language", "task"]],
                         on=["model_key", "language", "task"])
    agg = rel.groupby(["model_key", "language"]).agg(
        rel_score=("relative_score", "mean"), rel_derived=("derived", "any"),
        rel_tasks=("task", "nunique"))
    table = table.join(agg)
    teacher = table["kind"] == "teacher"
    table.loc[teacher, "rel_score"] = 1.0
    table["rel_derived"] = table["rel_derived"].astype("boolean")
    table.loc[teacher, "rel_derived"] = pd.NA
    table["size_bucket"] = table["params_total"].map(size_bucket)

    if bench is not None and not bench.empty:
        b = bench.set_index("model_key")[["latency_p50_ms", "memory_mb", "speedup_p50"]]
        table = table.join(b, on="model_key")
        table.loc[teacher & table["latency_p50_ms"].notna(), "speedup_p50"] = 1.0

    table = table.reset_index()
    table["_teacher_first"] = ~(table["kind"] == "teacher")
    table = table.sort_values(["language", "_teacher_first", "rel_score", "model"],
                              ascending=[True, True, False, True], na_position="last")
    return table.drop(columns="_teacher_first").reset_index(drop=True)


def table_tasks(table: pd.DataFrame) -> list[str]:
    """The task columns present in a built leaderboard."""
    return ordered_tasks(c[: -len("_derived")] for c in table.columns if c.endswith("_derived")
                         and c != "rel_derived")


def format_score(mean: float, std: float, n, derived) -> str:
    """'0.812 ± 0.010 (n=3)', with a dagger when the training split was derived."""
    if mean is None or (isinstance(mean, float) and np.isnan(mean)):
        return ""
    text = f"{mean:.3f}"
    if std is not None and not (isinstance(std, float) and np.isnan(std)):
        text += f" ± {std:.3f}"
    if n is not None and not pd.isna(n):
        text += f" (n={int(n)})"
    if derived is True or (derived is not None and not pd.isna(derived) and bool(derived)):
        text += " †"
    return text
