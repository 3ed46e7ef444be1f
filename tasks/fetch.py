"""Where the data lives, whether it is intact, and fetching what is missing.

The data directory is `--data-dir`, else $HARNESS_DATA_DIR, else the user cache directory
($HARNESS_CACHE_DIR or the platformdirs user cache, then data/). Files are addressed by their catalogue path relative to it.

Every file is checked against the catalogue's size and sha256 before it is read; the hash is
cached per (path, size, mtime) so repeated loads in one process stay cheap. Downloads go to a
temporary file next to the target, are hashed while written, and are renamed into place only when
the sha256 matches: a mismatch is refused and the temporary file deleted. Mirrors (base URLs, or
local directories, laid out like the data directory) are tried before the upstream URL; files
derived by the snapshot (raw/) have no upstream URL and come only from a mirror or a copy.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal, Sequence
from urllib.error import URLError
from urllib.parse import quote, urlparse
from urllib.request import Request, urlopen


from core.errors import DataError, UserError
from core.paths import cache_root, file_sha256
from core.progress import bar
from tasks.catalogue import CatalogueEntry

ENV_DATA_DIR = "HARNESS_DATA_DIR"
ENV_MIRROR = "HARNESS_DATA_MIRROR"
CHUNK = 1 << 16
MAX_LISTED = 8

WAYS_OUT = ("point --data-dir (or $HARNESS_DATA_DIR) at a copy of the data, or run `harness data fetch` "
            "with network access or with `--mirror URL` ($HARNESS_DATA_MIRROR)")


def resolve_data_dir(cli_value: str | os.PathLike | None) -> Path:
    """`--data-dir`, else $HARNESS_DATA_DIR, else the user cache directory. Not created here."""
    if cli_value:
        path = Path(cli_value).expanduser()
    elif os.environ.get(ENV_DATA_DIR):
        path = Path(os.environ[ENV_DATA_DIR]).expanduser()
    else:
        path = cache_root() / "data"
    if path.exists() and not path.is_dir():
        raise UserError(f"data directory {path} is a file, not a directory; pass --data-dir DIR")
    return path


def mirrors_with_env(mirrors: Iterable[str] = ()) -> list[str]:
    """The given mirrors, then those of $HARNESS_DATA_MIRROR (comma-separated), without repeats."""
    out: list[str] = []
    env = [m.strip() for m in os.environ.get(ENV_MIRROR, "").split(",")]
    for m in [*mirrors, *env]:
        if m and m not in out:
            out.append(m)
    return out


def _listed(paths: Sequence[str]) -> str:
    shown = ", ".join(paths[:MAX_LISTED])
    return shown + (f" (and {len(paths) - MAX_LISTED} more)" if len(paths) > MAX_LISTED else "")


# -- verification ---------------------------------------------------------------------------------
sha256_of = file_sha256  # the name this module's callers use


@dataclass(frozen=True)
class FileCheck:
    entry: CatalogueEntry
    status: Literal["ok", "missing", "corrupt"]
    detail: str = ""               # for 'corrupt': what differs

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def local_path(entry: CatalogueEntry, data_dir: Path) -> Path:
    """Where the entry lives under `data_dir` (a relative path without `..`, or DataError)."""
    rel = Path(entry.path)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise DataError(f"refusing catalogue path {entry.path!r}: it must be relative and stay inside "
                        f"the data directory")
    return Path(data_dir) / rel


def verify(entry: CatalogueEntry, data_dir: Path) -> FileCheck:
    """Is the file present with the catalogue's size and sha256? (size first: cheap)"""
    path = local_path(entry, data_dir)
    if not path.is_file():
        return FileCheck(entry, "missing")
    size = path.stat().st_size
    if size != entry.bytes:
        return FileCheck(entry, "corrupt", f"size {size} bytes, expected {entry.bytes}")
    actual = sha256_of(path)
    if actual != entry.sha256:
        return FileCheck(entry, "corrupt", f"sha256 {actual}, expected {entry.sha256}")
    return FileCheck(entry, "ok")


def missing(entries: Iterable[CatalogueEntry], data_dir: Path) -> list[CatalogueEntry]:
    """The entries whose file is not in the data directory (presence only; see `verify`)."""
    return [e for e in _unique(entries) if not local_path(e, data_dir).is_file()]


def corrupt_message(check: FileCheck, data_dir: Path) -> str:
    return (f"corrupt data file {Path(data_dir) / check.entry.path}: {check.detail}; refusing to use it "
            f"(delete it, or run `harness data fetch --repair` to replace it with a verified copy)")


def missing_message(paths: Sequence[str], data_dir: Path) -> str:
    return f"missing data file(s) in {data_dir}: {_listed(paths)}; {WAYS_OUT}"


def _corrupt_error(bad: Sequence[FileCheck], data_dir: Path) -> DataError:
    also = f"; also corrupt: {_listed([c.entry.path for c in bad[1:]])}" if len(bad) > 1 else ""
    return DataError(corrupt_message(bad[0], data_dir) + also)


def check_files(entries: Iterable[CatalogueEntry], data_dir: Path) -> None:
    """Raise DataError unless every file is present and intact (what the loaders call)."""
    checks = [verify(e, data_dir) for e in _unique(entries)]
    bad = [c for c in checks if c.status == "corrupt"]
    if bad:
        raise _corrupt_error(bad, data_dir)
    absent = [c.entry.path for c in checks if c.status == "missing"]
    if absent:
        raise DataError(missing_message(absent, data_dir))


def _unique(entries: Iterable[CatalogueEntry]) -> list[CatalogueEntry]:
    seen: dict[str, CatalogueEntry] = {}
    for e in entries:
        seen.setdefault(e.path, e)
    return list(seen.values())


# -- fetching -------------------------------------------------------------------------------------
class _Unreachable(Exception):
    """This source could not deliver the file (connection refused, timeout, HTTP error)."""


def _mirror_url(mirror: str, entry: CatalogueEntry) -> str:
    if not urlparse(mirror).scheme or len(urlparse(mirror).scheme) == 1:  # a local dir (or C:\...)
        mirror = Path(mirror).expanduser().resolve().as_uri()
    return mirror.rstrip("/") + "/" + quote(entry.path)


def sources_for(entry: CatalogueEntry, mirrors: Sequence[str]) -> list[str]:
    urls = [_mirror_url(m, entry) for m in mirrors]
    if entry.url and not entry.derived:
        urls.append(entry.url)
    return urls


def _download(url: str, entry: CatalogueEntry, dest: Path, timeout: float, progress) -> None:
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    except OSError as exc:
        raise DataError(f"cannot write into {dest.parent}: {exc.strerror or exc}; pass --data-dir DIR "
                        f"(or set $HARNESS_DATA_DIR) to a writable place") from None
    tmp = Path(tmp_name)
    done = counted = 0
    saved = False
    try:
        h = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as out, urlopen(Request(url, headers={"User-Agent": "lrl-harness"}),
                                                     timeout=timeout) as resp:
                while chunk := resp.read(CHUNK):
                    done += len(chunk)
                    if done > entry.bytes:  # more than the catalogue says: stop reading
                        break
                    h.update(chunk)
                    out.write(chunk)
                    progress.update(len(chunk))
                    counted += len(chunk)
        except (URLError, OSError, http.client.HTTPException) as exc:
            raise _Unreachable(f"{url}: {getattr(exc, 'reason', None) or exc}") from None
        actual = h.hexdigest() if done <= entry.bytes else "(more bytes than expected)"
        if done != entry.bytes or actual != entry.sha256:
            raise DataError(f"checksum mismatch for {entry.path} downloaded from {url}: expected sha256 "
                            f"{entry.sha256} ({entry.bytes} bytes), got {actual} ({done} bytes); "
                            f"refused, nothing was saved")
        os.replace(tmp, dest)  # atomic on the same file system
        saved = True
    finally:
        if not saved:
            progress.update(-counted)
            tmp.unlink(missing_ok=True)


def fetch(entries: Iterable[CatalogueEntry], data_dir: Path, *, mirrors: Sequence[str] = (),
          timeout: float = 30, repair: bool = False) -> list[CatalogueEntry]:
    """Download the entries that are missing (and, with `repair`, corrupt) into `data_dir`.

    Returns the entries downloaded. A corrupt existing file without `repair`, a checksum mismatch,
    or files no source could deliver raise DataError naming the files.
    """
    data_dir = Path(data_dir)
    mirrors = mirrors_with_env(mirrors)
    checks = [verify(e, data_dir) for e in _unique(entries)]
    corrupt = [c for c in checks if c.status == "corrupt"]
    if corrupt and not repair:
        raise _corrupt_error(corrupt, data_dir)
    todo = [c.entry for c in checks if c.status == "missing" or (repair and c.status == "corrupt")]
    if not todo:
        return []
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the data directory {data_dir}: {exc.strerror or exc}; "
                        f"pass --data-dir DIR (or set $HARNESS_DATA_DIR) to a writable place") from None
    fetched: list[CatalogueEntry] = []
    failed: dict[str, str] = {}
    with bar(total=sum(e.bytes for e in todo), desc="fetch data", unit="B", unit_scale=True,
             unit_divisor=1024) as progress:
        for entry in todo:
            urls = sources_for(entry, mirrors)
            if not urls:
                failed[entry.path] = "derived file: only available from a mirror or a copy"
                continue
            reasons = []
            for url in urls:
                try:
                    _download(url, entry, local_path(entry, data_dir), timeout, progress)
                except _Unreachable as exc:
                    reasons.append(str(exc))
                    continue
                fetched.append(entry)
                break
            else:
                failed[entry.path] = "; ".join(f"{i}) {r}" for i, r in enumerate(reasons, 1))
    if failed:
        paths = list(failed)
        raise DataError(f"could not fetch {len(paths)} data file(s) into {data_dir}: {_listed(paths)} "
                        f"(sources tried for {paths[0]}: {failed[paths[0]]}); {WAYS_OUT}")
    return fetched


def check_present_files(entries: Iterable[CatalogueEntry], data_dir: Path) -> list[CatalogueEntry]:
    """Verify every present file (size and sha256) and raise one DataError naming all the corrupt
    ones; return the entries whose file is missing (for the caller to fetch or report)."""
    checks = [verify(e, data_dir) for e in _unique(entries)]
    bad = [c for c in checks if c.status == "corrupt"]
    if bad:
        raise _corrupt_error(bad, data_dir)
    return [c.entry for c in checks if c.status == "missing"]
