"""Fixtures for the tasks/ tests: the real data directory (or a skip), a clean task registry, and a
miniature catalogue of small files written by the test."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

FALLBACK_DATA_DIR = Path("/work/shared/data")


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    env = os.environ.get("HARNESS_DATA_DIR")
    if env:
        path = Path(env)
        if not (path / "sib200").is_dir():
            pytest.skip(f"HARNESS_DATA_DIR={env} does not hold the data (no sib200/ in it)")
        return path
    if (FALLBACK_DATA_DIR / "sib200").is_dir():
        return FALLBACK_DATA_DIR
    pytest.skip("real data not available: set HARNESS_DATA_DIR to a copy of the data directory")


@pytest.fixture(autouse=True)
def clean_registry(monkeypatch):
    """Each test sees the shipped tasks and catalogue, whatever the previous test patched."""
    from tasks import catalogue, registry
    monkeypatch.delenv("HARNESS_TASK_DIRS", raising=False)
    monkeypatch.delenv("HARNESS_DATA_MIRROR", raising=False)
    registry._specs.clear()
    registry._extra_dirs.clear()
    catalogue.load_catalogue.cache_clear()
    yield
    registry._specs.clear()
    registry._extra_dirs.clear()
    catalogue.load_catalogue.cache_clear()


class MiniData:
    """A data directory and a catalogue of small files written by the test."""

    def __init__(self, root: Path, monkeypatch):
        self.root = root
        self.data_dir = root / "data"
        self.data_dir.mkdir()
        self.catalogue_file = root / "catalogue.json"
        self.files: list[dict] = []
        self.datasets: dict[str, dict] = {}
        self._monkeypatch = monkeypatch

    def add(self, path: str, content: str | bytes, *, dataset: str, language: str, task: str,
            split: str, license: str = "CC BY 4.0", non_commercial: bool = False) -> dict:
        data = content.encode("utf-8") if isinstance(content, str) else content
        target = self.data_dir / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        derived = path.startswith("raw/")
        entry = {"path": path, "dataset": dataset, "language": language, "task": task, "split": split,
                 "source_repo": "example/repo", "commit": "0" * 40, "source_paths": [path],
                 "license": license, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                 "url": None if derived else f"https://raw.githubusercontent.com/example/repo/{'0' * 40}/{path}",
                 "derived": derived, "git_blob_sha1": None, "counts": {}, "notes": ""}
        self.files.append(entry)
        info = self.datasets.setdefault(dataset, {
            "name": dataset, "license": license, "license_status": "non-commercial" if non_commercial else "open",
            "citation": f"cite {dataset}", "notes": "", "non_commercial": non_commercial,
            "source_repo": "example/repo", "commit": "0" * 40, "languages": []})
        if language not in info["languages"]:
            info["languages"].append(language)
        self._install()
        return entry

    def _install(self) -> None:
        from tasks import catalogue
        self.catalogue_file.write_text(json.dumps({"datasets": self.datasets, "files": self.files}))
        self._monkeypatch.setattr(catalogue, "CATALOGUE_FILE", self.catalogue_file)
        catalogue.load_catalogue.cache_clear()

    def task_dir(self, only: bool = False) -> Path:
        """A directory for task YAMLs written by the test; `only`: hide the shipped tasks."""
        from tasks import registry
        d = self.root / "task_defs"
        d.mkdir(exist_ok=True)
        registry.add_task_dir(d)
        if only:
            empty = self.root / "no_shipped_tasks"
            empty.mkdir(exist_ok=True)
            self._monkeypatch.setattr(registry, "DEFINITIONS", empty)
        return d


@pytest.fixture
def mini(tmp_path, monkeypatch) -> MiniData:
    return MiniData(tmp_path, monkeypatch)
