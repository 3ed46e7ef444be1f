"""Paired per-seed changes against the teacher, grouped by build and protocol family: what every
point-level report (`harness results --by-point`, `harness report`) is computed from.

A compressed point's *build* is the set of model keys that carry its grid name (one per language;
a model key ends in a hash of its final stage's cache key). Two builds of one name (a changed
stage version, another distillation seed, a budget changed under the same name) are never pooled
silently: where a language has more than one model key for a name, every model key becomes its own
group (one language each), and `pool_builds=True` is the explicit way to average them, listing the
builds pooled. A protocol family is its label (profile/precision, teacher-label settings), told
apart by its hash where two families read alike, so a report never picks one by row order.
"""
from __future__ import annotations

import hashlib
import json
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Sequence

from core.errors import UserError
from core.registry import unknown_name_message
from harness.store import PROTOCOL_LABELS, Store

SPLITS = ("test", "dev")

_SQL = f"""
SELECT m.name, m.kind, m.teacher_key, m.language AS model_language, m.compression_ratio,
       m.params_total, m.manifest, r.model_key, r.task, r.language, r.seed, r.protocol_hash, r.derived,
       s.value, coalesce(p.label, '?') AS protocol
FROM runs r
JOIN scores s ON s.run_id = r.run_id AND s.split = ? AND s.is_main
JOIN models m ON m.model_key = r.model_key
LEFT JOIN {PROTOCOL_LABELS} p ON p.protocol_hash = r.protocol_hash
WHERE r.status = 'done'
ORDER BY r.model_key, r.task, r.language, r.protocol_hash, r.seed
"""

Cell = tuple[str, str]   # (task, language)


@dataclass(frozen=True)
class GroupKey:
    """One row of a point-level report: a point's build under one protocol family."""
    point: str
    build: str          # a short id of the build's model keys ("pooled(n)" when pooled explicitly)
    teacher: str
    protocol: str


@dataclass
class Group:
    key: GroupKey
    model_keys: tuple[str, ...]
    cells: dict[Cell, dict[int, float]] = field(default_factory=dict)   # cell -> seed -> change
    scores: dict[Cell, dict[int, tuple[float, float]]] = field(default_factory=dict)  # -> (score, teacher's)
    derived: set[Cell] = field(default_factory=set)
    hashes: dict[Cell, str] = field(default_factory=dict)   # each cell's protocol hash
    fewer: set[float] = field(default_factory=set)                       # % fewer parameters
    params: set[int] = field(default_factory=set)


def build_id(model_keys: Sequence[str]) -> str:
    """A short, stable id of a set of model keys (the same keys in any order give the same id)."""
    return hashlib.sha256("\n".join(sorted(model_keys)).encode()).hexdigest()[:8]


def recipe_id(manifest: Any) -> str | None:
    """A short id of how a compressed model was made, the same in every language: its teacher and
    each stage's name, settings and seed from the manifest (not the data or the cache keys, which
    differ per language). None for a model without a manifest."""
    m = json.loads(manifest) if isinstance(manifest, str) else manifest
    chain = (m or {}).get("chain") if isinstance(m, dict) else None
    if not chain:
        return None
    payload = [(m.get("teacher") or {}).get("name"),
               [[e.get("stage"), e.get("config"), e.get("seed")] for e in chain]]
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:8]


def point_name(row: dict[str, Any]) -> str:
    """The grid's point name: a compressed point's display name is teacher--language--point."""
    prefix = f"{row['teacher_key']}--{row['model_language']}--"
    return row["name"][len(prefix):] if row["name"].startswith(prefix) else row["name"]


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise UserError(f"--split {split!r} is not a scored split: choose test (to report) or dev "
                        "(to choose: the dev score of each run's kept epoch)")
    return split


def tell_apart_same_labels(rows: list[dict[str, Any]]) -> None:
    """Two protocols of one task that read alike (say, two `standard` families whose epochs differ)
    would pool into one row and overwrite each other's seeds: where a point's task and language has
    runs under more than one protocol hash with the same label, each gets its hash in the label."""
    hashes: dict[tuple, set[str]] = defaultdict(set)
    for r in rows:
        hashes[(r["name"], r["protocol"], r["task"], r["language"])].add(r["protocol_hash"])
    for r in rows:
        if len(hashes[(r["name"], r["protocol"], r["task"], r["language"])]) > 1:
            r["protocol"] = f"{r['protocol']} #{r['protocol_hash'][:6]}"


