"""The Streamlit app under Streamlit's AppTest, on databases written by harness.store.Store."""
from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest
from scipy import stats as sps
from streamlit import dataframe_util
from streamlit.testing.v1 import AppTest

from lb_demo_db import (DERIVED, LANGUAGES, MBERT, PROTOCOL, RECIPES, TASKS_BY_LANGUAGE, TEACHER,
                        TEACHER_PARAMS)
from harness.store import ModelRecord, RunInfo, RunKey, RunResult, Score, Store
from leaderboard import dbstate, queries
from leaderboard.launch import DB_ENV

APP = Path(__file__).resolve().parents[2] / "leaderboard" / "app.py"
VIEWS = ("Leaderboard", "Trade-offs", "Degradation vs teacher data", "Distillation budget", "Model")
SMALL_RECIPE = "depth(6,stride) > distill > vocab(10000)"


def open_app(db: Path, monkeypatch, view: str | None = None) -> AppTest:
    monkeypatch.setenv(DB_ENV, str(db))
    at = AppTest.from_file(str(APP), default_timeout=120)
    if view is not None:
        at.session_state["view"] = view
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def show(at: AppTest, view: str) -> AppTest:
    at.session_state["view"] = view
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def frame(at: AppTest, column: str):
    """The first st.dataframe whose data has `column`."""
    for df in at.dataframe:
        if column in df.value.columns:
            return df
    raise AssertionError(f"no dataframe with a {column!r} column; have "
                         f"{[list(d.value.columns) for d in at.dataframe]}")


def display_values(df_element):
    """What the table shows (Styler display values) rather than the numbers behind it."""
    raw = df_element.proto.arrow_data.styler.display_values
    return dataframe_util.convert_arrow_bytes_to_pandas_df(raw)


def charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]


def messages(at: AppTest) -> str:
    return "\n".join(e.value for kind in (at.info, at.warning, at.error, at.caption) for e in kind)


def hand_mean(values) -> float:
    return sum(values) / len(values)


# -- every view ----------------------------------------------------------------------------------
def test_every_view_renders(demo_db, monkeypatch):
    at = open_app(demo_db.path, monkeypatch)
    assert at.title[0].value.startswith("Compressed multilingual encoders")
    assert [t.label for t in at.tabs] == list(VIEWS)
    board = frame(at, "Model")
    assert len(board.value) > 0
    assert {b.label for b in at.download_button} == {"Download CSV", "Download Parquet"}

    show(at, "Trade-offs")
    specs = charts(at)
    assert len(specs) == 3          # Pareto, drop vs ratio, latency x score x memory
    assert [s.value for s in at.main.subheader] == [
        "Score against size", "Relative drop against compression ratio",
        "Latency × score × memory"]

    show(at, "Degradation vs teacher data")
    assert len(charts(at)) == 1
    frame(at, "statistic")

    show(at, "Distillation budget")
    assert len(charts(at)) == 1
    budget_rows = frame(at, "Tokens seen").value
    assert set(budget_rows["Stage chain"]) == {SMALL_RECIPE}       # the only distilled recipe
    assert len(budget_rows) == sum(len(t) for t in TASKS_BY_LANGUAGE.values())

    show(at, "Model")
    assert at.selectbox(key="model_page_key").value is not None
    assert [m.label for m in at.metric][:3] == ["Parameters", "Embedding", "Non-embedding"]


