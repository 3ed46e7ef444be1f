"""From a grid to a build plan: named points (teacher x language x chain), the cache key of every
stage, which stages are cached, and every point's parameter count computed from shapes alone.

Point names come from explicit `points` and from the product of `axes`; each point is crossed
with the grid's teachers and languages (or those the point names) and gets the model key
`<teacher>--<language>--<point>`. A stage's shape is predicted from its parent's (read from the
cache when the stage is already built), so `harness compress --dry-run` prints sizes before any
training.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from compression.cache import StageCache, stage_key, teacher_key
from compression.config import CompressionSection
from compression.recipes import expand_recipe, point_name
from compression.schema import DistillStage, RecipeParams, VocabStage, stage_chain_label
from compression.stages import stage_module, uses_data, uses_seed
from compression.stages.distill import distill_config
from compression.stages.vocab import count_tokens, kept_count
from compression.tensors.modelio import load_tokenizer, read_config
from compression.tensors.shapes import ModelShape
from compression.texts import LanguageText
from core.errors import ConfigError, UserError
from core.registry import did_you_mean
from models.params import ParamCounts


@dataclass
class PlannedStage:
    index: int                        # 1-based position in the chain
    cfg: object
    key: str
    parent_key: str
    data_fingerprint: str | None
    seed: int | None
    shape: ModelShape                 # after the stage (real when cached)
    cached: bool
    distill_teacher_index: int | None = None   # chain position of the distillation teacher
    distill_teacher_key: str | None = None


@dataclass
class PlannedPoint:
    teacher: str
    language: str
    point: str
    teacher_key: str
    teacher_shape: ModelShape
    stages: list[PlannedStage]

    @property
    def name(self) -> str:
        """The readable name: teacher, language and point."""
        return f"{self.teacher}--{self.language}--{self.point}"

    @property
    def model_key(self) -> str:
        """The name plus a short hash of the final stage's cache key: two grids that give a point
        the same name but build it differently (another distillation budget, say) get different
        keys, so their runs never share a row in the results store."""
        return f"{self.name}--{self.key.rsplit('-', 1)[-1][:8]}"

    @property
    def key(self) -> str:
        return self.stages[-1].key

    @property
    def shape(self) -> ModelShape:
        return self.stages[-1].shape

    @property
    def params(self) -> ParamCounts:
        return self.shape.params()

    @property
    def teacher_params(self) -> ParamCounts:
        return self.teacher_shape.params()

    @property
    def compression_ratio(self) -> float:
        return self.teacher_params.total / self.params.total

    @property
    def stage_chain(self) -> str:
        return stage_chain_label([s.cfg for s in self.stages])


@dataclass
class Plan:
    points: list[PlannedPoint]
    cache: StageCache
    teacher_dirs: dict[str, Path]
    teacher_sources: dict[str, dict]
    texts: dict[str, LanguageText]
    section: CompressionSection

    def stages(self) -> list[PlannedStage]:
        """Distinct stages in build order (first use)."""
        seen: dict[str, PlannedStage] = {}
        for p in self.points:
            for s in p.stages:
                seen.setdefault(s.key, s)
        return list(seen.values())

    def to_build(self) -> list[PlannedStage]:
        return [s for s in self.stages() if not s.cached]

    def cached(self) -> list[PlannedStage]:
        return [s for s in self.stages() if s.cached]

    def users(self, key: str) -> list[str]:
        return [p.model_key for p in self.points if any(s.key == key for s in p.stages)]


# --------------------------------------------------------------------------------------------------
# Expansion


@dataclass(frozen=True)
class PointChain:
    teacher: str
    language: str
    point: str
    chain: tuple


def _merged_params(section: CompressionSection, teacher: str, params: dict) -> RecipeParams:
    merged = {**section.defaults, **section.per_teacher.get(teacher, {}), **params}
    return RecipeParams.model_validate(merged)


def _with_section_distill(chain: list, section: CompressionSection) -> tuple:
    out = []
    for stage in chain:
        if isinstance(stage, DistillStage) and section.distill:
            stage = stage.model_copy(update={"settings": {**section.distill, **stage.settings}})
        out.append(stage)
    return tuple(out)


def expand_points(section: CompressionSection, teachers: list[str], languages: list[str]) -> list[PointChain]:
    """Every (teacher, language, point name, chain) the section describes."""
    for name in section.per_teacher:
        if name not in teachers:
            raise ConfigError(f"compression.per_teacher: {name!r} is not a teacher of the grid"
                              f"{did_you_mean(name, teachers)}; teachers: {teachers}")
    specs: list[tuple[str, dict | None, list | None, str | None, list[str], list[str]]] = []
    if section.axes:
        keys = list(section.axes)
        for values in itertools.product(*(section.axes[k] for k in keys)):
            params = dict(zip(keys, values))
            specs.append(("", params, None, None, teachers, languages))
    for p in section.points:
        for field_name, wanted, known in (("teachers", p.teachers, teachers), ("languages", p.languages, languages)):
            for w in wanted or []:
                if w not in known:
                    raise ConfigError(f"compression.points[{p.name}].{field_name}: {w!r} is not in the grid's "
                                      f"{field_name}{did_you_mean(w, known)}; {field_name}: {known}")
        specs.append((p.name, p.params, list(p.chain) if p.chain else None, p.recipe,
                      p.teachers or teachers, p.languages or languages))

    out: list[PointChain] = []
    seen: dict[tuple[str, str, str], tuple] = {}
    for name, params, chain, recipe, point_teachers, point_languages in specs:
        for teacher in point_teachers:
            if chain is None:
                try:
                    rp = _merged_params(section, teacher, params or {})
                    stages = expand_recipe(recipe or section.recipe, rp)
                except UserError as err:
                    raise ConfigError(f"compression point {name or params}: {err}") from None
                except ValueError as err:  # a pydantic error from merged parameters
                    raise ConfigError(f"compression point {name or params} ({teacher}): {err}") from None
                point = name or point_name(rp, tuple(section.axes))
            else:
                stages, point = chain, name
            if not stages:
                raise ConfigError(f"compression point {point!r} has no stage: every recipe parameter is "
                                  "empty (set layers, ffn, hidden or vocab), or give a chain")
            stages = _with_section_distill(list(stages), section)
            for language in point_languages:
                key = (teacher, language, point)
                if key in seen:
                    if seen[key] != stages:
                        raise ConfigError(f"compression: two points are named {point!r} for {teacher}/{language} "
                                          "with different chains; rename one")
                    continue
                seen[key] = stages
                out.append(PointChain(teacher, language, point, stages))
    if not out:
        raise ConfigError("compression: the section describes no point; add 'axes' or 'points'")
    return out


# --------------------------------------------------------------------------------------------------
# Planning


def _default_resolve(source: str, revision: str | None) -> Path:
    from models.sources import resolve
    return Path(resolve(source, revision=revision).path)


def _distill_teacher_index(stage: DistillStage, index: int, where: str) -> int:
    """The chain position (0 = the teacher, j = after stage j) that distils stage `index`."""
    if stage.teacher == "original":
        return 0
    if stage.teacher == "auto":
        if index < 2:
            raise ConfigError(f"{where}: a distill stage first in a chain has no teacher to learn from "
                              "(set teacher: original to distil the teacher into itself)")
        return index - 2
    if stage.teacher >= index:
        raise ConfigError(f"{where}: teacher {stage.teacher} names a model at or after this stage; "
                          f"use 0..{index - 1} (0 = the original teacher)")
    return stage.teacher


def _validate_distill(stage: DistillStage, seed: int, where: str) -> None:
    try:
        distill_config(stage.settings, seed)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


def make_plan(grid, *, data_dir: Path | str | None, cache_dir: Path | str | None = None,
              resolve: Callable[[str, str | None], Path] | None = None) -> Plan:
    """Expand `grid.compression` and key, shape and cache-check every stage.

    `grid` needs `teachers` (name, source, revision), `languages` and `compression`;
    `resolve(source, revision) -> local dir` defaults to models.sources.resolve."""
    section: CompressionSection | None = getattr(grid, "compression", None)
    if section is None:
        raise ConfigError("the grid has no 'compression' section; add one (see examples/paper.yaml)")
    if isinstance(section, dict):
        section = CompressionSection.model_validate(section)
    teachers = {t.name: t for t in grid.teachers}
    if not teachers:
        raise ConfigError("compression needs at least one entry in 'teachers'")
    resolve = resolve or _default_resolve
    cache = StageCache(cache_dir if cache_dir is not None else section.cache_dir)
    chains = expand_points(section, list(teachers), list(grid.languages))

    teacher_dirs: dict[str, Path] = {}
    teacher_keys: dict[str, str] = {}
    teacher_shapes: dict[str, ModelShape] = {}
    for name in dict.fromkeys(c.teacher for c in chains):
        spec = teachers[name]
        path = Path(resolve(spec.source, spec.revision))
        teacher_dirs[name] = path
        teacher_keys[name] = teacher_key(spec.source, spec.revision, path)
        teacher_shapes[name] = ModelShape.from_config(read_config(path))
    texts = {lang: LanguageText(section.text, lang, Path(data_dir) if data_dir else None, section.seed)
             for lang in dict.fromkeys(c.language for c in chains)}

    points = []
    vocab_sizes: dict[tuple, int] = {}
    token_counts: dict[tuple, object] = {}
    for c in chains:
        keys = [teacher_keys[c.teacher]]
        shape = teacher_shapes[c.teacher]
        stages: list[PlannedStage] = []
        for index, cfg in enumerate(c.chain, start=1):
            where = f"compression point {c.point!r} ({c.teacher}, {c.language}), stage {index} {cfg.label()}"
            try:
                stage_module(cfg.stage).check(shape, cfg)
            except ConfigError as err:
                raise ConfigError(f"{where}: {err}") from None
            d_index = d_key = None
            if isinstance(cfg, DistillStage):
                d_index = _distill_teacher_index(cfg, index, where)
                d_key = keys[d_index]
                _validate_distill(cfg, section.seed, where)
            fp = texts[c.language].fingerprint if uses_data(cfg) else None
            seed = section.seed if uses_seed(cfg) else None
            key = stage_key(keys[-1], cfg, data_fingerprint=fp, seed=seed, distill_teacher_key=d_key)
            cached = cache.has(key)
            if cached:
                shape = ModelShape.from_config(read_config(cache.path(key)))
            elif isinstance(cfg, VocabStage) and texts[c.language].is_local and not any(
                    isinstance(s.cfg, VocabStage) for s in stages):
                # the parent still has the teacher's tokenizer: count exactly what would be kept
                memo_key = (c.teacher, c.language, cfg.model_dump_json())
                if memo_key not in vocab_sizes:
                    lines = texts[c.language].texts()
                    if (c.teacher, c.language) not in token_counts:
                        token_counts[(c.teacher, c.language)] = count_tokens(
                            load_tokenizer(teacher_dirs[c.teacher]), lines)
                    try:
                        vocab_sizes[memo_key] = kept_count(teacher_dirs[c.teacher], cfg, lines,
                                                           token_counts[(c.teacher, c.language)],
                                                           teacher_source=teachers[c.teacher].source)
                    except ConfigError as err:
                        raise ConfigError(f"{where}: {err}") from None
                shape = shape.with_(vocab=vocab_sizes[memo_key])
            else:
                shape = stage_module(cfg.stage).predict_shape(shape, cfg)
            stages.append(PlannedStage(index, cfg, key, keys[-1], fp, seed, shape, cached, d_index, d_key))
            keys.append(key)
        points.append(PlannedPoint(c.teacher, c.language, c.point, teacher_keys[c.teacher],
                                   teacher_shapes[c.teacher], stages))
    sources = {n: {"name": n, "source": t.source, "revision": t.revision} for n, t in teachers.items()}
    return Plan(points, cache, teacher_dirs, sources, texts, section)


# --------------------------------------------------------------------------------------------------
# Printing


def human(n: int) -> str:
    for unit, div in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.2f}{unit}"
    return str(n)


def format_table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def format_plan(plan: Plan) -> str:
    n_t = len({p.teacher for p in plan.points})
    n_l = len({p.language for p in plan.points})
    n_p = len({p.point for p in plan.points})
    todo, done = plan.to_build(), plan.cached()
    out = [f"compression plan: {len(plan.points)} models ({n_t} teacher(s) x {n_l} language(s) x {n_p} point(s)); "
           f"{len(todo)} stage(s) to build, {len(done)} cached (cache: {plan.cache.root})", ""]
    rows = []
    for p in plan.points:
        params = p.params
        approx = "" if all(s.shape.exact for s in p.stages) else "<="
        state = "cached" if all(s.cached for s in p.stages) else f"{sum(not s.cached for s in p.stages)} to build"
        rows.append([p.model_key, p.stage_chain, f"{approx}{params.total:,}", f"{params.embedding / params.total:.0%}",
                     f"{p.compression_ratio:.2f}x", f"{1 - 1 / p.compression_ratio:.1%}", state])
    out.append(format_table(rows, ["model", "chain", "params", "emb", "ratio", "fewer", "status"]))
    teachers = {p.teacher: p for p in plan.points}
    out.append("")
    out.append("teachers: " + "; ".join(f"{t} {p.teacher_shape.describe()} = {p.teacher_params.total:,} params"
                                       for t, p in teachers.items()))
    if todo:
        out += ["", "stages to build, in order:"]
        for s in todo:
            users = plan.users(s.key)
            data = "" if s.data_fingerprint is None else f" data {s.data_fingerprint[:8]}"
            out.append(f"  {s.key:<30} {s.cfg.label():<32} -> {s.shape.describe()}{data}; "
                       f"used by {len(users)} point(s): {', '.join(users[:3])}{' ...' if len(users) > 3 else ''}")
    return "\n".join(out)