@dataclass(frozen=True)
class Scope:
    """Which runs a report reads (None: all): one grid's models, tasks, languages, seeds and protocols."""
    model_keys: frozenset[str] | None = None
    tasks: frozenset[str] | None = None
    languages: frozenset[str] | None = None
    seeds: frozenset[int] | None = None
    protocol_hashes: frozenset[str] | None = None

    def keeps(self, row: dict[str, Any]) -> bool:
        return all(allowed is None or row[column] in allowed for column, allowed in (
            ("model_key", self.model_keys), ("task", self.tasks), ("language", self.languages),
            ("seed", self.seeds), ("protocol_hash", self.protocol_hashes)))


def load_rows(store: Store, split: str = "test", tasks: Sequence[str] = (),
              scope: Scope | None = None) -> list[dict[str, Any]]:
    """Every finished run's main score on `split`, with its model and protocol label."""
    columns, raw = store.query(_SQL, [check_split(split)], read_only=True)
    rows = [dict(zip(columns, r)) for r in raw]
    if scope is not None:
        rows = [r for r in rows if scope.keeps(r)]
    if tasks:
        stored = sorted({r["task"] for r in rows})
        for task in tasks:
            if task not in stored:
                raise UserError(unknown_name_message("task", task, stored))
        rows = [r for r in rows if r["task"] in tasks]
    tell_apart_same_labels(rows)
    return rows


def per_seed_means(cells: dict[Cell, dict[int, float]]) -> list[float]:
    """Over the seeds every cell has, in seed order: each seed's mean over the cells."""
    common = sorted(set.intersection(*(set(v) for v in cells.values()))) if cells else []
    return [statistics.mean(v[s] for v in cells.values()) for s in common]


def teacher_scores(rows: list[dict[str, Any]]) -> dict[tuple, float]:
    """(teacher key, task, language, protocol hash, seed) -> the teacher's score."""
    return {(r["model_key"], r["task"], r["language"], r["protocol_hash"], r["seed"]): r["value"]
            for r in rows if r["kind"] == "teacher"}


