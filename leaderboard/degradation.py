"""Per-language damage of compression against the teacher's pre-training data for the language.

Input is the `degradation_points` query: one row per (compressed model, task, language) with its
relative drop against its teacher, the teacher's data size for the language (`teacher_gib`, from
the column the teacher's teacher_data names) and `data_status` ('seen', 'not seen by teacher',
'no size recorded', 'teacher data unknown').
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from leaderboard.stats import MIN_POINTS, Correlation, correlate_with_log_size

SEEN = "seen"


@dataclass(frozen=True)
class Selection:
    teacher_key: str
    tasks: tuple[str, ...] = ()                  # empty: all tasks
    chain: str | None = None                     # one compression recipe ...
    ratio_range: tuple[float, float] | None = None   # ... or every point in a compression band
    include_derived: bool = True


def select_points(points: pd.DataFrame, sel: Selection) -> pd.DataFrame:
    df = points[points["teacher_key"] == sel.teacher_key]
    if sel.tasks:
        df = df[df["task"].isin(sel.tasks)]
    if not sel.include_derived:
        df = df[~df["derived"].fillna(False).astype(bool)]
    if sel.chain is not None:
        df = df[df["stage_chain"] == sel.chain]
    if sel.ratio_range is not None:
        lo, hi = sel.ratio_range
        df = df[df["compression_ratio"].between(lo, hi)]
    return df[df["relative_drop"].notna()]


def per_language(points: pd.DataFrame, sel: Selection) -> pd.DataFrame:
    """One row per language: the drop averaged over tasks within each model, then over models."""
    df = select_points(points, sel)
    cols = ["language", "language_name", "teacher_gib", "data_status", "relative_drop",
            "n_models", "n_tasks", "tasks", "models", "derived"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    per_model = df.groupby(["language", "model_key"], dropna=False).agg(
        drop=("relative_drop", "mean"), model=("model", "first"), derived=("derived", "any"),
        tasks=("task", lambda t: tuple(sorted(set(t)))))
    out = per_model.groupby("language").agg(
        relative_drop=("drop", "mean"), n_models=("model", "size"), derived=("derived", "any"),
        models=("model", lambda m: ", ".join(sorted(m))),
        tasks=("tasks", lambda ts: ", ".join(sorted(set().union(*ts)))))
    out["n_tasks"] = out["tasks"].str.split(", ").map(len)
    lang = df.groupby("language").agg(language_name=("language_name", "first"),
                                      teacher_gib=("teacher_gib", "first"),
                                      data_status=("data_status", "first"))
    return out.join(lang).reset_index()[cols].sort_values("teacher_gib", na_position="first")


def fit(langs: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0) -> Correlation | None:
    """The correlation over the languages the teacher saw; None below MIN_POINTS."""
    seen = langs[(langs["data_status"] == SEEN) & (langs["teacher_gib"] > 0)]
    if len(seen) < MIN_POINTS:
        return None
    try:
        return correlate_with_log_size(seen["teacher_gib"].to_numpy(float),
                                       seen["relative_drop"].to_numpy(float),
                                       n_boot=n_boot, seed=seed)
    except ValueError:  # e.g. every language has the same size
        return None
