"""Fixtures for the tasks/ tests: the real data directory (or a skip), a clean task registry, and a
miniature catalogue of small files written by the test."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

# ../shared/data beside the checkout (derived, as tests/conftest.py does): no machine path
FALLBACK_DATA_DIR = Path(__file__).resolve().parents[3] / "shared" / "data"
# Set to run these tests as if a user had added a language (see `install_added_language`): the
# tests must check properties of whatever the catalogue holds, so they pass either way; the
# counts of the shipped catalogue are pinned in tests/regression/snapshots/catalogue_counts.json.
ADDED_LANGUAGE_ENV = "HARNESS_TEST_ADDED_LANGUAGE"
ADDED_LANGUAGE = "lvs_Latn"


def pytest_configure(config):
    if os.environ.get(ADDED_LANGUAGE_ENV):  # before the test modules are imported (some list pairs)
        import tempfile
        install_added_language(Path(tempfile.mkdtemp(prefix="added_language_")), pytest.MonkeyPatch())


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
    from tasks import languages
    registry._specs.clear()
    registry._extra_dirs.clear()
    catalogue.load_catalogue.cache_clear()
    languages._languages.cache_clear()
    yield
    registry._specs.clear()
    registry._extra_dirs.clear()
    catalogue.load_catalogue.cache_clear()
    languages._languages.cache_clear()


def install_added_language(root: Path, monkeypatch) -> None:
    """What a user adding a language does, without Python changes: an entry in languages.yaml, its
    files in the catalogue, and its datasets in the task YAMLs (SIB-200 topic and a UD treebank)."""
    import yaml

    from tasks import catalogue, languages, registry
    lang = ADDED_LANGUAGE
    if lang in (yaml.safe_load(languages.LANGUAGES_FILE.read_text(encoding="utf-8")) or {}):
        return  # already installed for the whole run
    langs = root / "languages.yaml"
    langs.write_text(languages.LANGUAGES_FILE.read_text(encoding="utf-8")
                     + f"{lang}: {{name: Standard Latvian, iso639_3: lvs, script: Latn, cc100: lv, "
                       f"wikipedia: lv}}\n", encoding="utf-8")
    monkeypatch.setattr(languages, "LANGUAGES_FILE", langs)
    cat = json.loads(catalogue.CATALOGUE_FILE.read_text(encoding="utf-8"))
    new_files = {"topic": ("sib200", {s: f"sib200/{lang}/{s}.tsv" for s in ("train", "dev", "test")}),
                 "pos": ("ud/UD_Latvian-LVTB", {s: f"ud/UD_Latvian-LVTB/lv_lvtb-ud-{s}.conllu"
                                                for s in ("train", "dev", "test")})}
    for task, (dataset, files) in new_files.items():
        info = cat["datasets"].setdefault(dataset, {**cat["datasets"]["sib200"], "name": dataset, "languages": []})
        info["languages"] = sorted({*info["languages"], lang})
        for split, path in files.items():
            cat["files"].append({
                "path": path, "dataset": dataset, "language": lang, "task": task, "split": split,
                "source_repo": info["source_repo"], "commit": info["commit"], "source_paths": [path],
                "license": info["license"], "sha256": hashlib.sha256(path.encode()).hexdigest(), "bytes": 1000,
                "url": f"https://raw.githubusercontent.com/{info['source_repo']}/{info['commit']}/{path}",
                "derived": False, "git_blob_sha1": None, "counts": {"examples": 10}, "notes": ""})
    cat_file = root / "catalogue.json"
    cat_file.write_text(json.dumps(cat), encoding="utf-8")
    monkeypatch.setattr(catalogue, "CATALOGUE_FILE", cat_file)
    defs = root / "definitions"
    defs.mkdir()
    for f in registry.DEFINITIONS.glob("*.yaml"):
        spec = yaml.safe_load(f.read_text(encoding="utf-8"))
        if f.stem == "topic":
            spec["languages"][lang] = None
        elif f.stem == "pos":
            spec["datasets"]["ud/UD_Latvian-LVTB"] = {"reader": "conllu_upos"}
            spec["languages"][lang] = {"dataset": "ud/UD_Latvian-LVTB", "files": new_files["pos"][1]}
        (defs / f.name).write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True), encoding="utf-8")
    monkeypatch.setattr(registry, "DEFINITIONS", defs)
    catalogue.load_catalogue.cache_clear()
    languages._languages.cache_clear()


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