def test_leaderboard_scores_are_the_stored_means(demo_db, monkeypatch):
    at = open_app(demo_db.path, monkeypatch)
    el = frame(at, "Model")
    table, shown = el.value, display_values(el)
    names = {k: m["name"] for k, m in demo_db.models.items()}
    keys = {(names[k], lang): k for (k, _, lang) in demo_db.scores}
    checked = 0
    for i, row in table.iterrows():
        key = keys[(row["Model"], row["Language"])]
        for task in TASKS_BY_LANGUAGE[row["Language"]]:
            if (key, task, row["Language"]) not in demo_db.scores:
                continue
            seeds = list(demo_db.scores[(key, task, row["Language"])].values())
            assert row[task] == pytest.approx(hand_mean(seeds), abs=1e-12)
            text = shown.loc[i, task]
            assert text.startswith(f"{hand_mean(seeds):.3f} ± {statistics.stdev(seeds):.3f} (n=3)")
            assert text.endswith("†") == ((task, row["Language"]) in DERIVED)
            checked += 1
    assert checked == sum(len(v) for v in demo_db.scores.values()) // 3
    # teachers are the reference: 100 %
    assert (table.loc[table["Stage chain"] == "(teacher)", "Rel. score"] == 100).all()
    # relative score of one point by hand: mean over its tasks of score / teacher score
    key = f"{TEACHER}-swh-d6v10k"
    row = table[(table["Model"] == names[key])].iloc[0]
    rel = [hand_mean(demo_db.scores[(key, t, "swh_Latn")].values())
           / hand_mean(demo_db.scores[(TEACHER, t, "swh_Latn")].values())
           for t in TASKS_BY_LANGUAGE["swh_Latn"]]
    assert row["Rel. score"] == pytest.approx(100 * hand_mean(rel), abs=1e-9)
    # benchmarks at the default shape: the teacher is the speed-up reference
    assert "p50 (ms)" in table
    assert table.loc[table["Model"] == names[TEACHER], "Speed-up"].eq(1).all()


def test_failed_running_and_other_protocol_runs_do_not_count(demo_db, monkeypatch):
    at = open_app(demo_db.path, monkeypatch)
    table = frame(at, "Model").value
    teacher_gle = table[(table["Model"] == demo_db.models[TEACHER]["name"])
                        & (table["Language"] == "gle_Latn")].iloc[0]
    assert math.isnan(teacher_gle["ner"])       # its only NER runs failed or are running
    teacher_slk = table[(table["Model"] == demo_db.models[TEACHER]["name"])
                        & (table["Language"] == "slk_Latn")].iloc[0]
    assert teacher_slk["topic"] == pytest.approx(
        hand_mean(demo_db.scores[(TEACHER, "topic", "slk_Latn")].values()))
    assert at.selectbox(key="protocol").value == PROTOCOL


# -- filters -------------------------------------------------------------------------------------
def test_filters_change_the_rows_and_columns(demo_db, monkeypatch):
    at = open_app(demo_db.path, monkeypatch)
    everything = frame(at, "Model").value
    assert set(everything["Language"]) == set(LANGUAGES)

    at.multiselect(key="f_languages").set_value(["swh_Latn"]).run()
    rows = frame(at, "Model").value
    assert set(rows["Language"]) == {"swh_Latn"} and 0 < len(rows) < len(everything)

    at.multiselect(key="f_languages").set_value([]).run()
    at.multiselect(key="f_teachers").set_value([MBERT]).run()
    rows = frame(at, "Model").value
    assert set(rows["Teacher"]) == {"mBERT-base"}

    at.multiselect(key="f_teachers").set_value([]).run()
    at.multiselect(key="f_tasks").set_value(["ner"]).run()
    rows = frame(at, "Model").value
    assert "ner" in rows and not {"topic", "pos", "sentiment"} & set(rows.columns)
    assert set(rows["Language"]) == {"slk_Latn", "swh_Latn", "hau_Latn"}

    at.multiselect(key="f_tasks").set_value([]).run()
    at.multiselect(key="f_chains").set_value(["vocab(20000)"]).run()
    rows = frame(at, "Model").value
    assert set(rows["Stage chain"]) == {"vocab(20000)"} and len(rows) == len(LANGUAGES)

    at.multiselect(key="f_chains").set_value([]).run()
    at.multiselect(key="f_sizes").set_value(["10-30M"]).run()
    rows = frame(at, "Model").value
    assert set(rows["Stage chain"]) == {SMALL_RECIPE}

    at.multiselect(key="f_sizes").set_value([]).run()
    est = lambda t: t[(t["Language"] == "est_Latn") & (t["Stage chain"] == "(teacher)")].iloc[0]
    assert not math.isnan(est(frame(at, "Model").value)["pos"])
    at.toggle(key="f_derived").set_value(False).run()
    assert "pos" not in frame(at, "Model").value or math.isnan(est(frame(at, "Model").value)["pos"])


