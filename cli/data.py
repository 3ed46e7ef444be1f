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


SPLIT_NAMES = ("train", "dev", "test")


def _split_of(rel: str, split: str | None) -> str:
    if split:
        return split
    stem = Path(rel).name.lower()
    found = [s for s in SPLIT_NAMES if s in stem.replace("-", ".").replace("_", ".").split(".")]
    if len(found) != 1:
        raise UserError(f"{rel}: cannot tell its split from the file name; pass --split "
                        f"(train, dev, test, or doc for a README/licence)")
    return found[0]


def _file_counts(path: Path) -> dict:
    """Counts that need no reader: lines, and non-empty lines (examples of one-per-line files);
    MANIFEST.json may hold richer counts (examples, words, label sets) written by hand."""
    lines = path.read_bytes().splitlines()
    return {"lines": len(lines), "non_empty_lines": sum(1 for x in lines if x.strip())}


def data_add(files: Sequence[str | Path], *, dataset: str, language: str, task: str, license: str,
             source_repo: str, commit: str, source_paths: Sequence[str] | None = None,
             split: str | None = None, data_dir: str | Path | None = None, catalogue: Path | None = None,
             echo: Echo = print) -> int:
    """Write MANIFEST.json entries (sha256, bytes, source, licence, per-file counts) for files
    already in the data directory, then rebuild tasks/catalogue.json from it, so nobody writes
    JSON by hand. An entry of the same path is replaced."""
    import json

    from core.paths import file_sha256
    from tasks import build_catalogue

    root = resolve_data_dir(data_dir)
    get_language(language)
    if task != "raw" and task not in task_names():
        get_task(task)  # raises with a did-you-mean
    facts = build_catalogue.load_dataset_facts()
    if dataset not in facts:
        raise UserError(f"dataset {dataset!r} has no entry in {build_catalogue.DATASETS}; add one with its "
                        f"{', '.join(build_catalogue.DATASET_FIELDS)} (license_status: open, non-commercial, "
                        "unspecified or copyleft), then run this again")
    if source_paths and len(source_paths) != len(files):
        raise UserError(f"--source-path given {len(source_paths)} time(s) for {len(files)} file(s): "
                        "give one per file, in the same order, or none (then the path in the data directory)")
    if not (len(commit) == 40 and all(c in "0123456789abcdef" for c in commit)):
        raise UserError(f"--commit {commit!r}: give the full 40-hex commit of {source_repo} the files come from")
    entries = []
    for i, f in enumerate(files):
        path = Path(f)
        path = path if path.is_absolute() or path.exists() else root / path
        path = path.resolve()
        if not path.is_file():
            raise UserError(f"{f}: no such file (put it under the data directory {root} first)")
        try:
            rel = path.relative_to(root.resolve()).as_posix()
        except ValueError:
            raise UserError(f"{path}: not under the data directory {root}; copy it there first "
                            "(the catalogue names files by their path in it)") from None
        entries.append({
            "dataset": dataset, "language": language, "task": task, "split": _split_of(rel, split),
            "path": rel, "source_repo": source_repo, "commit": commit,
            "source_path": source_paths[i] if source_paths else rel, "license": license,
            "sha256": file_sha256(path), "bytes": path.stat().st_size, "counts": _file_counts(path)})
    manifest_file = root / "MANIFEST.json"
    manifest = json.loads(manifest_file.read_text(encoding="utf-8")) if manifest_file.exists() else []
    new = {e["path"] for e in entries}
    manifest = [m for m in manifest if m["path"] not in new] + entries
    manifest_file.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    for e in entries:
        echo(f"{e['path']}: {e['split']}, {e['bytes']} bytes, sha256 {e['sha256'][:12]}…")
    echo(f"wrote {len(entries)} entr{'y' if len(entries) == 1 else 'ies'} to {manifest_file}")
    return build_catalogue.main([str(manifest_file)] + (["--out", str(catalogue)] if catalogue else []))
