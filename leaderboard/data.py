"""The app's cached access to the named queries.

Every cached call is keyed on the database path and a stamp of the file (mtime and size of the
file and of its write-ahead log), so a result written by a running grid changes the key and the
next page load reads it, while reruns in between (every widget click) read from the cache.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from leaderboard import budget, dbstate, queries, tables
from leaderboard.dbstate import DbState

Stamp = tuple[int, int, int, int]


def db_stamp(db: str | Path) -> Stamp | None:
    """What changes when anything is written: the file's and its WAL's mtime and size."""
    try:
        st_db = os.stat(db)
    except OSError:
        return None
    try:
        st_wal = os.stat(f"{db}.wal")
        wal = (st_wal.st_mtime_ns, st_wal.st_size)
    except OSError:
        wal = (0, 0)
    return (st_db.st_mtime_ns, st_db.st_size, *wal)


class _Uncacheable(Exception):
    def __init__(self, state: DbState):
        self.state = state


@st.cache_data(show_spinner=False, max_entries=32)
def _inspect_cached(db: str, stamp: Stamp | None) -> DbState:
    state = dbstate.inspect(db)
    if state.kind == "busy":       # a transient state: never cache it
        raise _Uncacheable(state)
    return state


def inspect(db: str) -> DbState:
    try:
        return _inspect_cached(db, db_stamp(db))
    except _Uncacheable as exc:
        return exc.state


@st.cache_data(show_spinner="Reading results…", max_entries=256)
def _load(name: str, db: str, stamp: Stamp | None, params: tuple[Any, ...]) -> pd.DataFrame:
    return queries.NAMED[name](db, *params)


def load(name: str, db: str, *params: Any) -> pd.DataFrame:
    """The named query's result, cached until the database file changes."""
    return _load(name, db, db_stamp(db), tuple(params))


@st.cache_data(show_spinner=False, max_entries=128)
def _leaderboard(db: str, stamp: Stamp | None, protocol: str, filters: tables.Filters,
                 shape: tuple | None) -> pd.DataFrame:
    scores = tables.apply_filters(load("main_scores", db, protocol), filters)
    relative = tables.apply_filters(load("relative_scores", db, protocol), filters)
    bench = load("benchmarks_at", db, *shape) if shape else None
    return tables.build_leaderboard(scores, relative, bench)


def leaderboard(db: str, protocol: str, filters: tables.Filters,
                shape: tuple | None) -> pd.DataFrame:
    return _leaderboard(db, db_stamp(db), protocol, filters, shape)


@st.cache_data(show_spinner=False, max_entries=16)
def _distill_budgets(db: str, stamp: Stamp | None) -> pd.DataFrame:
    # manifests hold loss curves: keep only the small per-model budget frame in the cache
    return budget.model_budgets(queries.compressed_manifests(db))


def distill_budgets(db: str) -> pd.DataFrame:
    """Per distilled model: its distillation budget (leaderboard.budget.model_budgets)."""
    return _distill_budgets(db, db_stamp(db))
