"""Languages and their teacher pre-training data facts."""
from __future__ import annotations

import re

import pytest

from core.errors import UserError
from tasks import languages as L

DATA_LANGUAGES = ["afr_Latn", "amh_Ethi", "eng_Latn", "est_Latn", "eus_Latn", "gle_Latn", "hau_Latn",
                  "isl_Latn", "mlt_Latn", "slk_Latn", "swh_Latn"]


def store_language_columns() -> list[str]:
    from harness import store
    block = re.search(r"CREATE TABLE IF NOT EXISTS languages \((.*?)\n\);", store.SCHEMA, re.S).group(1)
    return [line.split()[0] for line in block.strip().splitlines()]


def test_codes_are_the_languages_of_the_data():
    assert L.language_codes() == DATA_LANGUAGES


def test_rows_have_exactly_the_store_columns():
    rows = L.language_rows()
    assert [r["code"] for r in rows] == DATA_LANGUAGES
    for r in rows:
        assert list(r) == store_language_columns()


def test_teacher_facts_from_the_summary():
    rows = {r["code"]: r for r in L.language_rows()}
    mt = rows["mlt_Latn"]
    assert mt["cc100_gib"] is None and mt["in_xlmr"] is False and mt["in_mbert"] is False  # in neither teacher
    assert mt["wikipedia_gib"] == pytest.approx(0.0101) and mt["glotcc_mb"] == pytest.approx(234.63)
    assert rows["slk_Latn"]["cc100_gib"] == pytest.approx(23.2)
    assert rows["hau_Latn"]["in_mbert"] is False and rows["amh_Ethi"]["script"] == "Ethi"
    assert rows["swh_Latn"]["source"].startswith("teacher_data_sizes.csv:")


def test_full_tables_agree_with_the_summary():
    """The fallback (full CC-100 / Wikipedia tables by code) reproduces the shipped summary."""
    summary, _, _ = L._tables()
    for code in DATA_LANGUAGES:
        lang = L.get_language(code)
        row = summary[lang.iso639_3]
        no_summary = lang.model_copy(update={"iso639_3": "zzz"})  # force the fallback path
        got = L.teacher_data(no_summary)
        assert got["cc100_gib"] == (float(row["cc100_gib"]) if row["cc100_gib"] else None), code
        assert got["wikipedia_gib"] == pytest.approx(float(row["wikipedia_gib"]), abs=1e-4), code
        assert got["in_xlmr"] == (row["in_xlmr"] == "true") and got["in_mbert"] == (row["in_mbert"] == "true"), code


def test_unknown_language_messages():
    with pytest.raises(UserError, match=r"unknown language 'swh' \(did you mean 'swh_Latn'\?\)"):
        L.get_language("swh")
    with pytest.raises(UserError, match=r"unknown language 'slk_latn' \(did you mean 'slk_Latn'"):
        L.get_language("slk_latn")
    with pytest.raises(UserError, match=r"unknown language 'qqq_Zzzz'; known: afr_Latn"):
        L.get_language("qqq_Zzzz")


def test_invalid_language_entry_is_a_config_error(tmp_path, monkeypatch):
    from core.errors import ConfigError
    bad = tmp_path / "languages.yaml"
    bad.write_text("mlt_Latn: {name: Maltese, iso639_3: mlt, script: Latn, wiki: mt}\n")
    monkeypatch.setattr(L, "LANGUAGES_FILE", bad)
    L._languages.cache_clear()
    try:
        with pytest.raises(ConfigError, match=r"languages\.yaml: field mlt_Latn\.wiki: Extra inputs are not permitted"):
            L.language_codes()
        bad.write_text("mlt_Arab: {name: Maltese, iso639_3: mlt, script: Latn}\n")
        L._languages.cache_clear()
        with pytest.raises(ConfigError, match=r"must be iso639_3 \+ '_' \+ script \(mlt_Latn\)"):
            L.language_codes()
    finally:
        L._languages.cache_clear()
