"""Per-language damage of compression against the teacher's pre-training data for the language.

Input is the `degradation_points` query: one row per (compressed model, task, language) with its
relative drop against its teacher, the teacher's data size for the language (`teacher_gib`, from
the column the teacher's teacher_data names) and `data_status` ('seen', 'not seen by teacher',
'no size recorded', 'teacher data unknown').
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from harness.report import text_table
from leaderboard.stats import MIN_POINTS, Correlation, SeedNoise, correlate_with_log_size, seed_noise

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


def _only(values: pd.Series) -> float:
    """The value of a one-row group, NaN for more rows: a seed spread is shown only where the
    language's drop is one model's on one task (averages of several have no paired spread)."""
    return float(values.iloc[0]) if len(values) == 1 and pd.notna(values.iloc[0]) else math.nan


def by_languages(points: pd.DataFrame, column: str) -> pd.Series:
    """How many languages each value of `column` has points for, most first (ties by value)."""
    counts = points.groupby(column)["language"].nunique()
    return counts.sort_index().sort_values(ascending=False, kind="stable")


def default_selection(points: pd.DataFrame, tasks: tuple[str, ...] = ()) -> Selection | None:
    """The leaderboard's first choice: the teacher with compressed points in the most languages,
    and its recipe (stage chain) applied to the most languages."""
    if tasks:
        points = points[points["task"].isin(tasks)]
    if points.empty:
        return None
    teacher = by_languages(points, "teacher_key").index[0]
    chain = by_languages(points[points["teacher_key"] == teacher], "stage_chain").index[0]
    return Selection(teacher, tasks, chain=chain)


def per_language(points: pd.DataFrame, sel: Selection) -> pd.DataFrame:
    """One row per language: the drop averaged over tasks within each model, then over models."""
    df = select_points(points, sel)
    cols = ["language", "language_name", "teacher_gib", "data_status", "relative_drop",
            "paired_std", "paired_seeds", "n_models", "n_tasks", "tasks", "models", "derived"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    per_model = df.groupby(["language", "model_key"], dropna=False).agg(
        drop=("relative_drop", "mean"), model=("model", "first"), derived=("derived", "any"),
        tasks=("task", lambda t: tuple(sorted(set(t)))),
        std=("relative_std", _only), seeds=("paired_seeds", _only))
    out = per_model.groupby("language").agg(
        relative_drop=("drop", "mean"), n_models=("model", "size"), derived=("derived", "any"),
        paired_std=("std", _only), paired_seeds=("seeds", _only),
        models=("model", lambda m: ", ".join(sorted(m))),
        tasks=("tasks", lambda ts: ", ".join(sorted(set().union(*ts)))))
    out["n_tasks"] = out["tasks"].str.split(", ").map(len)
    lang = df.groupby("language").agg(language_name=("language_name", "first"),
                                      teacher_gib=("teacher_gib", "first"),
                                      data_status=("data_status", "first"))
    return out.join(lang).reset_index()[cols].sort_values("teacher_gib", na_position="first")


def _in_fit(langs: pd.DataFrame) -> pd.DataFrame:
    """The languages the correlation uses: those the teacher saw, with a data size."""
    return langs[(langs["data_status"] == SEEN) & (langs["teacher_gib"] > 0)]


def fit(langs: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0) -> Correlation | None:
    """The correlation over the languages the teacher saw; None below MIN_POINTS."""
    seen = _in_fit(langs)
    if len(seen) < MIN_POINTS:
        return None
    try:
        return correlate_with_log_size(seen["teacher_gib"].to_numpy(float),
                                       seen["relative_drop"].to_numpy(float),
                                       n_boot=n_boot, seed=seed)
    except ValueError:  # e.g. every language has the same size
        return None


def noise(langs: pd.DataFrame) -> SeedNoise | None:
    """The seeds' share of the spread between the languages in the fit (None where a language's
    drop has no paired spread, e.g. an average over several models or tasks)."""
    seen = _in_fit(langs)
    return seed_noise(seen["relative_drop"], seen["paired_std"], seen["paired_seeds"])


def noise_lines(n: SeedNoise, corr: Correlation) -> list[str]:
    """How much of the spread between languages the seeds make, and what that does to r."""
    lines = [f"seed noise: {n.share:.0%} of the variance of the drops between the {n.n} languages "
             f"({n.between_variance * 1e4:.2f} pts²) is what their paired seeds alone give (mean std²/n "
             f"{n.noise_variance * 1e4:.2f} pts²), so |r| cannot exceed {n.ceiling:.2f} here"]
    if n.ceiling > 0:
        r = corr.pearson_r / n.ceiling
        lines.append(f"Pearson r corrected for that noise (r / {n.ceiling:.2f}): {r:+.2f}"
                     + (" (beyond ±1: the noise share itself is rough at this n)" if abs(r) > 1 else ""))
    return lines


def report(points: pd.DataFrame, sel: Selection, *, n_boot: int = 2000, seed: int = 0) -> str:
    """`harness results --degradation`: the view's language table and correlation as text."""
    langs = per_language(points, sel)
    if langs.empty:
        return ""
    mine = points[points["teacher_key"] == sel.teacher_key]
    teacher, teacher_data = mine["teacher"].iloc[0], mine["teacher_data"].iloc[0]
    body = []
    for r in langs.itertuples():
        spread = "" if math.isnan(r.paired_std) else f" ± {100 * r.paired_std:.1f} (n={r.paired_seeds:.0f})"
        size = "-" if pd.isna(r.teacher_gib) else f"{r.teacher_gib:g}"
        body.append([r.language, str(r.language_name), size, r.data_status,
                     f"{100 * r.relative_drop:+.1f}%{spread}", r.tasks, str(r.n_models)])
    head = (f"teacher {teacher}, recipe {sel.chain or 'every point in the ratio band'}, "
            f"tasks {', '.join(sel.tasks) or 'all (averaged within each model)'}")
    table = text_table(["language", "name", f"{teacher_data} GiB", "teacher saw it", "drop", "tasks",
                        "models"], body,
                       "drop: 1 - score / teacher's score on the same protocol and seeds (positive "
                       "= worse than the teacher); ± the sample std over the paired seeds.")
    corr = fit(langs, n_boot=n_boot, seed=seed)
    if corr is None:
        seen = int((langs["data_status"] == SEEN).sum())
        return f"{head}\n{table}\nno correlation: it needs {MIN_POINTS} languages the teacher saw, " \
               f"with different data sizes; this selection has {seen}"
    pct = f"{corr.confidence:.0%}"
    spread = noise(langs)
    return "\n".join([
        head, table,
        f"relative drop against log10({teacher_data} GiB) over n = {corr.n} languages the teacher saw:",
        f"  Pearson r    {corr.pearson_r:+.3f}  p = {corr.pearson_p:.3g}  {pct} CI "
        f"[{corr.pearson_ci[0]:+.3f}, {corr.pearson_ci[1]:+.3f}]",
        f"  Spearman rho {corr.spearman_rho:+.3f}  p = {corr.spearman_p:.3g}  {pct} CI "
        f"[{corr.spearman_ci[0]:+.3f}, {corr.spearman_ci[1]:+.3f}]",
        f"  drop = {100 * corr.intercept:.2f}% {'+' if corr.slope >= 0 else '-'} "
        f"{100 * abs(corr.slope):.2f}% x log10(GiB); intervals: percentile bootstrap over "
        f"languages, {corr.n_boot} resamples, seed {corr.seed} ({corr.n_boot_used} usable)",
    ] + [f"  {line}" for line in (noise_lines(spread, corr) if spread is not None else [])])