def _builds_of(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, dict[str, set[str]]]]:
    """(point, teacher, protocol) -> recipe -> language -> the model keys carrying that name there
    (models without a manifest share one unknown recipe: their keys still tell builds apart)."""
    found: dict[tuple, dict[str, dict[str, set[str]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(set)))
    for r in rows:
        if r["kind"] != "teacher":
            recipe = recipe_id(r["manifest"]) or "unknown"
            found[(point_name(r), r["teacher_key"], r["protocol"])][recipe][r["language"]].add(r["model_key"])
    return found


def paired_groups(store: Store, split: str = "test", tasks: Sequence[str] = (),
                  pool_builds: bool = False, scope: Scope | None = None) -> tuple[dict[GroupKey, Group], list[str]]:
    """Per build and protocol family, each (task, language) cell's per-seed change against the
    teacher's score on the same task, language, protocol and seed: score / teacher's - 1. Seeds
    the teacher lacks are left out. Returns the groups and notes on what was split or pooled."""
    rows = load_rows(store, split, tasks, scope)
    teacher = teacher_scores(rows)
    builds = _builds_of(rows)
    notes: list[str] = []
    group_of: dict[tuple[str, str], GroupKey] = {}   # (model key, protocol) -> its group
    keys_of: dict[GroupKey, set[str]] = defaultdict(set)
    for (name, teach, proto), recipes in sorted(builds.items()):
        all_keys = sorted({k for by_lang in recipes.values() for keys in by_lang.values() for k in keys})
        split = {lang for by_lang in recipes.values() for lang, keys in by_lang.items() if len(keys) > 1}
        if pool_builds and (len(recipes) > 1 or split):
            key = GroupKey(name, f"pooled({len(all_keys)})", teach, proto)
            notes.append(f"{name} ({proto}): {len(all_keys)} builds pooled: " + ", ".join(all_keys))
            for mk in all_keys:
                group_of[(mk, proto)] = key
            continue
        if len(recipes) > 1 or split:
            notes.append(f"{name} ({proto}) has {len(all_keys)} builds ({', '.join(all_keys)}): one row per recipe "
                         "(the same stages, settings and seeds in every language), and per build and language "
                         "where one recipe was built twice in a language; --pool-builds averages them")
        for by_lang in recipes.values():
            keys = sorted({k for ks in by_lang.values() for k in ks})
            if any(len(ks) > 1 for ks in by_lang.values()):
                for mk in keys:
                    group_of[(mk, proto)] = GroupKey(name, build_id([mk]), teach, proto)
            else:
                key = GroupKey(name, build_id(keys), teach, proto)
                for mk in keys:
                    group_of[(mk, proto)] = key
    # A pooled cell holds several builds' changes on one seed: their mean is the seed's change.
    collected: dict[GroupKey, dict[Cell, dict[int, list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list)))
    raw: dict[GroupKey, dict[Cell, dict[int, list[tuple[float, float]]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list)))
    groups: dict[GroupKey, Group] = {}
    for r in rows:
        if r["kind"] == "teacher":
            continue
        ref = teacher.get((r["teacher_key"], r["task"], r["language"], r["protocol_hash"], r["seed"]))
        if not ref:
            continue
        key = group_of[(r["model_key"], r["protocol"])]
        keys_of[key].add(r["model_key"])
        group = groups.setdefault(key, Group(key, ()))
        cell = (r["task"], r["language"])
        collected[key][cell][r["seed"]].append(r["value"] / ref - 1)
        raw[key][cell][r["seed"]].append((r["value"], ref))
        group.hashes[cell] = r["protocol_hash"]
        if r["derived"]:
            group.derived.add(cell)
        if r["compression_ratio"]:
            group.fewer.add(round(100 * (1 - 1 / r["compression_ratio"]), 1))
        if r["params_total"]:
            group.params.add(int(r["params_total"]))
    for key, group in groups.items():
        group.model_keys = tuple(sorted(keys_of[key]))
        group.cells = {c: {s: statistics.mean(v) for s, v in seeds.items()}
                       for c, seeds in collected[key].items()}
        group.scores = {c: {s: (statistics.mean(a for a, _ in v), v[0][1]) for s, v in seeds.items()}
                        for c, seeds in raw[key].items()}
    return groups, notes


def find_baseline(groups: dict[GroupKey, Group], baseline: str) -> list[GroupKey]:
    """The groups a `--baseline NAME` or `NAME@BUILD` names; one error when it names none, or
    names one point with several builds (the user says which)."""
    name, _, build = baseline.partition("@")
    known = sorted({k.point for k in groups})
    if name not in known:
        raise UserError(unknown_name_message("baseline point", name, known))
    found = [k for k in groups if k.point == name and (not build or k.build == build)]
    if not found:
        builds = sorted({k.build for k in groups if k.point == name})
        raise UserError(f"baseline point {name!r} has no build {build!r}; its builds: {', '.join(builds)}")
    per_family: dict[tuple[str, str], set[str]] = defaultdict(set)
    for k in found:
        per_family[(k.teacher, k.protocol)].add(k.build)
    ambiguous = {fam: b for fam, b in per_family.items() if len(b) > 1}
    if ambiguous:
        builds = sorted(set().union(*ambiguous.values()))
        raise UserError(f"baseline point {name!r} has {len(builds)} builds ({', '.join(builds)}): name one "
                        f"as --baseline {name}@BUILD")
    return found


def against_baseline(groups: dict[GroupKey, Group], baseline: str) -> dict[GroupKey, Group]:
    """Each group's per-seed changes minus those of the `baseline` point (same teacher, protocol,
    task, language and seed): what the point gains or loses over the baseline, in points of the
    teacher's score. Cells or seeds the baseline lacks are left out; the baseline itself too."""
    bases = {(k.teacher, k.protocol): groups[k] for k in find_baseline(groups, baseline)}
    out: dict[GroupKey, Group] = {}
    for key, group in groups.items():
        base = bases.get((key.teacher, key.protocol))
        if base is None or base.key == key:
            continue
        diff = {c: {s: v - base.cells[c][s] for s, v in seeds.items() if s in base.cells.get(c, {})}
                for c, seeds in group.cells.items()}
        diff = {c: v for c, v in diff.items() if v}
        if diff:
            out[key] = Group(key, group.model_keys, diff, {}, group.derived & set(diff), group.hashes,
                             group.fewer, group.params)
    return out
