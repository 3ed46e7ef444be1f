"""The languages the harness knows (tasks/languages.yaml) and their teachers' pre-training data.

A language is ISO 639-3 + script (`mlt_Latn`). Its teacher-data facts come from the shipped
tables in tasks/teacher_data/: the summary CSV first (its row `teacher_data_code`, by default the
ISO 639-3 code), else the full CC-100 / Wikipedia tables by the language's `cc100` / `wikipedia`
codes. A language whose evaluation data names an individual language while the tables key its
macro-language (Standard Latvian lvs vs Latvian lav) names the table's code in languages.yaml.
"""
from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from core.errors import UserError
from core.model import StrictModel
from core.registry import unknown_name_message
from tasks._config import load_yaml, validate

HERE = Path(__file__).parent
LANGUAGES_FILE = HERE / "languages.yaml"
TEACHER_DATA = HERE / "teacher_data"
SUMMARY_CSV = TEACHER_DATA / "teacher_data_sizes.csv"
CC100_CSV = TEACHER_DATA / "cc100_xlmr_paper.csv"
WIKIPEDIA_CSV = TEACHER_DATA / "wikipedia_20201001.csv"

# exactly the columns of the store's `languages` table
ROW_COLUMNS = ("code", "iso639_3", "script", "name", "cc100_gib", "wikipedia_gib", "glotcc_mb",
               "in_xlmr", "in_mbert", "source")


class Language(StrictModel):
    code: str = Field(pattern=r"^[a-z]{3}_[A-Z][a-z]{3}$")
    name: str
    iso639_3: str = Field(pattern=r"^[a-z]{3}$")
    script: str = Field(pattern=r"^[A-Z][a-z]{3}$")
    cc100: str | None = None       # code in cc100_xlmr_paper.csv; None: not an XLM-R language
    wikipedia: str | None = None   # code in wikipedia_20201001.csv
    # its row in teacher_data_sizes.csv when that is not iso639_3 (a macro-language: lvs -> lav)
    teacher_data_code: str | None = Field(None, pattern=r"^[a-z]{2,3}$")

    @property
    def summary_code(self) -> str:
        return self.teacher_data_code or self.iso639_3

    @model_validator(mode="after")
    def _code_matches(self):
        if self.code != f"{self.iso639_3}_{self.script}":
            raise ValueError(f"code {self.code!r} must be iso639_3 + '_' + script "
                             f"({self.iso639_3}_{self.script})")
        return self


@lru_cache(maxsize=1)
def _languages() -> dict[str, Language]:
    data = load_yaml(LANGUAGES_FILE) or {}
    if not isinstance(data, dict):
        raise UserError(f"{LANGUAGES_FILE}: expected a mapping of language codes")
    return {code: validate(Language, {"code": code, **(entry or {})}, LANGUAGES_FILE, code)
            for code, entry in data.items()}


def language_codes() -> list[str]:
    return sorted(_languages())


def unknown_language_message(code: str) -> str:
    known = language_codes()
    by_iso = [c for c in known if c.split("_")[0] == code.split("_")[0].lower()]
    if by_iso and code not in known:  # `mlt` or `mlt_Arab`: point at the code with the right script
        return (f"unknown language {code!r} (did you mean {', '.join(repr(c) for c in by_iso)}?); "
                f"languages are ISO 639-3 + script; known: {', '.join(known)}")
    return unknown_name_message("language", code, known)


def get_language(code: str) -> Language:
    langs = _languages()
    if code not in langs:
        raise UserError(unknown_language_message(code) + f" (add it to {LANGUAGES_FILE.name})")
    return langs[code]


def _float(value: str) -> float | None:
    value = value.strip().replace(",", "")
    return float(value) if value else None


def _bool(value: str) -> bool:
    return value.strip().lower() in ("true", "y", "yes", "1")