def test_benchmark_shape_changes_latency(demo_db, monkeypatch):
    at = open_app(demo_db.path, monkeypatch)
    shape = at.selectbox(key="bench_shape")
    assert len(shape.options) == 2
    first = frame(at, "Model").value["p50 (ms)"].to_numpy()
    shape.set_value(shape.options[1]).run()
    second = frame(at, "Model").value["p50 (ms)"].to_numpy()
    assert not np.allclose(np.nan_to_num(first), np.nan_to_num(second))


# -- degradation vs teacher data ----------------------------------------------------------------
def _hand_drops(demo_db, chain: str, tasks=None, include_derived=True) -> dict[str, float]:
    """Per seen language: mean over tasks of 1 - mean(point seeds) / mean(teacher seeds)."""
    out = {}
    for lang, key in demo_db.compressed_keys(chain).items():
        name, cc100, _, in_xlmr, _ = LANGUAGES[lang]
        if not in_xlmr or cc100 is None:
            continue
        drops = [1 - hand_mean(demo_db.scores[(key, t, lang)].values())
                 / hand_mean(demo_db.scores[(TEACHER, t, lang)].values())
                 for t in TASKS_BY_LANGUAGE[lang]
                 if (tasks is None or t in tasks)
                 and (include_derived or (t, lang) not in DERIVED)]
        if drops:
            out[lang] = hand_mean(drops)
    return out


def _hand_pearson(x, y) -> float:
    mx, my = hand_mean(x), hand_mean(y)
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    return sxy / math.sqrt(sxx * syy)


def _hand_ranks(v) -> list[float]:
    order = sorted(range(len(v)), key=lambda i: v[i])      # no ties in these numbers
    ranks = [0.0] * len(v)
    for r, i in enumerate(order, start=1):
        ranks[i] = float(r)
    return ranks


def _t_test_p(r: float, n: int) -> float:
    t = r * math.sqrt((n - 2) / (1 - r * r))
    return 2 * sps.t.sf(abs(t), n - 2)


def _check_stats(at, drops: dict[str, float]):
    langs = sorted(drops)
    x = [math.log10(LANGUAGES[lang][1]) for lang in langs]
    y = [drops[lang] for lang in langs]
    r = _hand_pearson(x, y)
    rho = _hand_pearson(_hand_ranks(x), _hand_ranks(y))
    stats = frame(at, "statistic").value.set_index("statistic")
    assert stats.loc["Pearson r (on log10 size)", "estimate"] == pytest.approx(r, abs=1e-9)
    assert stats.loc["Spearman rho", "estimate"] == pytest.approx(rho, abs=1e-9)
    pearson_row = "Pearson r (on log10 size)"
    assert stats.loc[pearson_row, "p-value"] == pytest.approx(_t_test_p(r, len(x)), rel=1e-6)
    assert stats.loc["Spearman rho", "p-value"] == pytest.approx(_t_test_p(rho, len(x)), rel=1e-6)
    assert (stats["n"] == len(langs)).all()
    lo, hi = stats.loc[pearson_row, ["95% CI low (bootstrap)", "95% CI high (bootstrap)"]]
    assert -1 <= lo <= r <= hi <= 1
    # the fitted line: least squares slope shown as points per decade
    mx, my = hand_mean(x), hand_mean(y)
    slope = sum((a - mx) * (b - my) for a, b in zip(x, y)) / sum((a - mx) ** 2 for a in x)
    metric = {m.label: m.value for m in at.metric}
    assert metric["Drop per 10× data"] == f"{slope * 100:+.2f} pts"
    assert metric["Languages in the fit (n)"] == str(len(langs))
    assert metric["Pearson r"] == f"{r:.3f}"
    return r


