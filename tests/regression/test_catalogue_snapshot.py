"""The counts of the shipped data catalogue, pinned in one place: snapshots/catalogue_counts.json.

The tests in tests/tasks check properties of whatever the catalogue holds (every language has a
name and codes, every file a checksum and a source, every task-language pair has its files), so
adding a language or a dataset breaks none of them; it changes this snapshot only. After adding
data on purpose, accept the new counts with:

    UPDATE_SNAPSHOTS=1 pytest tests/regression/test_catalogue_snapshot.py

and commit the diff of snapshots/catalogue_counts.json with the data.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

SNAPSHOT = Path(__file__).parent / "snapshots" / "catalogue_counts.json"
UPDATE = os.environ.get("UPDATE_SNAPSHOTS", "") not in ("", "0", "false", "no")


def catalogue_counts() -> dict:
    from tasks.catalogue import load_catalogue
    from tasks.languages import language_codes
    from tasks.registry import get_task, task_names
    cat = load_catalogue()
    pairs = [(t, lang) for t in task_names() for lang in get_task(t).languages()]
    return {
        "languages": language_codes(),
        "files": len(cat.files),
        "files_per_dataset": dict(sorted(Counter(e.dataset for e in cat.files).items())),
        "raw_files": sum(e.task == "raw" for e in cat.files),
        "non_commercial_datasets": sorted(k for k, v in cat.datasets.items() if v.non_commercial),
        "task_language_pairs": len(pairs),
        "primary_dataset": {t: {lang: get_task(t).dataset_for(lang) for lang in get_task(t).languages()}
                            for t in task_names()},
        "derived_pairs": sorted(f"{t}/{lang}" for t, lang in pairs if get_task(t).source_for(lang).derivation),
    }


def test_catalogue_counts_match_the_snapshot():
    got = catalogue_counts()
    if UPDATE:
        SNAPSHOT.write_text(json.dumps(got, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    assert SNAPSHOT.exists(), f"no {SNAPSHOT}; write it with UPDATE_SNAPSHOTS=1"
    want = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    assert got == want, ("the shipped catalogue changed; if on purpose: "
                         "UPDATE_SNAPSHOTS=1 pytest tests/regression/test_catalogue_snapshot.py")
