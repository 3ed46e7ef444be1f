"""Altair charts of the leaderboard (pure functions: DataFrame in, chart out)."""
from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from leaderboard.stats import Correlation

FACET_WIDTH = 300
FACET_HEIGHT = 230
SCHEME = "tableau10"     # distinct hues (the theme's default palette is shades of one colour)


def log_axis(values, title: str, fmt: str = "~g", pad: float = 1.3) -> dict:
    """X/Y keyword arguments for a log scale padded around `values`, ticked at 1-2-5 steps
    (every integer mantissa when the range is too narrow for three such ticks)."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x) and x > 0], dtype=float)
    if v.size == 0:
        return {"scale": alt.Scale(type="log"), "axis": alt.Axis(format=fmt, title=title)}
    lo, hi = v.min() / pad, v.max() * pad
    decades = range(int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi))) + 1)
    ticks = []
    for mantissas in ((1, 2, 5), range(1, 10)):
        ticks = [m * 10.0 ** e for e in decades for m in mantissas if lo <= m * 10.0 ** e <= hi]
        if len(ticks) >= 3:
            break
    return {"scale": alt.Scale(type="log", domain=[lo, hi], nice=False),
            "axis": alt.Axis(format=fmt, title=title, values=ticks, grid=True)}


def _tooltip_score(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df["score ± std (n)"] = [
        f"{m:.3f}" + ("" if pd.isna(s) else f" ± {s:.3f}") + f" (n={int(n)})"
        + (" †" if d else "")
        for m, s, n, d in zip(df["mean"], df["std"], df["n"], df["derived"].fillna(False))]
    return df


def pareto_chart(df: pd.DataFrame, score_title: str, columns: int = 3) -> alt.FacetChart:
    """Score against parameter count, one panel per language, the Pareto front dashed.

    `df`: model, teacher, kind, stage_chain, params_total, mean, std, n, derived, language,
    on_front (bool)."""
    df = _tooltip_score(df)
    df["stage_chain"] = df["stage_chain"].replace("", "(teacher)")
    x = alt.X("params_total:Q", **log_axis(df["params_total"], "parameters (log scale)", "~s"))
    y = alt.Y("mean:Q", scale=alt.Scale(zero=False), title=score_title)
    front = alt.Chart().transform_filter(alt.datum.on_front).mark_line(
        interpolate="step-after", strokeDash=[5, 3], color="#888", strokeWidth=1.5
    ).encode(x=x, y=y, order="params_total:Q")
    points = alt.Chart().mark_point(filled=True, size=80, opacity=0.85).encode(
        x=x, y=y,
        color=alt.Color("teacher:N", scale=alt.Scale(scheme=SCHEME),
                        legend=alt.Legend(orient="bottom", title="teacher", labelLimit=300)),
        shape=alt.Shape("kind:N", legend=alt.Legend(orient="bottom", title="kind")),
        tooltip=["model:N", "language:N", "stage_chain:N",
                 alt.Tooltip("params_total:Q", format=",", title="parameters"),
                 "score ± std (n):N", "on_front:N"],
    )
    return alt.layer(front, points, data=df).properties(
        width=FACET_WIDTH, height=FACET_HEIGHT
    ).facet(facet=alt.Facet("language:N", title=None), columns=columns)


def drop_vs_ratio_chart(df: pd.DataFrame) -> alt.Chart:
    """Relative drop (%) of each compressed point and task against its compression ratio.

    `df`: model, language, task, stage_chain, compression_ratio, relative_drop, derived."""
    df = df.assign(drop_pct=df["relative_drop"] * 100,
                   split=np.where(df["derived"].fillna(False), "derived †", "standard"))
    return alt.Chart(df).mark_point(filled=True, size=70, opacity=0.8).encode(
        x=alt.X("compression_ratio:Q", **log_axis(
            df["compression_ratio"],
            "compression ratio (teacher params / model params, log scale)")),
        y=alt.Y("drop_pct:Q", title="relative drop vs teacher (%)"),
        color=alt.Color("task:N", scale=alt.Scale(scheme=SCHEME),
                        legend=alt.Legend(orient="bottom")),
        shape=alt.Shape("split:N", legend=alt.Legend(orient="bottom", title="training split")),
        tooltip=["model:N", "language:N", "task:N", "stage_chain:N",
                 alt.Tooltip("compression_ratio:Q", format=".2f"),
                 alt.Tooltip("drop_pct:Q", format=".2f", title="drop %")],
    ).properties(height=360)


def latency_chart(df: pd.DataFrame, shape_label: str, memory_title: str) -> alt.Chart:
    """Relative score against p50 latency, bubble size the peak memory.

    `df`: model, teacher, kind, language, latency_p50_ms, memory_mb, rel_score."""
    df = df.assign(rel_pct=df["rel_score"] * 100)
    return alt.Chart(df).mark_circle(opacity=0.7).encode(
        x=alt.X("latency_p50_ms:Q", **log_axis(
            df["latency_p50_ms"], f"p50 latency, ms (log scale) · {shape_label}")),
        y=alt.Y("rel_pct:Q", scale=alt.Scale(zero=False), title="relative score vs teacher (%)"),
        size=alt.Size("memory_mb:Q", title=memory_title, scale=alt.Scale(range=[60, 900]),
                      legend=alt.Legend(orient="bottom")),
        color=alt.Color("teacher:N", scale=alt.Scale(scheme=SCHEME),
                        legend=alt.Legend(orient="bottom", labelLimit=300)),
        tooltip=["model:N", "language:N", "kind:N",
                 alt.Tooltip("latency_p50_ms:Q", format=".2f", title="p50 ms"),
                 alt.Tooltip("memory_mb:Q", format=".0f", title=memory_title),
                 alt.Tooltip("rel_pct:Q", format=".1f", title="relative score %")],
    ).properties(height=360)


def degradation_chart(langs: pd.DataFrame, corr: Correlation | None, x_title: str
                      ) -> alt.LayerChart | alt.HConcatChart:
    """Per-language drop against the teacher's data size (log axis) with the fitted line; the
    languages the teacher never saw in a strip on the right, on the same y scale."""
    langs = langs.assign(drop_pct=langs["relative_drop"] * 100)
    seen = langs[(langs["data_status"] == "seen") & (langs["teacher_gib"] > 0)]
    other = langs[~langs.index.isin(seen.index)]
    y_domain = [min(0.0, float(langs["drop_pct"].min())),
                float(langs["drop_pct"].max()) * 1.1 + 0.5]
    y = alt.Y("drop_pct:Q", title="relative drop vs teacher (%)", scale=alt.Scale(domain=y_domain))
    tooltip = ["language:N", "language_name:N", alt.Tooltip("teacher_gib:Q", title="GiB"),
               alt.Tooltip("drop_pct:Q", format=".2f", title="drop %"), "n_models:Q", "tasks:N",
               "data_status:N"]
    x = alt.X("teacher_gib:Q", **log_axis(seen["teacher_gib"], x_title))
    base = alt.Chart(seen)
    layers = [
        base.mark_point(filled=True, size=90, color="#1f77b4").encode(x=x, y=y, tooltip=tooltip),
        base.mark_text(dx=8, dy=-8, align="left", fontSize=12).encode(x=x, y=y,
                                                                      text="language:N"),
    ]
    if corr is not None and len(seen) >= 2:
        xs = np.logspace(np.log10(seen["teacher_gib"].min()),
                         np.log10(seen["teacher_gib"].max()), 50)
        line = pd.DataFrame({"teacher_gib": xs, "drop_pct": corr.predict(xs) * 100})
        layers.insert(0, alt.Chart(line).mark_line(color="#d62728", strokeWidth=2).encode(x=x, y=y))
    main = alt.layer(*layers).properties(height=380, width=560)
    if other.empty:
        return main
    y_bare = alt.Y("drop_pct:Q", axis=None, scale=alt.Scale(domain=y_domain))
    strip_x = alt.X("data_status:N", title=None, axis=alt.Axis(labelAngle=0))
    strip = alt.Chart(other).mark_point(shape="triangle", size=110, filled=True, color="#ff7f0e"
                                        ).encode(x=strip_x, y=y_bare, tooltip=tooltip)
    strip_text = alt.Chart(other).mark_text(dx=9, align="left", fontSize=12).encode(
        x=strip_x, y=y_bare, text="language:N")
    side = alt.layer(strip, strip_text).properties(height=380, width=140,
                                                   title="excluded from the fit")
    return alt.hconcat(main, side).resolve_scale(y="shared")


def budget_chart(df: pd.DataFrame, panel: str = "task", panel_order: list[str] | None = None,
                 columns: int = 3) -> alt.FacetChart:
    """Relative score against the distillation budget (tokens, log axis), colour = objective,
    ± the std over seeds as a bar, one panel per `panel` value ('task' or 'language', in
    `panel_order`); points of one `curve` (same shape and objective, other budgets) joined by a
    line. A point whose manifest gave tokens for only some of its distillation stages (a lower
    bound) is drawn hollow.

    `df`: leaderboard.budget.budget_points rows with a budget (tokens > 0)."""
    df = df.assign(rel_pct=df["relative_score"] * 100, std_pct=df["relative_std"] * 100)
    df["rel_lo"], df["rel_hi"] = df["rel_pct"] - df["std_pct"], df["rel_pct"] + df["std_pct"]
    df["budget"] = np.where(df["budget_complete"], "all stages",
                            df["tokens_stages"].astype(str) + " of "
                            + df["distill_stages"].astype(str) + " stages")
    x = alt.X("tokens:Q", **log_axis(df["tokens"], "distillation budget: tokens seen (log scale)",
                                     "~s"))
    y = alt.Y("rel_pct:Q", scale=alt.Scale(zero=False), title="relative score vs teacher (%)")
    color = alt.Color("objective:N", scale=alt.Scale(scheme=SCHEME),
                      legend=alt.Legend(orient="bottom", title="objective used", labelLimit=300))
    tooltip = ["model:N", "teacher:N", "language:N", "task:N", "stage_chain:N",
               alt.Tooltip("params_total:Q", format=",", title="parameters"),
               "objective:N", alt.Tooltip("requested:N", title="objective asked for"),
               alt.Tooltip("tokens:Q", format=",", title="tokens seen"),
               alt.Tooltip("budget:N", title="tokens reported by"),
               alt.Tooltip("distill_stages:Q", title="distillation stages"),
               alt.Tooltip("passes:Q", format=".2f", title="passes over the text"),
               alt.Tooltip("wall_seconds:Q", format=",.0f", title="wall seconds"),
               "precision:N",
               alt.Tooltip("rel_pct:Q", format=".2f", title="relative score %"),
               alt.Tooltip("std_pct:Q", format=".2f", title="± std %"),
               alt.Tooltip("n_seeds:Q", title="seeds (n)"),
               alt.Tooltip("teacher_seeds_matched:N", title="teacher on the same seeds")]
    line = alt.Chart().mark_line(strokeWidth=1.5, opacity=0.7).encode(
        x=x, y=y, color=color, detail="curve:N", order="tokens:Q")
    bars = alt.Chart().transform_filter("isValid(datum.std_pct)").mark_rule(opacity=0.6).encode(
        x=x, y=alt.Y("rel_lo:Q"), y2="rel_hi:Q", color=color)
    fill = alt.Fill("objective:N", scale=alt.Scale(scheme=SCHEME), legend=None)
    points = alt.Chart().mark_point(size=70, opacity=0.9, strokeWidth=2).encode(
        x=x, y=y, color=color, tooltip=tooltip,
        fill=alt.condition("datum.budget_complete", fill, alt.value("white")))
    return alt.layer(line, bars, points, data=df).properties(
        width=FACET_WIDTH, height=FACET_HEIGHT
    ).facet(facet=alt.Facet(f"{panel}:N", title=None, sort=panel_order or "ascending"),
            columns=columns)
