"""Adding a language (languages.yaml, catalogue entries, task YAML lines; no Python) breaks no test
in tests/tasks: they check properties of the catalogue, and its counts live in one snapshot."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tasks.conftest import ADDED_LANGUAGE, ADDED_LANGUAGE_ENV

ROOT = Path(__file__).resolve().parents[2]


def test_the_added_language_is_seen(monkeypatch, tmp_path):
    from tasks import catalogue, languages
    from tasks.registry import get_task
    from tests.tasks.conftest import install_added_language
    install_added_language(tmp_path, monkeypatch)
    assert ADDED_LANGUAGE in languages.language_codes()
    assert ADDED_LANGUAGE in get_task("topic").languages() and ADDED_LANGUAGE in get_task("pos").languages()
    assert len(catalogue.entries_for(language=ADDED_LANGUAGE)) == 6


@pytest.mark.skipif(bool(os.environ.get(ADDED_LANGUAGE_ENV)), reason="already inside the added-language run")
def test_tasks_tests_pass_with_an_added_language():
    env = {**os.environ, ADDED_LANGUAGE_ENV: "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", str(ROOT / "tests" / "tasks"),
         "-m", "not real_data and not real_model and not browser"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:]