def test_degradation_correlation_matches_hand_computation(demo_db, monkeypatch):
    at = open_app(demo_db.path, monkeypatch, view="Degradation vs teacher data")
    assert at.selectbox(key="deg_teacher").value == TEACHER     # the one with most languages
    assert at.selectbox(key="deg_chain").value == SMALL_RECIPE
    r_all = _check_stats(at, _hand_drops(demo_db, SMALL_RECIPE))
    assert r_all < -0.5       # the fixture's drops shrink with data, as in the paper
    metric = {m.label: m.value for m in at.metric}
    assert metric["Not seen by teacher (excluded)"] == "1"          # Maltese
    assert "mlt_Latn (not seen by teacher" in messages(at)
    langs = frame(at, "language_name").value
    assert langs.set_index("language").loc["mlt_Latn", "data_status"] == "not seen by teacher"

    # another recipe, one task, and without derived splits: each changes the numbers
    at.selectbox(key="deg_chain").set_value("vocab(20000)").run()
    _check_stats(at, _hand_drops(demo_db, "vocab(20000)"))
    at.selectbox(key="deg_task").set_value("topic").run()
    _check_stats(at, _hand_drops(demo_db, "vocab(20000)", tasks={"topic"}))
    # one model on one task: the seed-paired spread of each language's drop, in percent
    spread = frame(at, "language_name").value.set_index("language")["± % (paired seeds)"]
    student = demo_db.compressed_keys("vocab(20000)")["slk_Latn"]
    s, t = (demo_db.scores[(k, "topic", "slk_Latn")] for k in (student, TEACHER))
    assert spread["slk_Latn"] == pytest.approx(100 * statistics.stdev(s[k] / t[k] for k in s))
    assert any(m.startswith("Seed noise: ") and "cannot exceed" in m for m in messages(at).splitlines())
    at.selectbox(key="deg_task").set_value("average over tasks").run()
    assert frame(at, "language_name").value.set_index("language")["± % (paired seeds)"].isna()["slk_Latn"]
    assert "Seed noise" not in messages(at)           # an average over tasks has no paired spread
    at.toggle(key="f_derived").set_value(False).run()
    _check_stats(at, _hand_drops(demo_db, "vocab(20000)", include_derived=False))


def test_degradation_similar_compression_averages_points(demo_db, monkeypatch):
    at = open_app(demo_db.path, monkeypatch, view="Degradation vs teacher data")
    at.radio(key="deg_mode").set_value("similar compression").run()
    assert not at.exception
    band = at.select_slider(key="deg_band")
    # the whole band: both recipes, averaged per language over the two points
    big, small = _hand_drops(demo_db, "vocab(20000)"), _hand_drops(demo_db, SMALL_RECIPE)
    _check_stats(at, {lang: (big[lang] + small[lang]) / 2 for lang in big})
    # a band holding only the small recipe's ratio
    ratio = round(TEACHER_PARAMS[0] / RECIPES[SMALL_RECIPE][0], 1)
    band.set_value((ratio, ratio)).run()
    _check_stats(at, _hand_drops(demo_db, SMALL_RECIPE))


def test_mbert_teacher_uses_wikipedia_sizes(demo_db, monkeypatch):
    at = open_app(demo_db.path, monkeypatch, view="Degradation vs teacher data")
    at.selectbox(key="deg_teacher").set_value(MBERT).run()
    assert not at.exception
    langs = frame(at, "language_name").value
    assert "wikipedia GiB" in langs.columns
    assert langs.iloc[0]["wikipedia GiB"] == pytest.approx(LANGUAGES["slk_Latn"][2])
    assert "needs at least 3 languages" in messages(at)     # one language: no correlation


# -- distillation budget ------------------------------------------------------------------------
def _facet_field(spec: dict) -> str:
    return spec["facet"]["field"]


def test_distillation_budget_view_shows_the_budgets_and_relative_scores(tmp_path, monkeypatch):
    from lb_budget_db import NOT_DISTILLED, OTHER_PROTOCOL, PROTOCOL as BUDGET_PROTOCOL, build_budget_db

    db = build_budget_db(tmp_path / "budget.duckdb")
    at = open_app(db.path, monkeypatch, view="Distillation budget")
    at.selectbox(key="protocol").set_value(BUDGET_PROTOCOL).run()
    (spec,) = charts(at)
    assert _facet_field(spec) == "task"
    layers = spec["spec"]["layer"]
    assert layers[-1]["encoding"]["x"]["scale"]["type"] == "log"
    assert {l["mark"]["type"] if isinstance(l["mark"], dict) else l["mark"] for l in layers} \
        == {"line", "rule", "point"}
    table = frame(at, "Tokens seen").value
    assert not set(NOT_DISTILLED) & set(table["Model"])
    relative = queries.relative_scores(db.path, BUDGET_PROTOCOL).set_index(
        ["model_key", "task", "language"])
    for _, row in table.iterrows():
        # the model's name is its key in this database
        expected = relative.loc[(row["Model"], row["Task"], row["Language"]), "relative_score"]
        assert row["Rel. score (%)"] == pytest.approx(100 * expected, rel=1e-12)
    two = table[table["Model"] == "mlt-L4F-t"].iloc[0]
    assert two["Distill stages"] == 2 and two["Tokens seen"] == 500_000
    # rows without a token count stay in the table, out of the chart
    assert table["Tokens seen"].isna().sum() > 0
    (chart,) = at.get("vega_lite_chart")
    (plotted,) = [dataframe_util.convert_arrow_bytes_to_pandas_df(d.data.data)
                  for d in chart.proto.datasets]
    assert (plotted["tokens"] > 0).all()
    assert len(plotted) == table["Tokens seen"].notna().sum()

    at.radio(key="budget_panel").set_value("language").run()
    assert _facet_field(charts(at)[0]) == "language"
    at.multiselect(key="f_languages").set_value(["swh_Latn"]).run()
    assert set(frame(at, "Tokens seen").value["Language"]) == {"swh_Latn"}
    # the protocol family in the sidebar decides the scores
    at.multiselect(key="f_languages").set_value([]).run()
    at.selectbox(key="protocol").set_value(OTHER_PROTOCOL).run()
    other = frame(at, "Tokens seen").value
    assert list(other["Model"]) == ["mlt-L6-h100k"]
    assert other["Rel. score (%)"].iloc[0] == pytest.approx(450.0)


def test_distillation_budget_view_without_distilled_models(demo_db, tmp_path, monkeypatch):
    from leaderboard.views.budget_view import NO_DISTILLED

    db = tmp_path / "nomanifest.duckdb"
    db.write_bytes(demo_db.path.read_bytes())
    with Store(db).transaction() as con:
        con.execute("UPDATE models SET manifest = NULL")
    assert NO_DISTILLED in messages(open_app(db, monkeypatch, view="Distillation budget"))
    teachers = _teacher_only_db(tmp_path / "teachers.duckdb")
    assert dbstate.NO_COMPRESSED in messages(open_app(teachers, monkeypatch,
                                                      view="Distillation budget"))


