"""One model: its stage chain, manifest, scores per task and language (with seeds), benchmarks."""
from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from leaderboard import data, dbstate, tables
from leaderboard.views.context import ViewContext


def _chain_markdown(teacher: str, chain: str) -> str:
    if not chain:
        return f"**{teacher}** (a teacher: no compression stages)"
    stages = [s.strip() for s in chain.split(">")]
    return " → ".join([f"**{teacher}**", *[f"`{s}`" for s in stages]])


def export_command(model_key: str, name: str, db) -> str:
    """The command that publishes a compressed model with its model card (harness export)."""
    from harness.store import DEFAULT_DB

    db_option = "" if str(db) == str(DEFAULT_DB) else f" --db {db}"
    return f"harness export {model_key} --to exports/{name}{db_option}"


def _fmt_int(v) -> str:
    return "—" if v is None or pd.isna(v) else f"{int(v):,}"


def render(ctx: ViewContext) -> None:
    models = data.load("models", ctx.db)
    labels = {r.model_key: f"{r.model} · {r.kind}" + (f" · {r.model_language}"
                                                     if isinstance(r.model_language, str) else "")
              for r in models.itertuples()}
    key = st.selectbox("Model", list(labels), format_func=labels.get, key="model_page_key")
    info = models[models["model_key"] == key].iloc[0]
    record = data.load("model_record", ctx.db, key).iloc[0]

    st.subheader(info["model"])
    teacher = "" if info["kind"] == "teacher" else f" · teacher: {info['teacher']}"
    st.markdown(f"`{key}` · {info['kind']}{teacher}"
                + (f" · target language: {ctx.language_label(info['model_language'])}"
                   if isinstance(info["model_language"], str) else ""))
    st.markdown("Stage chain: " + _chain_markdown(info["teacher"], info["stage_chain"]))
    cols = st.columns(5)
    cols[0].metric("Parameters", _fmt_int(info["params_total"]))
    cols[1].metric("Embedding", _fmt_int(info["params_embedding"]))
    cols[2].metric("Non-embedding", _fmt_int(info["params_non_embedding"]))
    ratio = info["compression_ratio"]
    cols[3].metric("Compression", "—" if pd.isna(ratio) else f"{ratio:.2f}×")
    cols[4].metric("Size bucket", tables.size_bucket(info["params_total"]))
    arch = {k: info[k] for k in ("num_layers", "hidden_size", "ffn_size", "vocab_size")
            if not pd.isna(info[k])}
    if arch:
        st.caption(" · ".join(f"{k.replace('_', ' ')}: {int(v):,}" for k, v in arch.items()))
    st.caption(f"source: `{record['source']}`" + (f" · path: `{record['path']}`"
                                                   if isinstance(record["path"], str) else ""))

    if info["kind"] == "compressed":
        st.markdown("Publish it with a model card of these scores (add `--push-to-hub ORG/NAME` to upload):")
        st.code(export_command(key, info["model"], ctx.db), language="bash")

    with st.expander("Manifest", expanded=False):
        manifest = record["manifest"]
        if isinstance(manifest, str) and manifest:
            st.json(json.loads(manifest), expanded=2)
        else:
            st.caption("No compression manifest recorded for this model.")

    st.markdown("#### Scores")
    summary = data.load("model_score_summary", ctx.db, key)
    summary = summary[ctx.in_protocol(summary)]
    if summary.empty:
        st.info(f"No finished runs of this model under this protocol. "
                f"Run `{dbstate.EVAL_CMD}`.")
    else:
        shown = summary.assign(
            score=[tables.format_score(m, s, n, d) for m, s, n, d in
                   zip(summary["mean"], summary["std"], summary["n"], summary["derived"])],
            seeds=summary["seeds"].map(lambda s: ", ".join(map(str, s))),
            main=summary["is_main"].map({True: "main", False: ""}))
        st.dataframe(shown[["task", "language", "split", "metric", "main", "score", "mean",
                            "std", "n", "seeds"]],
                     hide_index=True, key="model_scores",
                     column_config={"mean": st.column_config.NumberColumn(format="%.4f"),
                                    "std": st.column_config.NumberColumn(format="%.4f")})
        per_seed = data.load("model_seed_scores", ctx.db, key)
        per_seed = per_seed[ctx.in_protocol(per_seed) & per_seed["is_main"]]
        if not per_seed.empty:
            st.caption("Main metric per seed (test and dev split of the selected checkpoint):")
            wide = per_seed.pivot_table(index=["task", "language", "split", "metric"],
                                        columns="seed", values="value").reset_index()
            wide.columns = [f"seed {c}" if isinstance(c, (int,)) or str(c).isdigit() else c
                            for c in wide.columns]
            st.dataframe(wide, hide_index=True, key="model_seeds")

    runs = data.load("model_runs", ctx.db, key)
    unfinished = runs[runs["status"] != "done"]
    if not unfinished.empty:
        with st.expander(f"{len(unfinished)} run(s) not done (failed or still running)"):
            st.dataframe(unfinished[["task", "language", "seed", "status", "error"]],
                         hide_index=True)

    st.markdown("#### Benchmarks")
    bench = data.load("model_benchmarks", ctx.db, key)
    if bench.empty:
        st.caption(dbstate.NO_BENCHMARKS)
    else:
        st.dataframe(bench.dropna(axis=1, how="all"), hide_index=True, key="model_bench")
