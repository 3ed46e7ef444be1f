"""Hugging Face `datasets` as a source for user-defined tasks.

A task YAML dataset with `source: hf` names `path` (a packaged builder such as `json`/`csv` with
`data_files`, a local directory, or a Hub id with a pinned `revision`), optionally `name`,
`data_dir`, the split names (`splits: {train: train, dev: validation, test: test}`) and the
columns (`columns: {text: ..., label: ...}` or `{tokens: ..., tags: ...}`). ClassLabel integers
are mapped to their names. Remote code is never run (datasets 5 has no dataset scripts at all).
Relative local paths are taken relative to the task YAML's directory.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from core.errors import ConfigError, DataError
from tasks.spec import DatasetDef
from tasks.types import Example, SequenceExample, TokenExample

DEFAULT_COLUMNS = {"sequence": {"text": "text", "label": "label"},
                   "token": {"tokens": "tokens", "tags": "tags"}}


def _packaged_builders() -> set[str]:
    from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES
    return set(_PACKAGED_DATASETS_MODULES)


def _local(value: str, base_dir: Path) -> str:
    """`value` made absolute when it names something relative to the task file."""
    p = Path(value).expanduser()
    if not p.is_absolute() and (base_dir / p).exists():
        return str((base_dir / p).resolve())
    return str(p) if p.is_absolute() else value


def _data_files(spec: Any, base_dir: Path) -> Any:
    if spec is None:
        return None
    if isinstance(spec, str):
        return _local(spec, base_dir)
    if isinstance(spec, list):
        return [_local(s, base_dir) for s in spec]
    return {k: _data_files(v, base_dir) for k, v in spec.items()}


def _names(feature: Any) -> list[str] | None:
    """ClassLabel names of a feature, or of the items of a list feature."""
    from datasets import ClassLabel
    if isinstance(feature, ClassLabel):
        return list(feature.names)
    inner = getattr(feature, "feature", None)
    return list(inner.names) if isinstance(inner, ClassLabel) else None


def _as_label(value: Any, names: list[str] | None) -> str:
    if names is not None and isinstance(value, int) and not isinstance(value, bool):
        return names[value]
    return str(value)


def load_hf_splits(ddef: DatasetDef, kind: str, base_dir: Path, cache_dir: str | None = None
                   ) -> dict[str, list[Example]]:
    """The published splits of a Hugging Face dataset as harness examples (by harness split name)."""
    import datasets

    path = _local(ddef.path or "", base_dir)
    is_local = Path(path).exists()
    if not is_local and ddef.path not in _packaged_builders() and not ddef.revision:
        raise ConfigError(f"Hugging Face dataset {ddef.path!r}: pin a `revision` (a commit or tag) so that "
                          f"results stay reproducible")
    try:
        dsd = datasets.load_dataset(path, name=ddef.name, revision=ddef.revision, data_dir=ddef.data_dir,
                                    data_files=_data_files(ddef.data_files, base_dir), cache_dir=cache_dir)
    except (ConfigError, DataError):
        raise
    except Exception as exc:  # the Hub client and builders raise many types; name the source
        raise DataError(f"cannot load Hugging Face dataset {ddef.path!r}"
                        f"{f' ({ddef.name})' if ddef.name else ''}: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''} (check path/data_files/revision, "
                        f"or the network; HF_HUB_OFFLINE=1 reads the local cache)") from None
    cols = {**DEFAULT_COLUMNS[kind], **ddef.columns}
    wanted = ("text", "label") if kind == "sequence" else ("tokens", "tags")
    out: dict[str, list[Example]] = {}
    for split, hf_split in ddef.splits.items():
        if hf_split not in dsd:
            raise ConfigError(f"Hugging Face dataset {ddef.path!r} has no split {hf_split!r} "
                              f"(for {split}); it has: {', '.join(dsd)}")
        ds = dsd[hf_split]
        for role in wanted:
            if cols[role] not in ds.column_names:
                raise ConfigError(f"Hugging Face dataset {ddef.path!r} split {hf_split!r} has no column "
                                  f"{cols[role]!r} (the {role} column); columns: {', '.join(ds.column_names)}")
        if kind == "sequence":
            names = _names(ds.features[cols["label"]])
            out[split] = [SequenceExample(str(t), _as_label(lab, names))
                          for t, lab in zip(ds[cols["text"]], ds[cols["label"]])]
        else:
            names = _names(ds.features[cols["tags"]])
            examples = []
            for i, (toks, tags) in enumerate(zip(ds[cols["tokens"]], ds[cols["tags"]])):
                if len(toks) != len(tags):
                    raise DataError(f"Hugging Face dataset {ddef.path!r} split {hf_split!r} row {i}: "
                                    f"{len(toks)} tokens but {len(tags)} tags")
                examples.append(TokenExample(tuple(map(str, toks)), tuple(_as_label(t, names) for t in tags)))
            out[split] = examples
    return out
