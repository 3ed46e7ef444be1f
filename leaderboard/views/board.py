"""The leaderboard table: one row per model and evaluation language, sortable, downloadable."""
from __future__ import annotations

import functools
import io

import pandas as pd
import streamlit as st
from pandas.io.formats.style import Styler

from leaderboard import data, dbstate, tables
from leaderboard.views.context import ViewContext


MISSING = "–"     # not evaluated


def _format_column(styler: Styler, col: str, values: pd.Series, texts: pd.Series) -> None:
    """Show `texts` in place of the numeric `values` of `col`, which stays numeric for sorting.

    One formatter per column looks the text up by value; the rare cells whose value another
    cell shares with a different text (same mean, different std) get their own formatter."""
    pairs = pd.DataFrame({"v": values, "t": texts}).dropna(subset=["v"])
    ambiguous = pairs.groupby("v")["t"].nunique()
    ambiguous = set(ambiguous[ambiguous > 1].index)
    lookup = dict(zip(pairs["v"], pairs["t"]))
    styler.format(lambda v: lookup.get(v, MISSING) if v == v else MISSING, subset=[col])
    for i in pairs.index[pairs["v"].isin(ambiguous)]:
        styler.format(lambda _v, s=texts[i]: s, subset=pd.IndexSlice[[i], [col]])


def display_frame(table: pd.DataFrame, memory_title: str) -> tuple[Styler, dict]:
    """The table as shown: numeric columns (sortable) with formatted text, plus column config."""
    tasks = tables.table_tasks(table)
    out = pd.DataFrame({
        "Model": table["model"], "Language": table["language"], "Teacher": table["teacher"],
        "Stage chain": table["stage_chain"].map(tables.chain_label),
        "Params (M)": table["params_total"] / 1e6,
        "Compression": table["compression_ratio"],
        "Rel. score": table["rel_score"] * 100,
    })
    for task in tasks:
        out[task] = table[task]
    has_bench = "latency_p50_ms" in table
    if has_bench:
        out["p50 (ms)"] = table["latency_p50_ms"]
        out["Speed-up"] = table["speedup_p50"]
        out[memory_title] = table["memory_mb"]
    styler = out.style
    for task in tasks:
        texts = pd.Series([tables.format_score(m, s, n, d) or MISSING for m, s, n, d in zip(
            table[task], table[f"{task}_std"], table[f"{task}_n"], table[f"{task}_derived"])],
            index=out.index)
        _format_column(styler, task, out[task], texts)
    rel_texts = pd.Series(
        [MISSING if pd.isna(r) else f"{r * 100:.1f}%" + (" †" if d is True else "")
         for r, d in zip(table["rel_score"], table["rel_derived"].astype(object))], index=out.index)
    _format_column(styler, "Rel. score", out["Rel. score"], rel_texts)

    number = st.column_config.NumberColumn
    config = {
        "Model": st.column_config.TextColumn(pinned=True),
        "Teacher": st.column_config.TextColumn(width=150),
        "Stage chain": st.column_config.TextColumn(width="medium"),
        "Params (M)": number(format="%.1f",
                             help="encoder parameters (tied weights once), millions"),
        "Compression": number(format="%.1f×", help="teacher parameters / model parameters"),
        "Rel. score": number(help="mean over the tasks shown of score / teacher's score on the "
                                  "same language and protocol"),
        "p50 (ms)": number(format="%.2f", help="median latency at the benchmark shape"),
        "Speed-up": number(format="%.1f×", help="teacher p50 / model p50"),
        memory_title: number(format="%.0f"),
        **{t: number(width=150, help=f"{t}: main test metric, mean ± std over seeds "
                                          "(n seeds); † derived training split")
           for t in tasks},
    }
    return styler, config


def export_frame(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns=["size_bucket"], errors="ignore")


def to_parquet_bytes(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def _open_model_page(model_keys: tuple[str, ...]) -> None:
    """Row selected: show that model's page (callbacks run before the next script run, so the
    tab and the model selectbox can still be set)."""
    rows = st.session_state["leaderboard_table"].selection.rows
    if rows:
        st.session_state["model_page_key"] = model_keys[rows[0]]
        st.session_state["view"] = "Model"


def render(ctx: ViewContext) -> None:
    table = data.leaderboard(ctx.db, ctx.protocol, ctx.filters, ctx.shape)
    st.caption(
        "One row per model and evaluation language (a teacher has a row for each language it "
        "was evaluated on). Task columns: main test metric, mean ± std over seeds (n). "
        "**†** marks scores whose training/model-selection split was derived from another "
        "split. Rel. score: mean over the shown tasks of score / teacher's score. "
        "Click a column header to sort, a row to open its model page.")
    if ctx.state.count("n_compressed") == 0:
        st.info(dbstate.NO_COMPRESSED)
    if table.empty:
        st.warning("No scores match the filters; clear some filters in the sidebar.")
        return
    styler, config = display_frame(table, ctx.memory_title)
    st.dataframe(styler, hide_index=True, column_config=config, key="leaderboard_table",
                 height=min(38 + 35 * len(table), 640), selection_mode="single-row",
                 on_select=functools.partial(_open_model_page, tuple(table["model_key"])))
    if ctx.shape is None:
        st.caption(dbstate.NO_BENCHMARKS)
    else:
        st.caption(f"Latency and memory at {ctx.shape_label} (change the shape in the sidebar); "
                   "speed-up = teacher p50 / model p50.")
    export = export_frame(table)
    row = st.container(horizontal=True)
    row.download_button("Download CSV", export.to_csv(index=False).encode(),
                       file_name="leaderboard.csv", mime="text/csv", key="dl_csv",
                       on_click="ignore")
    row.download_button("Download Parquet", to_parquet_bytes(export),
                       file_name="leaderboard.parquet", mime="application/vnd.apache.parquet",
                       key="dl_parquet", on_click="ignore")
