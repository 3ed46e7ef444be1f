"""The `harness data ...` commands as plain functions (the CLI wires them): fetch, list, verify.

Each takes the task and language selection (None: all), the data directory option and prints a
concise table; it returns the process exit code. Bad names raise UserError (did-you-mean).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from core.errors import UserError
from tasks.catalogue import CatalogueEntry, dataset_info, entries_for, license_notice
from tasks.fetch import fetch, resolve_data_dir, verify
from tasks.languages import get_language, language_codes
from tasks.registry import get_task, required_files, task_names

Echo = Callable[[str], None]


def select_files(tasks: Sequence[str] | None = None, languages: Sequence[str] | None = None, *,
                 include_raw: bool = True, include_docs: bool = True) -> list[CatalogueEntry]:
    """The catalogue files the selected tasks x languages need (plus raw text and licence/README files)."""
    specs = [get_task(t) for t in (tasks or task_names())]
    langs = [get_language(code).code for code in (languages or language_codes())]
    files: dict[str, CatalogueEntry] = {}
    for spec in specs:
        for lang in langs:
            if lang in spec.languages():
                files.update((e.path, e) for e in required_files(spec, lang))
    if include_raw and not tasks:
        for lang in langs:
            files.update((e.path, e) for e in entries_for(language=lang, task="raw"))
    if not files:
        raise UserError(f"no data for tasks {', '.join(s.name for s in specs)} in languages "
                        f"{', '.join(langs)}; see `harness data list` for what exists")
    if include_docs:
        datasets = {e.dataset for e in files.values()}
        files.update((e.path, e) for ds in datasets for e in entries_for(dataset=ds, split="doc"))
    return sorted(files.values(), key=lambda e: e.path)


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def _table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*header).rstrip(), fmt.format(*("-" * w for w in widths)).rstrip(),
            *(fmt.format(*r).rstrip() for r in rows)]


def _short_license(e: CatalogueEntry) -> str:
    info = dataset_info(e.dataset)
    return info.license + (" [NC]" if info.non_commercial else "")


def data_list(tasks: Sequence[str] | None = None, languages: Sequence[str] | None = None,
              data_dir: str | Path | None = None, *, include_raw: bool = True, echo: Echo = print) -> int:
    """Every selected file with its size, status (ok / missing / corrupt) and licence."""
    root = resolve_data_dir(data_dir)
    entries = select_files(tasks, languages, include_raw=include_raw, include_docs=False)
    checks = [verify(e, root) for e in entries]
    echo(f"data directory: {root}")
    for line in _table([(c.entry.path, c.entry.language, _size(c.entry.bytes), c.status, _short_license(c.entry))
                        for c in checks], ("file", "language", "size", "status", "license")):
        echo(line)
    counts = {s: sum(c.status == s for c in checks) for s in ("ok", "missing", "corrupt")}
    echo(f"{len(checks)} files: {counts['ok']} ok, {counts['missing']} missing, {counts['corrupt']} corrupt")
    echo(license_notice({e.dataset for e in entries}))
    return 0


def data_verify(tasks: Sequence[str] | None = None, languages: Sequence[str] | None = None,
                data_dir: str | Path | None = None, *, include_raw: bool = True, echo: Echo = print) -> int:
    """Check size and sha256 of every selected file; list the problems; exit code 1 if any."""
    root = resolve_data_dir(data_dir)
    checks = [verify(e, root) for e in select_files(tasks, languages, include_raw=include_raw)]
    bad = [c for c in checks if not c.ok]
    if bad:
        for line in _table([(c.entry.path, c.status, c.detail) for c in bad], ("file", "status", "detail")):
            echo(line)
    echo(f"{root}: {len(checks) - len(bad)} of {len(checks)} files verified"
         + (f"; {len(bad)} missing or corrupt (run `harness data fetch`, with `--repair` for corrupt ones)"
            if bad else ""))
    return 1 if bad else 0


def data_fetch(tasks: Sequence[str] | None = None, languages: Sequence[str] | None = None,
               data_dir: str | Path | None = None, mirror: Sequence[str] | None = None, *,
               include_raw: bool = True, repair: bool = False, timeout: float = 30,
               echo: Echo = print) -> int:
    """Download the missing selected files (verified by sha256) and show their licences."""
    root = resolve_data_dir(data_dir)
    entries = select_files(tasks, languages, include_raw=include_raw)
    got = fetch(entries, root, mirrors=list(mirror or ()), timeout=timeout, repair=repair)
    echo(f"data directory: {root}")
    echo(f"fetched {len(got)} file(s), {_size(sum(e.bytes for e in got))}; "
         f"{len(entries) - len(got)} already present and verified")
    echo(license_notice({e.dataset for e in entries}))
    return 0