@lru_cache(maxsize=1)
def _tables() -> tuple[dict[str, dict], dict[str, dict], dict[str, dict]]:
    def rows(path: Path, key: str) -> dict[str, dict]:
        with path.open(encoding="utf-8", newline="") as f:
            return {r[key]: r for r in csv.DictReader(f)}
    return rows(SUMMARY_CSV, "lang_iso639_3"), rows(CC100_CSV, "ISO code"), rows(WIKIPEDIA_CSV, "Wiki")


def teacher_data(lang: Language) -> dict[str, Any]:
    """The pre-training data facts of one language (the non-identity columns of `language_rows`)."""
    summary, cc100, wiki = _tables()
    if lang.summary_code in summary:
        r = summary[lang.summary_code]
        return {"cc100_gib": _float(r["cc100_gib"]), "wikipedia_gib": _float(r["wikipedia_gib"]),
                "glotcc_mb": _float(r["glotcc_mb"]), "in_xlmr": _bool(r["in_xlmr"]),
                "in_mbert": _bool(r["in_mbert"]), "source": f"{SUMMARY_CSV.name}: {r['source notes']}"}
    c = cc100.get(lang.cc100) if lang.cc100 else None
    w = wiki.get(lang.wikipedia) if lang.wikipedia else None
    wiki_bytes = _float(w["Uncompressed Wiki Size (bytes)"]) if w else None
    return {
        "cc100_gib": _float(c["Size (GiB)"]) if c else None,
        "wikipedia_gib": round(wiki_bytes / 2**30, 4) if wiki_bytes is not None else None,
        "glotcc_mb": None,
        "in_xlmr": c is not None,
        "in_mbert": _bool(w["In mBERT?"]) if w else None,
        "source": (f"{CC100_CSV.name} ({lang.cc100 if c else 'not an XLM-R language'}); "
                   f"{WIKIPEDIA_CSV.name} ({lang.wikipedia if w else 'no entry'}); glotcc not tabulated"),
    }


TEACHER_TABLE = {"cc100": (CC100_CSV, "in_xlmr", "XLM-R"), "wikipedia": (WIKIPEDIA_CSV, "in_mbert", "mBERT")}


def missing_teacher_size(code: str, kind: str) -> str | None:
    """Why language `code` has no `kind` ('cc100' | 'wikipedia') pre-training size, or None
    when it has one or the tables say the teacher did not see the language (Maltese in XLM-R)."""
    lang = get_language(code)
    facts = teacher_data(lang)
    if facts[f"{kind}_gib"] is not None:
        return None
    table, seen_column, teacher = TEACHER_TABLE[kind]
    summary, _, _ = _tables()
    if lang.summary_code in summary:
        if facts[seen_column] is False:
            return None  # the summary says the teacher's data lacks the language
        return f"{SUMMARY_CSV.name} row {lang.summary_code!r} has no {kind}_gib"
    own = getattr(lang, kind)
    if own is None and kind in lang.model_fields_set:
        return None  # `cc100: null` written in languages.yaml: not one of the teacher's languages
    if own is None:
        where = f"languages.yaml gives it no {kind} code"
    else:
        where = f"{table.name} has no code {own!r}"
    return (f"{code} has no {kind} pre-training size: {SUMMARY_CSV.name} has no row "
            f"{lang.summary_code!r} and {where}; if the tables key its macro-language, set "
            f"`teacher_data_code` (the summary's ISO 639-3 code) or `{kind}` in "
            f"tasks/languages.yaml (e.g. lvs_Latn: {{teacher_data_code: lav, cc100: lv, wikipedia: lv}}), "
            f"or `{kind}: null` if {teacher} did not see it")


def language_rows() -> list[dict[str, Any]]:
    """One row per language with exactly the columns of the store's `languages` table."""
    rows = []
    for code in language_codes():
        lang = get_language(code)
        row = {"code": code, "iso639_3": lang.iso639_3, "script": lang.script, "name": lang.name,
               **teacher_data(lang)}
        rows.append({c: row[c] for c in ROW_COLUMNS})
    return rows
