"""The leaderboard app: `streamlit run leaderboard/app.py -- --db results/harness.duckdb`
(or `harness leaderboard`)."""
from __future__ import annotations

import sys
from pathlib import Path

# `streamlit run` puts this file's folder on sys.path, not the project root.
_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import duckdb  # noqa: E402
import streamlit as st  # noqa: E402

from core.errors import UserError  # noqa: E402
from leaderboard import data  # noqa: E402
from leaderboard.launch import resolve_db_path  # noqa: E402
from leaderboard.views import (board, budget_view, degradation_view, model_page, sidebar,  # noqa: E402
                               tradeoffs)

TITLE = "Compressed multilingual encoders: leaderboard"
# less empty space above the title; a constant, no user data in it
CSS = "<style>[data-testid='stMainBlockContainer'] {padding-top: 2.5rem;}</style>"
VIEWS = {
    "Leaderboard": board.render,
    "Trade-offs": tradeoffs.render,
    "Degradation vs teacher data": degradation_view.render,
    "Distillation budget": budget_view.render,
    "Model": model_page.render,
}


def main() -> None:
    st.set_page_config(page_title="Leaderboard · compressed encoders", layout="wide")
    st.markdown(CSS, unsafe_allow_html=True)
    st.title(TITLE)
    db = str(resolve_db_path())
    state = data.inspect(db)
    if not state.ok:
        (st.warning if state.kind in ("busy", "no_runs") else st.info)(state.problem)
        return
    try:
        ctx = sidebar.render(db, state)
        tabs = st.tabs(list(VIEWS), key="view", on_change="rerun")
        for tab, render in zip(tabs, VIEWS.values()):
            with tab:
                if tab.open:        # only the open tab's view runs
                    render(ctx)
    except UserError as exc:        # e.g. the file got locked between two queries
        st.warning(str(exc))
    except duckdb.Error as exc:
        st.error(f"Could not read `{db}`: {str(exc).splitlines()[0]}")


main()
