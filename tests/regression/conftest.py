"""Regression snapshots: `UPDATE_SNAPSHOTS=1 pytest tests/regression` rewrites them deliberately."""
from __future__ import annotations

import pytest

from compression.tiny import one_thread


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield
