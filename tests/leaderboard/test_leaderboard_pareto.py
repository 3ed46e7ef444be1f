"""The Pareto front, on points checked by hand."""
from __future__ import annotations

import math

import pandas as pd

from leaderboard.pareto import front_mask, mark_front


def test_front_by_hand():
    size = [10, 20, 20, 30, 40, 5]
    score = [0.5, 0.7, 0.6, 0.65, 0.9, 0.4]
    # 20/0.6 loses to 20/0.7 (same size, better), 30/0.65 to 20/0.7 (smaller and better)
    assert front_mask(size, score).tolist() == [True, True, False, False, True, True]


def test_duplicates_and_missing_values():
    assert front_mask([10, 10, 20], [0.5, 0.5, 0.4]).tolist() == [True, False, False]
    assert front_mask([10, math.nan, 20], [0.5, 0.9, 0.6]).tolist() == [True, False, True]


def test_front_per_group():
    df = pd.DataFrame({"lang": ["a", "a", "b", "b"], "p": [1, 2, 1, 2], "s": [0.9, 0.8, 0.1, 0.2]})
    assert mark_front(df, "p", "s", by=["lang"]).tolist() == [True, False, True, True]
    assert mark_front(df, "p", "s").tolist() == [True, False, False, False]
