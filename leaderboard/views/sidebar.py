"""The sidebar: protocol, the filters shared by all views, and the benchmark shape."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from leaderboard import data, tables
from leaderboard.dbstate import DbState
from leaderboard.views.context import ViewContext


def _family_label(row) -> str:
    """A protocol family in the picker: its label (profile/precision, and the teacher-label settings
    where it has them), else its profile; its id; its runs."""
    name = next((x for x in (row.label, row.profile) if isinstance(x, str) and x), "")
    return f"{name + ' · ' if name else ''}{row.protocol_id[:12]} ({row.n_runs} runs)"


def shape_label(row: pd.Series | dict) -> str:
    return (f"{row['target']} · {row['device']} {row['dtype']} · "
            f"batch {int(row['batch_size'])} × {int(row['seq_len'])} tokens")


def render(db: str, state: DbState) -> ViewContext:
    sb = st.sidebar
    running, failed = state.count("n_runs_running"), state.count("n_runs_failed")
    sb.caption(f"Database: `{db}`  \n"
               f"{state.count('n_teachers')} teachers · {state.count('n_compressed')} compressed "
               f"models · {state.count('n_runs_done')} runs done"
               + (f" · {running} running" if running else "")
               + (f" · {failed} failed" if failed else ""))

    protocols = data.load("protocols", db)
    protocol = protocols["protocol_id"].iloc[0]
    if len(protocols) > 1:
        labels = {row.protocol_id: _family_label(row) for row in protocols.itertuples()}
        protocol = sb.selectbox(
            "Fine-tuning protocol", list(labels), key="protocol", format_func=labels.get,
            help="A grid's protocol section (each task has its own settings within it). "
                 "Scores of different protocols are never compared with each other.")
    members = data.load("protocol_members", db, protocol)
    protocol_members = frozenset(zip(members["task"], members["protocol_hash"]))

    scores = data.load("main_scores", db, protocol)
    langs = data.load("languages", db)
    names = dict(zip(langs["code"], langs["name"])) if not langs.empty else {}

    sb.subheader("Filters")
    teachers = dict(zip(scores["teacher_key"], scores["teacher"]))
    f_teachers = sb.multiselect("Teacher", list(teachers), key="f_teachers",
                                format_func=lambda k: teachers.get(k, k), placeholder="all")
    lang_options = sorted(scores["language"].unique())
    f_langs = sb.multiselect("Language", lang_options, key="f_languages", placeholder="all",
                             format_func=lambda c: f"{c} · {names[c]}" if c in names else c)
    f_tasks = sb.multiselect("Task", tables.ordered_tasks(scores["task"].unique()), key="f_tasks",
                             placeholder="all")
    chains = sorted({tables.chain_label(c) for c in scores["stage_chain"]},
                    key=lambda c: (c != tables.TEACHER_CHAIN, c))
    f_chains = sb.multiselect("Stage chain", chains, key="f_chains", placeholder="all")
    present = set(scores["params_total"].map(tables.size_bucket))
    buckets = [b for b in (*tables.SIZE_LABELS, tables.UNKNOWN_SIZE) if b in present]
    f_sizes = sb.multiselect("Size (parameters)", buckets, key="f_sizes", placeholder="all")
    include_derived = sb.toggle(
        "Include derived splits (†)", value=True, key="f_derived",
        help="Scores whose training/model-selection split was derived from another split "
             "(e.g. a treebank without a train file). They are marked † wherever shown.")
    filters = tables.Filters(tuple(f_teachers), tuple(f_langs), tuple(f_tasks), tuple(f_chains),
                             tuple(f_sizes), include_derived)

    shape, label, memory_title = None, "", "memory (MB)"
    shapes = data.load("benchmark_shapes", db)
    if not shapes.empty:
        sb.subheader("Benchmark")
        labels = [shape_label(r) for _, r in shapes.iterrows()]
        label = sb.selectbox("Shape for latency and memory", labels, key="bench_shape")
        row = shapes.iloc[labels.index(label)]
        shape = (row["target"], row["device"], row["dtype"], int(row["batch_size"]),
                 int(row["seq_len"]))
        memory_title = ("peak RSS (MB)" if row["device"] == "cpu"
                        else "peak allocated (MB)")
    return ViewContext(db=db, state=state, protocol=protocol, protocol_members=protocol_members,
                       filters=filters, shape=shape,
                       shape_label=label, memory_title=memory_title, language_names=names)
