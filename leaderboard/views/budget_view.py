"""Distillation budget: relative score against the tokens a model was distilled on, per objective."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from leaderboard import charts, data, dbstate, tables
from leaderboard.budget import budget_points
from leaderboard.views.context import ViewContext

NO_DISTILLED = ("No compressed model has a distillation stage in its manifest. Add a `distill` "
                f"stage to a recipe in the grid's `compression` section and run `{dbstate.EVAL_CMD}`.")
PANELS = {"task": "one per task", "language": "one per language"}

TABLE_COLUMNS = {       # the chart's axes first, then how the budget was spent, then the shape
    "model": "Model", "language": "Language", "task": "Task", "objective": "Objective",
    "tokens": "Tokens seen", "rel_pct": "Rel. score (%)", "std_pct": "± std (%)",
    "n_seeds": "Seeds (n)", "distill_stages": "Distill stages", "passes": "Passes",
    "wall_seconds": "Wall (s)", "requested": "Asked for", "precision": "Precision",
    "tokens_stages": "Stages with tokens", "teacher_seeds_matched": "Teacher same seeds",
    "derived": "Derived †", "teacher": "Teacher", "stage_chain": "Stage chain",
    "params_m": "Params (M)",
}


def table(points: pd.DataFrame) -> pd.DataFrame:
    """The chart's numbers, one row per model, task and language."""
    df = points.assign(params_m=points["params_total"] / 1e6,
                       rel_pct=points["relative_score"] * 100,
                       std_pct=points["relative_std"] * 100)
    return df[list(TABLE_COLUMNS)].rename(columns=TABLE_COLUMNS)


def render(ctx: ViewContext) -> None:
    if ctx.state.count("n_compressed") == 0:
        st.info(dbstate.NO_COMPRESSED)
        return
    budgets = data.distill_budgets(ctx.db)
    if budgets.empty:
        st.info(NO_DISTILLED)
        return
    relative = tables.apply_filters(data.load("relative_scores", ctx.db, ctx.protocol), ctx.filters)
    points = budget_points(budgets, relative, data.load("main_scores", ctx.db, ctx.protocol))
    if points.empty:
        st.info("No distilled model matching the filters has a teacher score to compare with.")
        return

    panel = st.radio("Panels", list(PANELS), format_func=PANELS.get, horizontal=True,
                     key="budget_panel")
    plotted = points[points["tokens"] > 0]
    st.caption("x: tokens seen in distillation, summed over the model's distillation stages. "
               "y: the model's score / its teacher's on the same seeds (mean over seeds, as in "
               "the leaderboard); the bar is ± the std of the model's score over seeds, divided "
               "by the teacher's. Colour: the objective the runs used (\"auto\" resolved). A line "
               "joins points of one compression shape (teacher, language, stage chain, "
               "parameters) and objective that differ in budget. Hover a point for details.")
    if plotted.empty:
        st.info("No distilled model matching the filters recorded the tokens it was trained on "
                "(manifests written before `tokens_seen` was reported); the table lists them.")
    else:
        order = (tables.ordered_tasks(plotted["task"].unique()) if panel == "task"
                 else sorted(plotted["language"].unique()))
        st.altair_chart(charts.budget_chart(plotted, panel, order), key="chart_budget")
    missing = len(points) - len(plotted)
    partial = int((~points["budget_complete"] & (points["tokens"] > 0)).sum())
    notes = []
    if missing and not plotted.empty:
        notes.append(f"{missing} rows without a recorded token count are only in the table")
    if partial:
        notes.append(f"{partial} rows count the tokens of only some of their distillation stages "
                     "(older manifests; a lower bound, drawn hollow; see 'Stages with tokens')")
    if notes:
        st.caption("; ".join(notes) + ".")

    st.dataframe(table(points), hide_index=True, key="budget_table", column_config={
        "Params (M)": st.column_config.NumberColumn(format="%.1f"),
        "Tokens seen": st.column_config.NumberColumn(format="localized"),
        "Passes": st.column_config.NumberColumn(format="%.2f"),
        "Wall (s)": st.column_config.NumberColumn(format="%.0f"),
        "Rel. score (%)": st.column_config.NumberColumn(format="%.2f"),
        "± std (%)": st.column_config.NumberColumn(format="%.2f"),
    })
