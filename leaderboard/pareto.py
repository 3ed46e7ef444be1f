"""The size/score Pareto front: the points no other point beats on both axes."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd


def front_mask(size: Sequence[float], score: Sequence[float]) -> np.ndarray:
    """True for points not dominated (another point with size <= and score >=, one strictly).

    Of exact duplicates only the first is kept, so the drawn front has no zero-length steps.
    """
    size = np.asarray(size, dtype=float)
    score = np.asarray(score, dtype=float)
    mask = np.zeros(len(size), dtype=bool)
    best = -np.inf
    # smallest first; at equal size the best score first, so its twins count as dominated
    for i in np.lexsort((-score, size)):
        if np.isnan(size[i]) or np.isnan(score[i]):
            continue
        if score[i] > best:
            mask[i] = True
            best = score[i]
    return mask


def mark_front(df: pd.DataFrame, size: str, score: str, by: Sequence[str] = ()) -> pd.Series:
    """Boolean Series: is each row on the front of its group (`by` columns)?"""
    out = pd.Series(False, index=df.index)
    groups = df.groupby(list(by), sort=False, dropna=False) if by else [((), df)]
    for _, g in groups:
        out.loc[g.index] = front_mask(g[size].to_numpy(), g[score].to_numpy())
    return out
