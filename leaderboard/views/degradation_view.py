"""Degradation against the teacher's pre-training data for each language."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from leaderboard import charts, data, dbstate, tables
from leaderboard.degradation import SEEN, Selection, by_languages, fit, noise, noise_lines, per_language
from leaderboard.stats import MIN_POINTS, Correlation
from leaderboard.views.context import ViewContext

DATA_TITLES = {"cc100": "CC-100 data for the language, GiB (log scale)",
               "wikipedia": "Wikipedia data for the language, GiB (log scale)"}
DATA_NAMES = {"cc100": "CC-100 (XLM-R family, incl. multilingual-e5)",
              "wikipedia": "Wikipedia (mBERT)"}
ALL_TASKS = "average over tasks"
N_BOOT, SEED = 2000, 0


def stats_frame(corr: Correlation) -> pd.DataFrame:
    pct = f"{corr.confidence:.0%}"
    return pd.DataFrame({
        "statistic": ["Pearson r (on log10 size)", "Spearman rho"],
        "estimate": [corr.pearson_r, corr.spearman_rho],
        "p-value": [corr.pearson_p, corr.spearman_p],
        f"{pct} CI low (bootstrap)": [corr.pearson_ci[0], corr.spearman_ci[0]],
        f"{pct} CI high (bootstrap)": [corr.pearson_ci[1], corr.spearman_ci[1]],
        "n": [corr.n, corr.n],
    })


def _selection(ctx: ViewContext, points: pd.DataFrame) -> Selection | None:
    # teachers with compressed points for the most languages first
    order = by_languages(points, "teacher_key")
    names = dict(zip(points["teacher_key"], points["teacher"]))
    teachers = {k: names[k] for k in order.index}
    if ctx.filters.teachers:
        teachers = {k: v for k, v in teachers.items() if k in ctx.filters.teachers}
    if not teachers:
        st.warning("No compressed model of the selected teachers; change the teacher filter.")
        return None
    c1, c2, c3 = st.columns([2, 2, 2])
    teacher = c1.selectbox("Teacher", list(teachers), format_func=teachers.get, key="deg_teacher")
    mine = points[points["teacher_key"] == teacher]
    if ctx.filters.chains:
        mine = mine[mine["stage_chain"].isin(ctx.filters.chains)]
        if mine.empty:
            st.warning("No compressed point of this teacher has the chosen stage chains.")
            return None
    tasks = tables.ordered_tasks(mine["task"].unique())
    if ctx.filters.tasks:
        tasks = [t for t in tasks if t in ctx.filters.tasks]
    task = c2.selectbox("Task", [ALL_TASKS, *tasks], key="deg_task")
    mode = c3.radio("Compressed points", ["one recipe", "similar compression"], key="deg_mode",
                    horizontal=True,
                    help="one recipe: the same stage chain applied to every language; similar "
                         "compression: the average over all points in a compression-ratio band")
    chosen_tasks = tuple(tasks) if task == ALL_TASKS else (task,)
    if mode == "one recipe":
        by_langs = by_languages(mine, "stage_chain")
        chain = st.selectbox("Recipe (stage chain)", list(by_langs.index), key="deg_chain",
                             format_func=lambda c: f"{c}  ({by_langs[c]} languages)")
        return Selection(teacher, chosen_tasks, chain=chain,
                         include_derived=ctx.filters.include_derived)
    ratios = sorted({round(float(r), 1) for r in mine["compression_ratio"].dropna()})
    if len(ratios) == 1:
        band = (ratios[0], ratios[0])
        st.caption(f"Every point has compression ratio {ratios[0]:.1f}×.")
    else:
        band = st.select_slider("Compression ratio band", ratios, value=(ratios[0], ratios[-1]),
                                key="deg_band", format_func=lambda r: f"{r:.1f}×")
    return Selection(teacher, chosen_tasks, ratio_range=(band[0] - 0.05, band[1] + 0.05),
                     include_derived=ctx.filters.include_derived)


def render(ctx: ViewContext) -> None:
    if ctx.state.count("n_compressed") == 0:
        st.info(dbstate.NO_COMPRESSED)
        return
    if ctx.state.count("n_languages") == 0:
        st.info(dbstate.NO_LANGUAGES)
        return
    points = data.load("degradation_points", ctx.db, ctx.protocol)
    points = tables.apply_filters(points, tables.Filters(
        languages=ctx.filters.languages, size_buckets=ctx.filters.size_buckets))
    if points.empty:
        st.info("No compressed model matching the filters has a teacher score to compare with.")
        return
    sel = _selection(ctx, points)
    if sel is None:
        return
    teacher_data = points.loc[points["teacher_key"] == sel.teacher_key, "teacher_data"].iloc[0]
    if teacher_data not in DATA_TITLES:
        st.warning(f"The teacher's model record does not say which pre-training data applies "
                   f"(teacher_data = {teacher_data!r}; expected 'cc100' or 'wikipedia').")
        return
    langs = per_language(points, sel)
    if langs.empty:
        st.info("No compressed point matches this selection.")
        return
    corr = fit(langs, n_boot=N_BOOT, seed=SEED)
    seen = langs[langs["data_status"] == SEEN]
    excluded = langs[langs["data_status"] != SEEN]

    st.caption(f"x: the teacher's pre-training data for each language, from "
               f"{DATA_NAMES[teacher_data]}. y: relative drop of the compressed point against "
               "its teacher (averaged over the tasks, then over the points selected).")
    m = st.columns(5)
    m[0].metric("Languages in the fit (n)", len(seen) if corr is None else corr.n)
    if corr is not None:
        m[1].metric("Pearson r", f"{corr.pearson_r:.3f}", help=f"p = {corr.pearson_p:.3g}")
        m[2].metric("Spearman rho", f"{corr.spearman_rho:.3f}", help=f"p = {corr.spearman_p:.3g}")
        m[3].metric("Drop per 10× data", f"{corr.slope * 100:+.2f} pts")
    m[4].metric("Not seen by teacher (excluded)", int((excluded["data_status"] ==
                                                     "not seen by teacher").sum()))
    st.altair_chart(charts.degradation_chart(langs, corr, DATA_TITLES[teacher_data]),
                    key="chart_degradation")
    if corr is None:
        st.info(f"The correlation needs at least {MIN_POINTS} languages the teacher saw, with "
                f"different data sizes; this selection has {len(seen)}.")
    else:
        st.dataframe(stats_frame(corr), hide_index=True, key="degradation_stats",
                     column_config={c: st.column_config.NumberColumn(format="%.4g")
                                    for c in ("estimate", "p-value")})
        sign = "+" if corr.slope >= 0 else "−"
        st.caption(f"Fitted line (least squares): drop = {corr.intercept * 100:.2f}% "
                   f"{sign} {abs(corr.slope) * 100:.2f}% × log10(GiB). "
                   "Pearson on log10(GiB), Spearman on ranks, p-values from scipy.stats; "
                   f"intervals: percentile bootstrap over languages, {corr.n_boot} resamples, "
                   f"seed {corr.seed} ({corr.n_boot_used} with both correlations defined).")
        spread = noise(langs)
        if spread is not None:
            st.caption(" ".join(f"{line[0].upper()}{line[1:]}." for line in noise_lines(spread, corr)))
    if not excluded.empty:
        st.caption("Excluded from the fit: " + "; ".join(
            f"{r.language} ({r.data_status}, drop {r.relative_drop * 100:.1f}%)"
            for r in excluded.itertuples()))
    shown = langs.assign(relative_drop=langs["relative_drop"] * 100,
                         paired_std=langs["paired_std"] * 100).rename(
        columns={"relative_drop": "drop %", "paired_std": "± % (paired seeds)",
                 "teacher_gib": f"{teacher_data} GiB"})
    st.dataframe(shown, hide_index=True, key="degradation_languages",
                 column_config={c: st.column_config.NumberColumn(format="%.2f")
                                for c in ("drop %", "± % (paired seeds)")})
