"""Per-language drops and the fit over the languages the teacher saw."""
from __future__ import annotations

import pandas as pd
import pytest

from leaderboard.degradation import Selection, default_selection, fit, per_language


def _points():
    rows = []

    def add(model, chain, ratio, lang, task, drop, gib, status="seen", derived=False):
        rows.append({"model_key": model, "model": model, "teacher_key": "T", "stage_chain": chain,
                     "compression_ratio": ratio, "language": lang, "language_name": lang,
                     "task": task, "relative_drop": drop, "teacher_gib": gib,
                     "data_status": status, "derived": derived,
                     "relative_std": 0.01 * len(rows), "paired_seeds": 3})
    add("a1", "A", 3.0, "aaa", "topic", 0.10, 10.0)
    add("a1", "A", 3.0, "aaa", "ner", 0.30, 10.0)
    add("b1", "B", 3.2, "aaa", "topic", 0.40, 10.0)
    add("a2", "A", 3.0, "bbb", "topic", 0.20, 1.0, derived=True)
    add("a3", "A", 3.0, "ccc", "topic", 0.25, 0.5)
    add("a4", "A", 3.0, "mlt", "topic", 0.50, None, status="not seen by teacher")
    add("z9", "Z", 9.0, "ccc", "topic", 0.90, 0.5)
    return pd.DataFrame(rows)


def test_one_recipe_averages_tasks():
    langs = per_language(_points(), Selection("T", chain="A")).set_index("language")
    assert langs.loc["aaa", "relative_drop"] == pytest.approx(0.2)        # (0.1 + 0.3) / 2
    assert langs.loc["aaa", "tasks"] == "ner, topic"
    assert set(langs.index) == {"aaa", "bbb", "ccc", "mlt"}


def test_band_averages_within_each_model_then_over_models():
    langs = per_language(_points(), Selection("T", ratio_range=(2.9, 3.3))).set_index("language")
    # a1 -> 0.2 over its tasks, b1 -> 0.4; the flat mean of the three rows would be 0.267
    assert langs.loc["aaa", "relative_drop"] == pytest.approx(0.3)
    assert langs.loc["aaa", "n_models"] == 2
    assert "ccc" in langs.index and langs.loc["ccc", "relative_drop"] == pytest.approx(0.25)


def test_task_and_derived_selection():
    langs = per_language(_points(), Selection("T", tasks=("topic",), chain="A",
                                              include_derived=False)).set_index("language")
    assert langs.loc["aaa", "relative_drop"] == pytest.approx(0.1)
    assert "bbb" not in langs.index


def test_fit_excludes_unseen_languages_and_needs_three():
    langs = per_language(_points(), Selection("T", chain="A"))
    corr = fit(langs, n_boot=200)
    assert corr is not None and corr.n == 3                 # mlt is not in the fit
    assert fit(langs[langs["language"] != "ccc"]) is None


def test_a_seed_spread_only_where_one_model_on_one_task_makes_the_drop():
    langs = per_language(_points(), Selection("T", chain="A")).set_index("language")
    assert pd.isna(langs.loc["aaa", "paired_std"])          # a1's topic and ner averaged
    assert langs.loc["ccc", "paired_std"] == pytest.approx(0.04)   # a3's one row (the 5th added)
    assert langs.loc["ccc", "paired_seeds"] == 3
    ratio_band = per_language(_points(), Selection("T", tasks=("topic",), ratio_range=(2.9, 3.3)))
    assert pd.isna(ratio_band.set_index("language").loc["aaa", "paired_std"])  # a1 and b1


def test_default_selection_is_the_recipe_with_most_languages():
    points = _points()
    sel = default_selection(points)
    assert (sel.teacher_key, sel.chain, sel.tasks) == ("T", "A", ())
    assert default_selection(points, ("ner",)).chain == "A"
    assert default_selection(points, ("sentiment",)) is None
    # a second teacher with fewer languages is not the default
    other = points.assign(teacher_key="U", stage_chain="Z").iloc[:1]
    assert default_selection(pd.concat([other, points])).teacher_key == "T"
