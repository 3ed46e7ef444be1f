"""The data catalogue (tasks/catalogue.json): where each data file is published, its licence,
its checksum and size, and facts per dataset (licence, citation, non-commercial flag).

Files are addressed by their path relative to the data directory, e.g. `sib200/mlt_Latn/train.tsv`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from core.errors import DataError, UserError
from core.registry import did_you_mean, unknown_name_message

CATALOGUE_FILE = Path(__file__).parent / "catalogue.json"


@dataclass(frozen=True)
class CatalogueEntry:
    path: str                      # relative to the data directory
    dataset: str
    language: str
    task: str                      # 'topic' | 'pos' | 'ner' | 'sentiment' | 'raw'
    split: str                     # 'train' | 'dev' | 'test' | 'all' | 'unlabeled' | 'doc'
    source_repo: str
    commit: str
    source_paths: tuple[str, ...]
    license: str
    sha256: str
    bytes: int
    url: str | None                # upstream URL; None for derived files
    derived: bool                  # filtered text under raw/: only from a mirror or a copy
    git_blob_sha1: str | None = None
    counts: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    notes: str = ""


@dataclass(frozen=True)
class DatasetInfo:
    id: str
    name: str
    license: str
    license_status: str            # 'open' | 'non-commercial' | 'unspecified' | 'copyleft'
    non_commercial: bool
    citation: str
    notes: str
    source_repo: str
    commit: str
    languages: tuple[str, ...]


@dataclass(frozen=True)
class Catalogue:
    files: tuple[CatalogueEntry, ...]
    datasets: dict[str, DatasetInfo]

    by_path: dict[str, CatalogueEntry] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.by_path.update((e.path, e) for e in self.files)

    def entry(self, path: str) -> CatalogueEntry:
        if path not in self.by_path:
            raise DataError(f"unknown data file {path!r}{did_you_mean(path, list(self.by_path))} "
                            f"in the catalogue (tasks/catalogue.json)")
        return self.by_path[path]


@lru_cache(maxsize=1)
def load_catalogue() -> Catalogue:
    raw = json.loads(CATALOGUE_FILE.read_text(encoding="utf-8"))
    files = tuple(CatalogueEntry(**{**f, "source_paths": tuple(f["source_paths"])}) for f in raw["files"])
    datasets = {k: DatasetInfo(id=k, **{**v, "languages": tuple(v["languages"])})
                for k, v in raw["datasets"].items()}
    return Catalogue(files=files, datasets=datasets)


def entries_for(*, dataset: str | None = None, language: str | None = None, task: str | None = None,
                split: str | Iterable[str] | None = None, include_docs: bool = False) -> list[CatalogueEntry]:
    """Catalogue entries matching every given field (documentation files only when asked)."""
    splits = {split} if isinstance(split, str) else (set(split) if split is not None else None)
    out = []
    for e in load_catalogue().files:
        if dataset is not None and e.dataset != dataset:
            continue
        if language is not None and e.language != language:
            continue
        if task is not None and e.task != task:
            continue
        if splits is not None and e.split not in splits:
            continue
        if e.split == "doc" and not include_docs and not (splits and "doc" in splits):
            continue
        out.append(e)
    return out


def dataset_info(dataset_id: str) -> DatasetInfo:
    datasets = load_catalogue().datasets
    if dataset_id not in datasets:
        raise UserError(unknown_name_message("dataset", dataset_id, list(datasets)))
    return datasets[dataset_id]


def license_notice(dataset_ids: Iterable[str], *, extra: dict[str, tuple[str, bool]] | None = None) -> str:
    """A few lines naming each dataset's licence, flagging non-commercial and unspecified ones.

    `extra` adds datasets that are not in the catalogue (e.g. Hugging Face sources of user tasks):
    id -> (licence, non_commercial).
    """
    rows: list[tuple[str, str, str]] = []
    nc: list[str] = []
    unspecified: list[str] = []
    for ds in sorted(set(dataset_ids)):
        if extra and ds in extra:
            lic, is_nc = extra[ds]
            status = "non-commercial" if is_nc else ""
        else:
            info = dataset_info(ds)
            lic, is_nc, status = info.license, info.non_commercial, info.license_status
        flag = {"non-commercial": "NON-COMMERCIAL", "unspecified": "licence unspecified",
                "copyleft": "copyleft"}.get(status, "")
        rows.append((ds, lic, flag))
        if is_nc:
            nc.append(ds)
        if status == "unspecified":
            unspecified.append(ds)
    if not rows:
        return ""
    width = max(len(r[0]) for r in rows)
    lines = [f"Data licences ({len(rows)} dataset{'s' if len(rows) != 1 else ''}):"]
    lines += [f"  {ds:<{width}}  {lic}" + (f"  [{flag}]" if flag else "") for ds, lic, flag in rows]
    if nc:
        lines.append(f"Non-commercial: {', '.join(nc)}: results and models built on them may not be "
                     f"used commercially.")
    if unspecified:
        lines.append(f"No stated licence: {', '.join(unspecified)}: redistributed for research; decide knowingly.")
    return "\n".join(lines)
