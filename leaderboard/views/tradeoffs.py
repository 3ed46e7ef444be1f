"""Size/score trade-offs: Pareto fronts, drop against compression, latency x score x memory."""
from __future__ import annotations

import streamlit as st

from leaderboard import charts, data, dbstate, tables
from leaderboard.pareto import mark_front
from leaderboard.views.context import ViewContext


def render(ctx: ViewContext) -> None:
    scores = tables.apply_filters(data.load("main_scores", ctx.db, ctx.protocol), ctx.filters)
    if scores.empty:
        st.warning("No scores match the filters; clear some filters in the sidebar.")
        return

    st.subheader("Score against size")
    tasks = tables.ordered_tasks(scores["task"].unique())
    task = st.selectbox("Task", tasks, key="tradeoff_task")
    df = scores[scores["task"] == task].copy()
    metric = df["metric"].iloc[0]
    df["on_front"] = mark_front(df, "params_total", "mean", by=["language"])
    st.caption(f"{task} ({metric}, test, mean over seeds) against the encoder's parameter count, "
               "one panel per language; the dashed line is the Pareto front (no other model is "
               "both smaller and better). Hover a point for details.")
    st.altair_chart(charts.pareto_chart(df, score_title=f"{task} {metric}"), key="chart_pareto")

    st.subheader("Relative drop against compression ratio")
    rel = tables.apply_filters(data.load("relative_scores", ctx.db, ctx.protocol), ctx.filters)
    if ctx.state.count("n_compressed") == 0 or rel.empty:
        st.info(dbstate.NO_COMPRESSED if ctx.state.count("n_compressed") == 0 else
                "No compressed model matching the filters has a teacher score to compare with.")
    else:
        st.altair_chart(charts.drop_vs_ratio_chart(rel), key="chart_drop_ratio")

    st.subheader("Latency × score × memory")
    if ctx.shape is None:
        st.info(dbstate.NO_BENCHMARKS)
        return
    board = data.leaderboard(ctx.db, ctx.protocol, ctx.filters, ctx.shape)
    board = board[board["latency_p50_ms"].notna() & board["rel_score"].notna()] \
        if "latency_p50_ms" in board else board.iloc[0:0]
    if board.empty:
        st.info(f"No model matching the filters was benchmarked at {ctx.shape_label}.")
        return
    st.caption("Relative score (mean over the shown tasks, teacher = 100%) against p50 latency; "
               "the bubble's area is the peak memory of the measuring process.")
    st.altair_chart(charts.latency_chart(board, ctx.shape_label, ctx.memory_title),
                    key="chart_latency")
