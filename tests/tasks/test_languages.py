"""Languages and their teacher pre-training data facts (properties of whatever languages.yaml holds;
the shipped list is pinned in tests/regression/snapshots/catalogue_counts.json)."""
from __future__ import annotations

import re

import pytest

from core.errors import UserError
from tasks import languages as L



def store_language_columns() -> list[str]:
    from harness import store
    block = re.search(r"CREATE TABLE IF NOT EXISTS languages \((.*?)\n\);", store.SCHEMA, re.S).group(1)
    return [line.split()[0] for line in block.strip().splitlines()]


def test_every_language_has_a_name_and_codes_and_the_data_uses_only_known_ones():
    from tasks.catalogue import load_catalogue
    codes = L.language_codes()
    assert codes == sorted(set(codes)) and codes
    for code in codes:
        lang = L.get_language(code)
        assert lang.name and code == f"{lang.iso639_3}_{lang.script}"
        assert re.fullmatch(r"[a-z]{3}", lang.iso639_3) and re.fullmatch(r"[A-Z][a-z]{3}", lang.script)
    assert {e.language for e in load_catalogue().files} <= set(codes)


def test_rows_have_exactly_the_store_columns():
    rows = L.language_rows()
    assert [r["code"] for r in rows] == L.language_codes()
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
    for code in L.language_codes():
        lang = L.get_language(code)
        if lang.iso639_3 not in summary:
            continue
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


def with_languages(tmp_path, monkeypatch, extra: str) -> None:
    langs = tmp_path / "languages.yaml"
    langs.write_text(L.LANGUAGES_FILE.read_text(encoding="utf-8") + extra, encoding="utf-8")
    monkeypatch.setattr(L, "LANGUAGES_FILE", langs)
    L._languages.cache_clear()


@pytest.mark.parametrize("code,macro,cc100,gib", [("lvs_Latn", "lav", "lv", 8.8), ("arb_Arab", "ara", "ar", 28.0),
                                                  ("zsm_Latn", "msa", "ms", 8.5)])
def test_an_individual_language_names_the_tables_macro_language(tmp_path, monkeypatch, code, macro, cc100, gib):
    iso, script = code.split("_")
    with_languages(tmp_path, monkeypatch, f"{code}: {{name: X, iso639_3: {iso}, script: {script}}}\n")
    bare = L.teacher_data(L.get_language(code))
    assert bare["cc100_gib"] is None
    why = L.missing_teacher_size(code, "cc100")
    assert why.startswith(f"{code} has no cc100 pre-training size: teacher_data_sizes.csv has no row {iso!r} "
                          "and languages.yaml gives it no cc100 code") and "teacher_data_code" in why
    summary, _, _ = L._tables()
    field = f"teacher_data_code: {macro}" if macro in summary else f"cc100: {cc100}"
    with_languages(tmp_path, monkeypatch, f"{code}: {{name: X, iso639_3: {iso}, script: {script}, {field}}}\n")
    assert L.teacher_data(L.get_language(code))["cc100_gib"] == pytest.approx(gib)
    assert L.missing_teacher_size(code, "cc100") is None
    L._languages.cache_clear()


def test_no_warning_where_the_tables_say_the_teacher_never_saw_the_language(tmp_path, monkeypatch):
    assert L.missing_teacher_size("mlt_Latn", "cc100") is None  # Maltese: not an XLM-R language
    assert L.missing_teacher_size("swh_Latn", "wikipedia") is None
    with_languages(tmp_path, monkeypatch, "fao_Latn: {name: Faroese, iso639_3: fao, script: Latn, cc100: null}\n")
    assert L.missing_teacher_size("fao_Latn", "cc100") is None
    assert "languages.yaml gives it no wikipedia code" in L.missing_teacher_size("fao_Latn", "wikipedia")
    with_languages(tmp_path, monkeypatch, "fao_Latn: {name: Faroese, iso639_3: fao, script: Latn, cc100: fo}\n")
    assert "cc100_xlmr_paper.csv has no code 'fo'" in L.missing_teacher_size("fao_Latn", "cc100")
    L._languages.cache_clear()
