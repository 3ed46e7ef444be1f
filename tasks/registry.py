"""The task registry: task names, their specs, and loading a task's data for one language.

Tasks are the YAML files in tasks/definitions/ (plus any directory in $HARNESS_TASK_DIRS, separated
by the OS path separator, or added with `add_task_dir`). A file may `extends: <task>` another: it
inherits everything, its `datasets` and `metric_options` are merged over the base's, and its
`languages` replace the base's, so a task variant (another dataset for a language) is a few lines.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from core.errors import ConfigError, DataError, UserError
from core.registry import unknown_name_message
from tasks._config import load_yaml, validate
from tasks.catalogue import CatalogueEntry, license_notice, load_catalogue
from tasks.fetch import check_files, resolve_data_dir
from tasks.readers import read_file
from tasks.spec import LanguageSource, TaskDef, TaskSpec
from tasks.splits import derive
from tasks.types import SPLITS, Example, SequenceExample, TaskData, TokenExample

DEFINITIONS = Path(__file__).parent / "definitions"
ENV_TASK_DIRS = "HARNESS_TASK_DIRS"

_extra_dirs: list[Path] = []
_specs: dict[str, TaskSpec] = {}


def add_task_dir(path: str | os.PathLike) -> None:
    """Also read task YAMLs from `path` (user-defined tasks)."""
    p = Path(path)
    if not p.is_dir():
        raise UserError(f"task directory {p} does not exist")
    if p not in _extra_dirs:
        _extra_dirs.append(p)
        _specs.clear()


def _task_files() -> dict[str, Path]:
    dirs = [DEFINITIONS, *_extra_dirs]
    dirs += [Path(d) for d in os.environ.get(ENV_TASK_DIRS, "").split(os.pathsep) if d]
    files: dict[str, Path] = {}
    for d in dirs:
        for f in sorted(d.glob("*.yaml")):
            if f.stem in files and files[f.stem] != f:
                raise ConfigError(f"task {f.stem!r} is defined twice: {files[f.stem]} and {f}")
            files[f.stem] = f
    return files


def task_names() -> list[str]:
    return sorted(_task_files())


def _raw_definition(name: str, files: dict[str, Path], chain: tuple[str, ...] = ()) -> tuple[dict, str | None]:
    if name not in files:
        raise UserError(unknown_name_message("task", name, list(files)))
    path = files[name]
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with name, kind, metrics, datasets, languages")
    if data.get("name", name) != name:
        raise ConfigError(f"{path}: field name: {data.get('name')!r} must match the file name {name!r}")
    base_name = data.pop("extends", None)
    if base_name is None:
        return data, None
    if base_name in chain or base_name == name:
        cycle = " -> ".join((*chain, name, base_name))
        raise ConfigError(f"{path}: field extends: {base_name!r} extends itself (cycle {cycle})")
    if base_name not in files:
        raise ConfigError(f"{path}: field extends: " + unknown_name_message("task", base_name, list(files)))
    base, _ = _raw_definition(base_name, files, (*chain, name))
    merged = {**base, **data}
    for key in ("datasets", "metric_options"):
        merged[key] = {**(base.get(key) or {}), **(data.get(key) or {})}
    merged["name"] = name
    return merged, base_name


def get_task(name: str | TaskSpec) -> TaskSpec:
    if isinstance(name, TaskSpec):
        return name
    if name not in _specs:
        files = _task_files()
        data, base = _raw_definition(name, files)
        data.setdefault("name", name)
        definition = validate(TaskDef, data, files[name])
        from tasks.metrics import METRICS, check_options
        for m in definition.metrics:
            if m not in METRICS:
                raise ConfigError(f"{files[name]}: field metrics: "
                                  + unknown_name_message("metric", m, METRICS.names()))
        try:
            check_options(definition.metric_options)
        except ConfigError as exc:
            raise ConfigError(f"{files[name]}: field metric_options: {exc}") from None
        _specs[name] = TaskSpec(definition, files[name], extends=base)
    return _specs[name]


def has_data(task: str | TaskSpec, language: str) -> bool:
    return language in get_task(task).languages()


def required_files(task: str | TaskSpec, language: str) -> list[CatalogueEntry]:
    """The catalogue entries a task needs for a language (none for Hugging Face sources)."""
    src = get_task(task).source_for(language)
    cat = load_catalogue()
    return [cat.entry(p) for p in dict.fromkeys(src.files.values())] if src.definition.source == "catalogue" else []


# -- loading --------------------------------------------------------------------------------------
def _read_published(spec: TaskSpec, src: LanguageSource, data_dir: Path) -> dict[str, list[Example]]:
    if src.definition.source == "hf":
        from tasks.hf_source import load_hf_splits
        return load_hf_splits(src.definition, spec.kind, base_dir=spec.source_file.parent)
    check_files(required_files(spec, src.language), data_dir)
    out = {}
    for split, rel in src.files.items():
        out[split] = read_file(src.definition.reader, Path(data_dir) / rel, **src.definition.reader_options)
    return out


def _check_examples(spec: TaskSpec, where: dict[str, str], splits: dict[str, list[Example]]) -> None:
    want = TokenExample if spec.kind == "token" else SequenceExample
    for split, examples in splits.items():
        if not examples:
            raise DataError(f"{where.get(split, split)}: no examples in the {split} split of {spec.name}")
        if not isinstance(examples[0], want):
            raise ConfigError(f"{spec.source_file}: the reader of {where.get(split, split)} gives "
                              f"{type(examples[0]).__name__}s but task {spec.name!r} is of kind {spec.kind!r}")


def _labels(spec: TaskSpec, language: str, where: dict[str, str], splits: dict[str, list[Example]]) -> list[str]:
    declared = spec.labels_for(language)
    seen: dict[str, str] = {}
    for split, examples in splits.items():
        for ex in examples:
            for lab in (ex.tags if isinstance(ex, TokenExample) else (ex.label,)):
                seen.setdefault(lab, split)
    if declared is None:
        return sorted(seen)
    extra = [lab for lab in seen if lab not in declared]
    if extra:
        lab = extra[0]
        raise DataError(f"{where.get(seen[lab], seen[lab])}: label {lab!r} is not among the labels declared for "
                        f"{spec.name}/{spec.dataset_for(language)} ({', '.join(declared)}); add it to "
                        f"{spec.source_file}")
    return declared


def load_task_data(task: str | TaskSpec, language: str, data_dir: str | os.PathLike | None) -> TaskData:
    """Read, verify and (where declared) derive the train/dev/test data of a task in a language."""
    spec = get_task(task)
    src = spec.source_for(language)
    published = _read_published(spec, src, Path(data_dir) if data_dir is not None else resolve_data_dir(None))
    where = dict(src.files) if src.definition.source == "catalogue" else \
        {s: f"{src.definition.path}[{n}]" for s, n in src.definition.splits.items()}
    _check_examples(spec, where, published)
    splits, derivation = published, None
    files = {s: where[s] for s in published}
    if src.derivation is not None:
        d = src.derivation
        splits, derivation = derive(published, d.source, d.into, d.ratios, d.seed, d.stratify)
        files = {s: (where[d.source] if s in d.into else where[s]) for s in SPLITS}
    labels = _labels(spec, language, where, published)
    return TaskData(
        task=spec.name, language=language, dataset=src.dataset, kind=spec.kind, labels=labels,
        train=splits["train"], dev=splits["dev"], test=splits["test"],
        derived=src.derivation is not None, derivation=derivation,
        license=spec.license_for(language), files={s: files[s] for s in SPLITS},
        citation=spec.citation_for(language),
    )


def license_notice_for(pairs: Iterable[tuple[str, str]]) -> str:
    """The licence notice (see tasks.catalogue.license_notice) for the data of (task, language) pairs,
    Hugging Face sources of user tasks included; '' when there are none."""
    datasets: set[str] = set()
    extra: dict[str, tuple[str, bool]] = {}
    for task, language in pairs:
        spec = get_task(task)
        src = spec.source_for(language)
        datasets.add(src.dataset)
        if src.definition.source == "hf":
            extra[src.dataset] = (spec.license_for(language), spec.non_commercial_for(language))
    return license_notice(datasets, extra=extra)

