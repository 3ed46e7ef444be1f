"""leaderboard/budget.py: distillation budgets from manifests, joined with the relative scores,
on a database written through harness.store.Store (tests/leaderboard/lb_budget_db.py)."""
from __future__ import annotations

import json
import math
import statistics

import pandas as pd
import pytest

from lb_budget_db import MODELS, NOT_DISTILLED, OTHER_PROTOCOL, PROTOCOL, TEACHER, build_budget_db
from leaderboard import budget, queries


@pytest.fixture(scope="module")
def budget_db(tmp_path_factory):
    return build_budget_db(tmp_path_factory.mktemp("budget") / "harness.duckdb")


@pytest.fixture(scope="module")
def budgets(budget_db):
    return budget.model_budgets(queries.compressed_manifests(budget_db.path)).set_index("model_key")


def points_of(db, protocol=PROTOCOL):
    return budget.budget_points(budget.model_budgets(queries.compressed_manifests(db.path)),
                                queries.relative_scores(db.path, protocol),
                                queries.main_scores(db.path, protocol))


def _distill_entries(chain):
    return [e for e in chain or [] if e["stage"] == "distill"]


def _reported(entries, key):
    return [e["report"][key] for e in entries if key in e.get("report", {})]


# -- budgets -------------------------------------------------------------------------------------
def test_budget_is_the_sum_of_the_tokens_of_every_distillation_stage(budget_db, budgets):
    for key, chain in budget_db.chains.items():
        entries = _distill_entries(chain)
        if not entries:
            continue
        row = budgets.loc[key]
        tokens = _reported(entries, "tokens_seen")
        assert row["distill_stages"] == len(entries), key
        assert row["tokens_stages"] == len(tokens), key
        if tokens:
            assert row["tokens"] == sum(tokens), key
        else:
            assert math.isnan(row["tokens"]), key
        passes = _reported(entries, "epochs")
        assert (row["passes"] == pytest.approx(sum(passes))) if passes else math.isnan(row["passes"])
        # wall seconds: the report's, else the stage's own wall time
        walls = [e.get("report", {}).get("wall_seconds", e.get("wall_time_s")) for e in entries]
        walls = [w for w in walls if w is not None]
        assert (row["wall_seconds"] == pytest.approx(sum(walls))) if walls \
            else math.isnan(row["wall_seconds"])
    # a two-stage model counts both stages: more than either alone
    two = _distill_entries(budget_db.chains["mlt-L4F-t"])
    assert budgets.loc["mlt-L4F-t", "tokens"] > max(_reported(two, "tokens_seen"))
    # an old manifest with one stage short of tokens_seen: the sum of what is there, flagged
    partial = budget.budget_points(budgets.reset_index(), *[
        q(budget_db.path, PROTOCOL) for q in (queries.relative_scores, queries.main_scores)])
    row = partial[partial["model_key"] == "mlt-L4F-partial"].iloc[0]
    assert row["tokens_stages"] < row["distill_stages"] and not row["budget_complete"]
    assert partial.loc[partial["model_key"] == "mlt-L4F-t", "budget_complete"].all()


def test_objective_used_is_the_reports_and_auto_is_resolved(budget_db, budgets):
    for key, chain in budget_db.chains.items():
        entries = _distill_entries(chain)
        if not entries:
            continue
        used = _reported(entries, "loss")
        asked = [e["config"]["settings"].get("loss", "auto") for e in entries]
        if len(used) == len(entries):
            assert budgets.loc[key, "objective"] == " → ".join(dict.fromkeys(used)), key
        assert budgets.loc[key, "requested"] == " → ".join(dict.fromkeys(asked)), key
        assert "auto" not in budgets.loc[key, "objective"], key
    # asked for auto (explicitly or by leaving it out): the report says what ran
    for key in ("mlt-L6-a400k", "mlt-L6-a1m6"):
        assert budgets.loc[key, ["requested", "objective"]].tolist() == ["auto", "minilm_hidden"]
    # no report: what was asked for, unless that was auto; then nothing can say
    assert budgets.loc["mlt-L6-old", "objective"] == "tinybert"
    assert budgets.loc["mlt-L6-oldauto", "objective"] == budget.UNKNOWN
    # a chain that changes objective between its stages says both, in order
    assert budgets.loc["mlt-L4F-mix", "objective"] == "hidden_mse → tinybert"
    # the report is what ran: it wins over the settings whenever it says
    stage = budget.stage_budget({"stage": "distill", "config": {"settings": {"loss": "mlm_kl"}},
                                 "report": {"loss": "hidden_mse"}})
    assert (stage["requested"], stage["objective"]) == ("mlm_kl", "hidden_mse")
    assert budgets.loc["mlt-L6-a1m6", "precision"] == "fp32"
    assert pd.isna(budgets.loc["mlt-L6-oldauto", "precision"])


