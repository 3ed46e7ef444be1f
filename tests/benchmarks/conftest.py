"""Shared inputs of the speed-regression suite (pytest-benchmark): tiny teachers, text, rounds.

The default `pytest` run skips every test here (pyproject: addopts = --benchmark-skip); run them
with `pytest tests/benchmarks --benchmark-only` (see docs/benchmarks.md).
"""
from __future__ import annotations

from pathlib import Path

import pytest

# Tiny but not trivial: big enough that a stage's own work, not Python overhead, dominates.
TEACHER_SHAPE = dict(hidden=64, layers=4, heads=4, ffn=256)


@pytest.fixture
def rounds(request: pytest.FixtureRequest) -> int:
    """Rounds for `benchmark.pedantic` cases: the command line's --benchmark-min-rounds, so a CI
    smoke run (--benchmark-min-rounds=1) does each slow case once."""
    return max(1, int(request.config.getoption("benchmark_min_rounds", 5) or 1))


class FreshDirs:
    """A new empty output directory per call: a stage must never find its previous output."""

    def __init__(self, root: Path):
        self.root, self.n = root, 0

    def __call__(self) -> Path:
        self.n += 1
        return self.root / f"out-{self.n}"


@pytest.fixture(autouse=True)
def _quiet_transformers():
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()


@pytest.fixture(scope="session")
def texts() -> list[str]:
    tiny = pytest.importorskip("compression.tiny")
    return tiny.tiny_corpus("aa", 2000, seed=1)


@pytest.fixture(scope="session", params=["xlmr", "bert"])
def teacher(request, tmp_path_factory) -> Path:
    """A tiny MLM teacher of each tokenizer family (Unigram, WordPiece)."""
    tiny = pytest.importorskip("compression.tiny")
    return tiny.write_tiny_teacher(request.param, tmp_path_factory.mktemp(f"teacher-{request.param}"),
                                   **TEACHER_SHAPE)


@pytest.fixture
def fresh_dir(tmp_path) -> FreshDirs:
    return FreshDirs(tmp_path)