# -- model page ----------------------------------------------------------------------------------
def test_model_page_shows_chain_manifest_scores_and_benchmarks(demo_db, monkeypatch):
    at = open_app(demo_db.path, monkeypatch, view="Model")
    key = f"{TEACHER}-est-d6v10k"
    at.selectbox(key="model_page_key").set_value(key).run()
    assert not at.exception
    text = "\n".join(m.value for m in at.markdown)
    assert "`depth(6,stride)` → `distill` → `vocab(10000)`" in text
    manifest = at.json[0].proto.body
    assert json.loads(manifest)["stages"] == ["depth(6,stride)", "distill", "vocab(10000)"]
    scores = frame(at, "score").value
    main_test = scores[(scores["split"] == "test") & (scores["main"] == "main")]
    assert set(main_test["task"]) == set(TASKS_BY_LANGUAGE["est_Latn"])
    pos = main_test[main_test["task"] == "pos"].iloc[0]
    assert pos["score"].endswith("†") and pos["seeds"] == "1, 2, 3"
    seeds = frame(at, "seed 1").value
    row = seeds[(seeds["task"] == "topic") & (seeds["split"] == "test")].iloc[0]
    assert [row["seed 1"], row["seed 2"], row["seed 3"]] == pytest.approx(
        [demo_db.scores[(key, "topic", "est_Latn")][s] for s in (1, 2, 3)])
    bench = frame(at, "latency_p50_ms").value
    assert set(bench["batch_size"]) == {1, 8}
    assert [c.value for c in at.code] == [f"harness export {key} --to exports/e5s-est-d6v10k --db {demo_db.path}"]


def test_model_page_lists_failed_runs(demo_db, monkeypatch):
    at = open_app(demo_db.path, monkeypatch, view="Model")
    at.selectbox(key="model_page_key").set_value(TEACHER).run()
    failed = frame(at, "error").value
    assert set(failed["status"]) == {"failed", "running"}
    assert "out of memory" in failed.loc[failed["status"] == "failed", "error"].iloc[0]


# -- empty and partial databases ----------------------------------------------------------------
def _problem_text(at) -> str:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.tabs, "a database with nothing to show must not render the views"
    return messages(at)


def test_missing_file_says_what_to_run(tmp_path, monkeypatch):
    at = open_app(tmp_path / "nope.duckdb", monkeypatch)
    text = _problem_text(at)
    assert "No results database" in text and dbstate.EVAL_CMD in text


def test_database_without_runs_says_what_to_run(tmp_path, monkeypatch):
    db = tmp_path / "empty.duckdb"
    Store(db).init()
    text = _problem_text(open_app(db, monkeypatch))
    assert "No finished runs" in text and dbstate.EVAL_CMD in text


def test_only_running_and_failed_runs(tmp_path, monkeypatch):
    db = tmp_path / "running.duckdb"
    store = Store(db).init()
    store.start_run(RunInfo(key=RunKey("t", "topic", "mlt_Latn", 1, "p"), dataset="d",
                            derived=False, derivation=None))
    text = _problem_text(open_app(db, monkeypatch))
    assert "No finished runs" in text and "1 running" in text


def test_duckdb_file_without_tables(tmp_path, monkeypatch):
    db = tmp_path / "other.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE something (x INTEGER)")
    con.close()
    text = _problem_text(open_app(db, monkeypatch))
    assert "without the harness tables" in text and dbstate.EVAL_CMD in text


def test_a_file_from_an_older_version_says_how_to_upgrade(demo_db, tmp_path, monkeypatch):
    db = tmp_path / "old.duckdb"
    db.write_bytes(demo_db.path.read_bytes())
    with Store(db).transaction() as con:     # v_relative as it was before its paired spread
        con.execute("CREATE OR REPLACE VIEW v_relative AS SELECT * EXCLUDE (relative_std, "
                    "paired_seeds) FROM v_relative")
    text = _problem_text(open_app(db, monkeypatch))
    assert "older version of the harness" in text and "--upgrade" in text


def test_file_that_is_not_duckdb(tmp_path, monkeypatch):
    db = tmp_path / "notes.duckdb"
    db.write_text("not a database")
    text = _problem_text(open_app(db, monkeypatch))
    assert "is not a DuckDB database" in text and "left unchanged" in text


def _teacher_only_db(path: Path) -> Path:
    store = Store(path).init()
    store.upsert_model(ModelRecord(model_key="t", name="teacher-t", kind="teacher", source="x",
                                   teacher_key="t", params_total=100, params_embedding=60,
                                   params_non_embedding=40, teacher_data="cc100"))
    for seed in (1, 2):
        key = RunKey("t", "topic", "swh_Latn", seed, "p")
        store.start_run(RunInfo(key=key, dataset="d", derived=False, derivation=None))
        store.finish_run(key, RunResult([Score("test", "accuracy", 0.5 + seed / 100, True)],
                                        1, 1, 1, 1, 0.0, 0.0))
    return path


