"""Every grid a user starts from (examples/) and every study grid (studies/*/grid.yaml) is a valid
grid file with the header that says what it shows, and examples/ stays a short list."""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
STUDIES = sorted((ROOT / "studies").glob("*/*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES + STUDIES, ids=lambda p: str(p.relative_to(ROOT)))
def test_grid_loads_and_says_what_it_is(path):
    from harness.grid import load_grid

    grid = load_grid(path)
    assert grid.tasks and grid.languages
    assert path.read_text(encoding="utf-8").startswith("#"), "a grid starts with a comment saying what it shows"


def test_examples_are_few_and_studies_have_a_readme():
    assert 1 <= len(EXAMPLES) <= 6, [p.name for p in EXAMPLES]
    assert STUDIES and all((p.parent / "README.md").is_file() for p in STUDIES)
    assert not any("issue" in p.read_text(encoding="utf-8").lower() for p in EXAMPLES)
