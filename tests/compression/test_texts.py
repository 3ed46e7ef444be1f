"""Training text for the stages: local files, Hugging Face datasets (streamed, capped; tested on
local files), the data catalogue, and the fingerprint that keys the cache."""
from __future__ import annotations

import json

import pytest

from compression.config import TextConfig
from compression.texts import LanguageText
from core.errors import ConfigError, DataError


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_files_source_dedups_and_drops_dev_lines(tmp_path):
    _write(tmp_path / "a.txt", ["one line here", "two lines here", "one line here", "", "held out line"])
    _write(tmp_path / "dev.txt", ["held out line"])
    cfg = TextConfig(catalogue=False, sources=[{"kind": "files", "files": {"xx": ["a.txt"]}, "dev": {"xx": ["dev.txt"]}}])
    text = LanguageText(cfg, "xx", tmp_path, seed=1)
    assert text.texts() == ["one line here", "two lines here"]
    assert text.dev() == ["held out line"]
    other = LanguageText(cfg, "yy", tmp_path, seed=1)  # a language the source does not serve
    with pytest.raises(DataError, match="no training text for 'yy'"):
        other.texts()


def test_fingerprint_follows_content_not_paths(tmp_path):
    _write(tmp_path / "a.txt", ["alpha beta", "gamma delta"])
    cfg = TextConfig(catalogue=False, sources=[{"kind": "files", "files": {"xx": [str(tmp_path / "a.txt")]}}])
    first = LanguageText(cfg, "xx", None, seed=1).fingerprint
    assert first == LanguageText(cfg, "xx", None, seed=2).fingerprint  # no sampling: seed irrelevant
    _write(tmp_path / "a.txt", ["alpha beta", "gamma delta!"])
    assert LanguageText(cfg, "xx", None, seed=1).fingerprint != first
    capped = TextConfig(catalogue=False, max_lines=1, sources=cfg.sources)
    assert LanguageText(capped, "xx", None, seed=1).fingerprint != LanguageText(capped, "xx", None, seed=2).fingerprint


def test_max_lines_is_a_seeded_sample(tmp_path):
    _write(tmp_path / "a.txt", [f"line number {i}" for i in range(100)])
    cfg = TextConfig(catalogue=False, max_lines=10, sources=[{"kind": "files", "files": {"xx": [str(tmp_path / "a.txt")]}}])
    a = LanguageText(cfg, "xx", None, seed=1).texts()
    assert len(a) == 10 and a == LanguageText(cfg, "xx", None, seed=1).texts()
    assert a != LanguageText(cfg, "xx", None, seed=2).texts()


def test_hf_source_streams_local_files_with_a_cap(tmp_path):
    rows = [{"text": f"Paragraph {i} first sentence is long enough.\nshort\nParagraph {i} second line, long too."}
            for i in range(50)]
    (tmp_path / "wiki-mt.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    cfg = TextConfig(catalogue=False, sources=[{
        "kind": "hf", "path": "json", "data_files": {"mlt_Latn": "wiki-{wikipedia}.jsonl"},
        "max_lines": 30, "min_chars": 20}])
    text = LanguageText(cfg, "mlt_Latn", tmp_path, seed=0)
    lines = text.texts()
    assert len(lines) == 30 and "short" not in lines
    assert lines[:2] == ["Paragraph 0 first sentence is long enough.", "Paragraph 0 second line, long too."]
    fp = text.fingerprint
    (tmp_path / "wiki-mt.jsonl").write_text("\n".join(json.dumps(r) for r in rows[:40]), encoding="utf-8")
    assert LanguageText(cfg, "mlt_Latn", tmp_path, seed=0).fingerprint != fp  # local data files: by content


def test_hf_source_errors(tmp_path):
    (tmp_path / "d.jsonl").write_text(json.dumps({"body": "x" * 40}), encoding="utf-8")
    bad_column = TextConfig(catalogue=False, sources=[{"kind": "hf", "path": "json", "data_files": str(tmp_path / "d.jsonl")}])
    with pytest.raises(DataError, match="has no column 'text'; columns: \\['body'\\]"):
        LanguageText(bad_column, "xx", None, seed=0).texts()
    placeholder = TextConfig(catalogue=False, sources=[{"kind": "hf", "path": "wikimedia/wikipedia", "name": "20231101.{wikipedia}"}])
    with pytest.raises(ConfigError, match="uses \\{wikipedia\\}, which 'xx' does not define"):
        LanguageText(placeholder, "xx", None, seed=0).fingerprint
    per_language = TextConfig(catalogue=False, sources=[{"kind": "hf", "path": "x/y", "name": {"mlt_Latn": "mt"}}])
    with pytest.raises(ConfigError, match="name has no entry for 'swh_Latn'"):
        LanguageText(per_language, "swh_Latn", None, seed=0).fingerprint


def test_hf_spec_resolves_wikipedia_codes_without_downloading():
    cfg = TextConfig(catalogue=False, sources=[{"kind": "hf", "path": "wikimedia/wikipedia", "name": "20231101.{wikipedia}",
                                                "revision": "b04c8d1"}])
    a = LanguageText(cfg, "mlt_Latn", None, seed=0)
    assert a._hf_specs[0]["name"] == "20231101.mt"
    assert LanguageText(cfg, "swh_Latn", None, seed=0)._hf_specs[0]["name"] == "20231101.sw"
    assert a.fingerprint and not a.is_local


@pytest.mark.real_data
def test_catalogue_text_is_training_text_only(data_dir):
    text = LanguageText(TextConfig(), "mlt_Latn", data_dir, seed=0)
    lines = text.texts()
    assert len(lines) > 1000
    dev = set(text.dev())
    assert dev and not dev & set(lines)
    assert text.fingerprint == LanguageText(TextConfig(), "mlt_Latn", data_dir, seed=0).fingerprint