def test_teachers_only_no_benchmarks_no_languages(tmp_path, monkeypatch):
    db = _teacher_only_db(tmp_path / "teachers.duckdb")
    at = open_app(db, monkeypatch)
    table = frame(at, "Model").value
    assert list(table["Model"]) == ["teacher-t"] and table["topic"].iloc[0] == pytest.approx(0.515)
    assert "p50 (ms)" not in table
    text = messages(at)
    assert dbstate.NO_COMPRESSED in text and dbstate.NO_BENCHMARKS in text

    show(at, "Trade-offs")
    text = messages(at)
    assert dbstate.NO_COMPRESSED in text and dbstate.NO_BENCHMARKS in text
    assert len(charts(at)) == 1         # the size/score chart still shows the teacher

    show(at, "Degradation vs teacher data")
    assert dbstate.NO_COMPRESSED in messages(at)
    show(at, "Model")
    assert dbstate.NO_BENCHMARKS in messages(at)


def test_empty_languages_table(demo_db, tmp_path, monkeypatch):
    db = tmp_path / "nolang.duckdb"
    db.write_bytes(demo_db.path.read_bytes())
    with Store(db).transaction() as con:
        con.execute("DELETE FROM languages")
    at = open_app(db, monkeypatch, view="Degradation vs teacher data")
    assert dbstate.NO_LANGUAGES in messages(at)
    show(at, "Leaderboard")
    assert len(frame(at, "Model").value) > 0


def test_no_benchmarks(demo_db, tmp_path, monkeypatch):
    db = tmp_path / "nobench.duckdb"
    db.write_bytes(demo_db.path.read_bytes())
    with Store(db).transaction() as con:
        con.execute("DELETE FROM benchmarks")
    at = open_app(db, monkeypatch)
    assert "p50 (ms)" not in frame(at, "Model").value
    assert dbstate.NO_BENCHMARKS in messages(at)
    assert at.selectbox.len == 0 or "bench_shape" not in [s.key for s in at.selectbox]
    show(at, "Trade-offs")
    assert dbstate.NO_BENCHMARKS in messages(at) and len(charts(at)) == 2


# -- concurrency: read-only, short-lived, fresh after a write ------------------------------------
def test_a_new_result_shows_on_the_next_rerun(tmp_path, monkeypatch):
    db = _teacher_only_db(tmp_path / "live.duckdb")
    at = open_app(db, monkeypatch)
    assert list(frame(at, "Model").value["Language"]) == ["swh_Latn"]
    # the app holds no connection between reruns, so a writer gets the file at once
    store = Store(db, lock_timeout_s=0)
    key = RunKey("t", "topic", "mlt_Latn", 1, "p")
    store.start_run(RunInfo(key=key, dataset="d", derived=False, derivation=None))
    store.finish_run(key, RunResult([Score("test", "accuracy", 0.7, True)], 1, 1, 1, 1, 0.0, 0.0))
    at.run()
    assert sorted(frame(at, "Model").value["Language"]) == ["mlt_Latn", "swh_Latn"]


