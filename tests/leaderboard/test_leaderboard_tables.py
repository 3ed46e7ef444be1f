"""Shaping the leaderboard table: buckets, score text, filters, one row per model and language."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from leaderboard import tables
from leaderboard.tables import Filters


@pytest.mark.parametrize("params,bucket", [
    (9_999_999, "< 10M"), (10_000_000, "10-30M"), (29_999_999, "10-30M"), (99e6, "30-100M"),
    (117_653_760, "100-300M"), (300e6, ">= 300M"), (None, "unknown"), (math.nan, "unknown")])
def test_size_bucket(params, bucket):
    assert tables.size_bucket(params) == bucket


def test_format_score():
    assert tables.format_score(0.81234, 0.0101, 3, False) == "0.812 ± 0.010 (n=3)"
    assert tables.format_score(0.8, math.nan, 1, True) == "0.800 (n=1) †"
    assert tables.format_score(math.nan, math.nan, None, None) == ""


def test_ordered_tasks_accepts_any_iterable():
    assert tables.ordered_tasks(t for t in ["pos", "custom", "topic", "ner"]) == [
        "topic", "ner", "pos", "custom"]


def _scores():
    rows = []
    for key, kind, chain, params, ratio, values in [
            ("T", "teacher", "", 100e6, 1.0, {"topic": 0.8, "ner": 0.6}),
            ("C", "compressed", "vocab(5000)", 20e6, 5.0, {"topic": 0.72, "ner": 0.3})]:
        for task, v in values.items():
            rows.append({"model_key": key, "model": key.lower(), "kind": kind, "teacher_key": "T",
                         "teacher": "t", "language": "swh_Latn", "stage_chain": chain,
                         "params_total": params, "compression_ratio": ratio, "task": task,
                         "metric": "m", "derived": task == "ner", "mean": v, "std": 0.01, "n": 3})
    return pd.DataFrame(rows)


def _relative(scores):
    s = scores.set_index(["model_key", "task"])["mean"]
    return pd.DataFrame([{"model_key": "C", "language": "swh_Latn", "task": t,
                          "derived": t == "ner", "relative_score": s[("C", t)] / s[("T", t)]}
                         for t in ("topic", "ner")])


def test_build_leaderboard_one_row_per_model_and_language():
    scores = _scores()
    table = tables.build_leaderboard(scores, _relative(scores))
    assert list(table["model"]) == ["t", "c"]           # teacher first within a language
    c = table.set_index("model_key").loc["C"]
    assert c["topic"] == 0.72 and c["ner_n"] == 3 and bool(c["ner_derived"])
    assert c["rel_score"] == pytest.approx((0.72 / 0.8 + 0.3 / 0.6) / 2)
    assert bool(c["rel_derived"]) and c["size_bucket"] == "10-30M"
    assert table.set_index("model_key").loc["T", "rel_score"] == 1.0
    assert tables.table_tasks(table) == ["topic", "ner"]


def test_relative_score_only_over_the_tasks_shown():
    scores = tables.apply_filters(_scores(), Filters(tasks=("topic",)))
    table = tables.build_leaderboard(scores, tables.apply_filters(_relative(_scores()),
                                                                  Filters(tasks=("topic",))))
    assert table.set_index("model_key").loc["C", "rel_score"] == pytest.approx(0.72 / 0.8)
    assert "ner" not in table


def test_filters():
    scores = _scores()
    keys = lambda f: set(tables.apply_filters(scores, f)["model_key"])  # noqa: E731
    assert keys(Filters(chains=(tables.TEACHER_CHAIN,))) == {"T"}
    assert keys(Filters(size_buckets=("10-30M",))) == {"C"}
    assert set(tables.apply_filters(scores, Filters(include_derived=False))["task"]) == {"topic"}
    assert tables.apply_filters(scores, Filters(languages=("mlt_Latn",))).empty
    assert tables.apply_filters(scores, Filters(teachers=("T",))).shape == scores.shape


def test_empty_scores_give_an_empty_table():
    assert tables.build_leaderboard(_scores().iloc[0:0], _relative(_scores()).iloc[0:0]).empty
