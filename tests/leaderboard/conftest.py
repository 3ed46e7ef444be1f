"""Fixtures of the leaderboard tests: a results database written through harness.store.Store."""
from __future__ import annotations

import pytest

from lb_demo_db import DemoDB, build_demo_db


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory) -> DemoDB:
    return build_demo_db(tmp_path_factory.mktemp("lb") / "harness.duckdb")