WRITER = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("locked", flush=True)
sys.stdin.readline()
con.close()
"""


def test_locked_database_shows_a_message_then_recovers(demo_db, tmp_path, monkeypatch):
    db = tmp_path / "locked.duckdb"
    db.write_bytes(demo_db.path.read_bytes())
    monkeypatch.setattr(queries, "LOCK_TIMEOUT_S", 0.3)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "locked"
        at = open_app(db, monkeypatch)
        text = _problem_text(at)
        assert "locked by a process writing results" in text
    finally:
        writer.communicate("\n", timeout=30)
    at.run()
    assert not at.exception and len(frame(at, "Model").value) > 0


def test_a_single_seed_database_renders_every_view(tmp_path, monkeypatch):
    """One seed (the default example) gives no standard deviation at all: nothing may break."""
    from lb_demo_db import build_demo_db

    one = build_demo_db(tmp_path / "one-seed.duckdb", seeds=(7,))
    at = open_app(one.path, monkeypatch)
    for view in VIEWS:
        show(at, view)
    shown = display_values(frame(show(at, "Leaderboard"), "topic"))
    cells = [c for c in shown["topic"] if isinstance(c, str) and c]
    assert cells and all("(n=1)" in c and "±" not in c for c in cells), cells[:5]


def test_the_protocol_picker_names_teacher_label_families_by_their_settings(tmp_path, monkeypatch):
    """Plain fine-tuning and two teacher-label families (2,000 and 6,000 lines) of one grid's tasks
    must be told apart in the picker by what they are, not by a hash alone."""
    store = Store(tmp_path / "families.duckdb").init()
    store.upsert_model(ModelRecord("teach", "teach", "teacher", "x", "teach", 100, 50, 50, teacher_data="cc100"))
    labels = {"lines": 2000, "weight": 1.0, "temperature": 2.0}
    for family, spec in (("plain", {"precision": "bf16"}),
                         ("tl-two", {"precision": "bf16", "teacher_labels": labels}),
                         ("tl-six", {"precision": "bf16", "teacher_labels": {**labels, "lines": 6000}})):
        store.register_protocol(family, [("topic", f"h-{family}", "standard", spec)])
        key = RunKey("teach", "topic", "mlt_Latn", 1, f"h-{family}")
        store.start_run(RunInfo(key, "d", False, None))
        store.finish_run(key, RunResult([Score("test", "accuracy", 0.8, True)], 1, 1, 1, 1, 0.0, 0.0))
    picker = open_app(store.path, monkeypatch).selectbox(key="protocol")
    shown = {option.split(" · ")[1].split()[0]: option.split(" · ")[0] for option in picker.options}
    assert shown == {"plain": "standard/bf16",
                     "tl-two": "standard/bf16+teacher labels(2000 lines, w 1.0, T 2.0)",
                     "tl-six": "standard/bf16+teacher labels(6000 lines, w 1.0, T 2.0)"}


def test_a_protocol_family_shows_every_task_with_its_own_settings(tmp_path, monkeypatch):
    """Token tasks resolve to other settings (another hash) than sequence tasks within one grid's
    protocol: the leaderboard must show both under the one family, never one task alone."""
    store = Store(tmp_path / "family.duckdb").init()
    for key, kind, total in (("teach", "teacher", 100), ("small", "compressed", 10)):
        store.upsert_model(ModelRecord(key, key, kind, "x", "teach", total, total // 2, total // 2,
                                       language="mlt_Latn" if kind == "compressed" else None,
                                       teacher_data="cc100"))
    hashes = {"topic": "h-topic", "pos": "h-pos"}
    store.register_protocol("fam", [(t, h, "quick", {}) for t, h in hashes.items()])
    values = {("teach", "topic"): 0.8, ("teach", "pos"): 0.9, ("small", "topic"): 0.6, ("small", "pos"): 0.81}
    for (model, task), value in values.items():
        key = RunKey(model, task, "mlt_Latn", 1, hashes[task])
        store.start_run(RunInfo(key, "d", False, None))
        metric = "accuracy" if task == "topic" else "upos_accuracy"
        store.finish_run(key, RunResult([Score("test", metric, value, True)], 1, 1, 1, 1, 0.0, 0.0))
    at = open_app(store.path, monkeypatch)
    table = frame(show(at, "Leaderboard"), "Model").value
    small = table[table["Model"] == "small"].iloc[0]
    assert small["topic"] == pytest.approx(0.6) and small["pos"] == pytest.approx(0.81)
    assert small["Rel. score"] == pytest.approx((0.6 / 0.8 + 0.81 / 0.9) / 2 * 100)