def test_models_without_a_distillation_stage_are_not_in_the_view(budget_db, budgets):
    distilled = {k for k, chain in budget_db.chains.items() if _distill_entries(chain)}
    assert set(budgets.index) == distilled
    assert not set(NOT_DISTILLED) & set(budgets.index)
    points = points_of(budget_db)
    assert set(points["model_key"]) == distilled and TEACHER not in set(points["model_key"])
    # every model that has scores shows on each of its tasks
    expected = {(k, t, lang) for (k, t, lang) in budget_db.scores if k in distilled}
    assert set(zip(points["model_key"], points["task"], points["language"])) == expected


# -- the score axis ------------------------------------------------------------------------------
def test_relative_score_is_the_one_the_leaderboard_query_gives(budget_db):
    points = points_of(budget_db)
    rel = queries.relative_scores(budget_db.path, PROTOCOL).set_index(
        ["model_key", "task", "language"])
    assert len(points) > 0
    for row in points.itertuples():
        assert row.relative_score == rel.loc[(row.model_key, row.task, row.language),
                                             "relative_score"]
        # and by hand: the model's mean over its seeds / the teacher's mean on the same seeds
        mine = budget_db.scores[(row.model_key, row.task, row.language)]
        teacher = budget_db.scores[(TEACHER, row.task, row.language)]
        teacher_mean = statistics.mean(teacher[s] for s in mine)
        assert row.relative_score == pytest.approx(statistics.mean(mine.values()) / teacher_mean,
                                                   rel=1e-12)
        # the spread is paired: over seeds of score / teacher's score on the same seed
        assert row.relative_std == pytest.approx(statistics.stdev(v / teacher[s] for s, v in mine.items()),
                                                 rel=1e-9)
        assert row.n_seeds == len(mine) and row.teacher_seeds_matched
    # the two-seed point is compared with the teacher on those two seeds, not all three
    swh = points[points["model_key"] == "swh-L6-h200k"].iloc[0]
    assert swh["n_seeds"] == 2
    teacher = budget_db.scores[(TEACHER, "topic", "swh_Latn")]
    all_seeds = statistics.mean(budget_db.scores[("swh-L6-h200k", "topic", "swh_Latn")].values()) \
        / statistics.mean(teacher.values())
    assert swh["relative_score"] != pytest.approx(all_seeds, rel=1e-9)


def test_the_protocol_family_decides_which_scores_are_used(budget_db):
    other = points_of(budget_db, OTHER_PROTOCOL)
    assert list(other["model_key"]) == ["mlt-L6-h100k"]
    assert other["relative_score"].iloc[0] == pytest.approx(0.9 / 0.2)
    mine = points_of(budget_db)
    assert mine.loc[mine["model_key"] == "mlt-L6-h100k", "relative_score"].max() < 1.5


# -- curves --------------------------------------------------------------------------------------
def test_a_curve_is_one_shape_and_objective_at_several_budgets(budget_db):
    points = points_of(budget_db)
    identity = ["teacher_key", "language", "task", "stage_chain", "params_total", "objective"]
    # one curve per (shape, objective), and every point of a curve shares them
    assert points["curve"].nunique() == len(points.drop_duplicates(identity))
    assert (points.groupby("curve")[identity].nunique() == 1).all().all()
    hidden = points[(points["task"] == "topic") & points["model_key"].str.startswith("mlt-L6-h")]
    assert hidden["curve"].nunique() == 1 and len(hidden) == 3
    assert list(hidden["tokens"]) == sorted(hidden["tokens"])       # drawn along the budget
    auto = points[(points["task"] == "topic") & points["model_key"].str.startswith("mlt-L6-a")]
    assert auto["curve"].nunique() == 1 and set(auto["curve"]).isdisjoint(hidden["curve"])
    pos = points[(points["task"] == "pos") & points["model_key"].str.startswith("mlt-L6-h")]
    assert set(pos["curve"]).isdisjoint(hidden["curve"])


# -- reading manifests ---------------------------------------------------------------------------
def test_manifests_are_read_as_text_or_dict_and_odd_ones_give_nothing():
    chain = MODELS["mlt-L4F-mix"][2]
    manifest = {"chain": chain}
    assert budget.distill_stages(manifest) == budget.distill_stages(json.dumps(manifest))
    assert len(budget.distill_stages(manifest)) == 2
    for odd in (None, "", "not json", "[1, 2]", {"chain": "distill"}, {"stages": ["distill"]},
                {"chain": [None, 3, {"stage": "vocab"}]}):
        assert budget.distill_stages(odd) == [] and budget.model_budget(odd) is None
    # values of the wrong type are not counted
    odd_report = {"chain": [{"stage": "distill", "report": {"tokens_seen": "many", "loss": 3,
                                                            "epochs": True}}]}
    b = budget.model_budget(odd_report)
    assert b["distill_stages"] == 1 and b["tokens_stages"] == 0 and math.isnan(b["tokens"])
    assert math.isnan(b["passes"]) and b["objective"] == budget.UNKNOWN
    assert budget.model_budgets(pd.DataFrame({"model_key": [], "manifest": []})).empty
