"""`harness report`: the headline measure, from one database, with its interval.

For each build of a compressed point and each protocol family (harness/paired.py): every (task,
language) cell's change against the teacher, paired by seed (score / teacher's score on the same
seed - 1), its mean over seeds, then the mean over cells with a 95% interval. Beside it: the
gains-as-zero variant (a cell that beats the teacher counts as no change), the median cell, the
mean without derived cells, the mean without the seeds on which the teacher is an outlier among
its sibling seeds *on dev*, and per-task and per-language rows.

Intervals: the headline interval is a paired percentile bootstrap over seeds within cells (each
resample draws every cell's seeds with replacement, a drawn seed bringing the student's and the
teacher's score together, 10,000 resamples, fixed generator seed); the t column is a Student-t
interval over the seeds every cell has of the per-seed mean over cells. With three seeds both are
rough; the bootstrap one is the narrower.
"""
from __future__ import annotations

import json
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from core.constants import ordered_tasks, task_rank
from core.errors import UserError
from harness.paired import Cell, Group, GroupKey, load_rows, paired_groups, per_seed_means
from harness.report import text_table
from harness.store import Store

RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
OUTLIER_MADS = 3.0        # a teacher seed this many scaled MADs from its siblings' median ...
OUTLIER_MIN_GAP = 0.02    # ... and at least this far (absolute score) is flagged


@dataclass
class Summary:
    """The mean over cells of their mean paired change, with its intervals."""
    cells: int
    mean: float | None
    boot_low: float | None = None
    boot_high: float | None = None
    t_low: float | None = None
    t_high: float | None = None
    t_seeds: int = 0


@dataclass
class PointReport:
    key: GroupKey
    group: Group
    overall: Summary
    gains_as_zero: float | None
    median_cell: float | None
    without_derived: Summary
    without_flagged: Summary
    by_task: dict[str, Summary] = field(default_factory=dict)
    by_language: dict[str, Summary] = field(default_factory=dict)


def bootstrap_interval(cells: Sequence[Sequence[float]], resamples: int = RESAMPLES,
                       seed: int = BOOTSTRAP_SEED) -> tuple[float, float] | tuple[None, None]:
    """95% percentile interval of the mean over cells of each cell's mean, resampling each cell's
    per-seed values with replacement (independently per cell)."""
    cells = [np.asarray(c, dtype=float) for c in cells if len(c)]
    if not cells:
        return None, None
    rng = np.random.default_rng(seed)
    total = np.zeros(resamples)
    for values in cells:
        idx = rng.integers(0, len(values), size=(resamples, len(values)))
        total += values[idx].mean(axis=1)
    means = total / len(cells)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def t_interval(cells: dict[Cell, dict[int, float]]) -> tuple[float | None, float | None, int]:
    """95% Student-t interval over the seeds every cell has of the per-seed mean over cells."""
    per_seed = per_seed_means(cells)
    if len(per_seed) < 2:
        return None, None, len(per_seed)
    from scipy import stats
    mean, sd = statistics.mean(per_seed), statistics.stdev(per_seed)
    half = float(stats.t.ppf(0.975, len(per_seed) - 1)) * sd / len(per_seed) ** 0.5
    return mean - half, mean + half, len(per_seed)


def summarize(cells: dict[Cell, dict[int, float]]) -> Summary:
    # cells and seeds in a fixed order: the bootstrap's draws (and the float sums) must not depend
    # on the order the database returned the rows in
    cells = {c: {s: cells[c][s] for s in sorted(cells[c])} for c in sorted(cells) if cells[c]}
    if not cells:
        return Summary(0, None)
    mean = statistics.mean(statistics.mean(v.values()) for v in cells.values())
    if min(len(v) for v in cells.values()) < 2:   # a one-seed cell has no spread to resample
        return Summary(len(cells), mean, t_seeds=min(len(v) for v in cells.values()))
    low, high = bootstrap_interval([list(v.values()) for v in cells.values()])
    t_low, t_high, n = t_interval(cells)
    return Summary(len(cells), mean, low, high, t_low, t_high, n)


def flagged_teacher_seeds(store: Store, tasks: Sequence[str] = ()) -> dict[tuple, tuple[str, float]]:
    """The teacher seeds that are outliers among their siblings on dev: (teacher, task, language,
    protocol hash, seed) -> (protocol label, the dev score). A seed is flagged when its dev score is more than
    OUTLIER_MADS scaled median absolute deviations (1.4826 x MAD) and OUTLIER_MIN_GAP from the
    median of the teacher's seeds on that cell (three seeds or more)."""
    rows = [r for r in load_rows(store, "dev", tasks) if r["kind"] == "teacher"]
    by_cell: dict[tuple, dict[int, float]] = defaultdict(dict)
    labels: dict[str, str] = {}
    for r in rows:
        by_cell[(r["model_key"], r["task"], r["language"], r["protocol_hash"])][r["seed"]] = r["value"]
        labels[r["protocol_hash"]] = r["protocol"]
    flagged = {}
    for cell, seeds in by_cell.items():
        if len(seeds) < 3:
            continue
        median = statistics.median(seeds.values())
        mad = 1.4826 * statistics.median(abs(v - median) for v in seeds.values())
        for seed, value in seeds.items():
            gap = abs(value - median)
            if gap > OUTLIER_MIN_GAP and gap > OUTLIER_MADS * mad:
                flagged[(*cell, seed)] = (labels[cell[3]], value)
    return flagged


def _is_flagged(group: Group, cell: Cell, seed: int, flagged: dict[tuple, Any]) -> bool:
    return (group.key.teacher, cell[0], cell[1], group.hashes.get(cell), seed) in flagged


def _without_flagged(group: Group, flagged: dict[tuple, Any]) -> dict[Cell, dict[int, float]]:
    return {c: {s: v for s, v in seeds.items() if not _is_flagged(group, c, s, flagged)}
            for c, seeds in group.cells.items()}


def point_report(group: Group, flagged: dict[tuple, Any]) -> PointReport:
    cell_means = [statistics.mean(v.values()) for v in group.cells.values() if v]
    by_task: dict[str, dict] = defaultdict(dict)
    by_language: dict[str, dict] = defaultdict(dict)
    for (task, lang), seeds in group.cells.items():
        by_task[task][(task, lang)] = seeds
        by_language[lang][(task, lang)] = seeds
    return PointReport(
        key=group.key, group=group, overall=summarize(group.cells),
        gains_as_zero=statistics.mean(min(m, 0.0) for m in cell_means) if cell_means else None,
        median_cell=statistics.median(cell_means) if cell_means else None,
        without_derived=summarize({c: v for c, v in group.cells.items() if c not in group.derived}),
        without_flagged=summarize(_without_flagged(group, flagged)),
        by_task={t: summarize(by_task[t]) for t in ordered_tasks(by_task)},
        by_language={lang: summarize(by_language[lang]) for lang in sorted(by_language)})


def _select(groups: dict[GroupKey, Group], points: Sequence[str], protocol: str | None) -> list[Group]:
    chosen = list(groups.values())
    if points:
        known = sorted({f"{k.point}@{k.build}" for k in groups})
        keep = []
        for want in points:
            name, _, build = want.partition("@")
            hit = [g for g in chosen if g.key.point == name and (not build or g.key.build == build)]
            if not hit:
                raise UserError(f"no point {want!r} with paired runs in this database; known: "
                                f"{', '.join(known) or 'none'}")
            keep += [g for g in hit if g not in keep]
        chosen = keep
    if protocol:
        labels = sorted({g.key.protocol for g in chosen})
        chosen = [g for g in chosen if g.key.protocol == protocol or g.key.protocol.startswith(protocol)]
        if not chosen:
            raise UserError(f"no protocol family {protocol!r} among the chosen points; known: {', '.join(labels)}")
    return sorted(chosen, key=lambda g: (g.key.teacher, g.key.protocol, g.key.point, g.key.build))


@dataclass
class Report:
    header: dict[str, Any]
    points: list[PointReport]
    flagged: dict[tuple, tuple[str, float]]
    notes: list[str]
    split: str
    teachers: list[list[str]] = field(default_factory=list)


def teacher_table(store: Store, split: str, tasks: Sequence[str] = ()) -> list[list[str]]:
    """Every teacher's main score per protocol family, task and language on `split` (mean ± sample
    std, n, the seeds), with the family's encoder learning rate: where a teacher's settings are
    chosen (on dev) and how strong the reference is."""
    rows = [r for r in load_rows(store, split, tasks) if r["kind"] == "teacher"]
    _, specs = store.query("SELECT protocol_hash, any_value(spec) FROM protocols GROUP BY 1", read_only=True)
    lr = {h: (json.loads(spec) if isinstance(spec, str) else spec or {}).get("learning_rate") for h, spec in specs}
    cells: dict[tuple, dict[int, float]] = defaultdict(dict)
    for r in rows:
        cells[(r["model_key"], r["protocol"], r["protocol_hash"], r["task"], r["language"])][r["seed"]] = r["value"]
    out = []
    for (teacher, proto, phash, task, lang), seeds in sorted(
            cells.items(), key=lambda kv: (kv[0][0], kv[0][4], task_rank(kv[0][3]), kv[0][1], kv[0][2])):
        values = list(seeds.values())
        out.append([teacher, task, lang, proto, f"{lr[phash]:g}" if lr.get(phash) else "?", _mean_sd(values),
                    " ".join(f"{s}:{v:.3f}" for s, v in sorted(seeds.items()))])
    return out


def build_report(store: Store, split: str = "test", points: Sequence[str] = (), protocol: str | None = None,
                 tasks: Sequence[str] = (), pool_builds: bool = False, command: str = "",
                 source: str | None = None) -> Report:
    """The report of `harness report`; `source` names the database as the user gave it."""
    groups, notes = paired_groups(store, split, tasks, pool_builds)
    chosen = _select(groups, points, protocol)
    flagged = flagged_teacher_seeds(store, tasks)
    header = _header(store, chosen, split, command, source or str(store.path))
    return Report(header=header, points=[point_report(g, flagged) for g in chosen],
                  flagged=flagged, notes=notes, split=split, teachers=teacher_table(store, split, tasks))


def _header(store: Store, groups: list[Group], split: str, command: str, source: str) -> dict[str, Any]:
    """What produced the numbers: the command, and the runs' git revisions, machines and
    precisions (all read from the data, so the same data and command give the same report)."""
    keys = sorted({k for g in groups for k in g.model_keys} | {g.key.teacher for g in groups})
    revs, cpus = set(), set()
    if keys:
        _, rows = store.query("SELECT DISTINCT git_rev, hardware FROM runs WHERE status = 'done' "
                              "AND list_contains(?, model_key)", [keys], read_only=True)
        for rev, hw in rows:
            rev = rev or "unknown"   # a run made from a tree with uncommitted changes says so
            revs.add(rev[:10] + ("-dirty" if rev.endswith("-dirty") else ""))
            hw = json.loads(hw) if isinstance(hw, str) else (hw or {})
            gpus = [g.get("name") for g in hw.get("gpus") or []]
            cpus.add(", ".join(gpus) if gpus else f"{hw.get('cpu_model', '?')} ({hw.get('cpu_logical_cores', '?')} cores)")
    return {"command": command, "database": source, "split": split,
            "run_git_revs": sorted(revs), "machines": sorted(cpus),
            "protocols": sorted({g.key.protocol for g in groups})}


# -- rendering ----------------------------------------------------------------------------------

def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:+.1f}%"


def interval(low: float | None, high: float | None) -> str:
    return "-" if low is None else f"[{100 * low:+.1f}, {100 * high:+.1f}]"


def _size(group: Group) -> str:
    f = sorted(group.fewer)
    fewer = "-" if not f else f"{f[0]:.1f}%" if f[0] == f[-1] else f"{f[0]:.1f}-{f[-1]:.1f}%"
    p = sorted(group.params)
    params = "" if not p else f" ({p[0] / 1e6:.2f}M)" if p[0] == p[-1] else f" ({p[0] / 1e6:.2f}-{p[-1] / 1e6:.2f}M)"
    return fewer + params


def _seeds(group: Group) -> str:
    counts = sorted({len(v) for v in group.cells.values()})
    return str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"


def tables(report: Report) -> list[tuple[str, list[str], list[list[str]], str]]:
    """(title, header, rows, legend) of each table of the report."""
    out = []
    head = ["point", "build", "fewer (params)", "protocol", "cells", "seeds", "mean change",
            "95% CI (bootstrap)", "95% CI (t, seeds)", "gains as 0", "median cell",
            "without derived", "without flagged teacher seeds"]
    rows = []
    for p in report.points:
        o, d, f = p.overall, p.without_derived, p.without_flagged
        rows.append([p.key.point, p.key.build, _size(p.group), p.key.protocol,
                     f"{o.cells}" + (f" ({len(p.group.derived)}†)" if p.group.derived else ""), _seeds(p.group),
                     pct(o.mean), interval(o.boot_low, o.boot_high),
                     interval(o.t_low, o.t_high) + (f" n={o.t_seeds}" if o.t_seeds else ""),
                     pct(p.gains_as_zero), pct(p.median_cell),
                     f"{pct(d.mean)} ({d.cells})" if p.group.derived else "= mean",
                     pct(f.mean) if f.mean != o.mean else "= mean"])
    out.append((f"Change against the teacher, mean over cells ({report.split} scores)", head, rows,
                "change: score / teacher's score on the same task, language, protocol and seed - 1, "
                "averaged over seeds within a cell, then over cells. 95% CI (bootstrap): paired percentile "
                f"bootstrap over seeds within cells ({RESAMPLES:,} resamples); 95% CI (t): Student-t over the "
                "seeds every cell has of the per-seed mean over cells; no interval where a cell has one seed. gains as 0: cells above the teacher "
                "count as 0. † derived splits (a split made from another; never silently averaged: "
                "'without derived' leaves them out). Flagged teacher seeds: see below."))
    cell_head = ["point", "build", "protocol", "task", "language", "teacher", "student", "change", "per seed"]
    cell_rows = []
    for p in report.points:
        k = p.key
        for (task, lang) in sorted(p.group.cells, key=lambda c: (c[1], task_rank(c[0]))):
            seeds = p.group.cells[(task, lang)]
            pairs = p.group.scores.get((task, lang), {})
            marks = "".join(f" ‡{s}" for s in seeds if _is_flagged(p.group, (task, lang), s, report.flagged))
            teacher = [t for _, t in pairs.values()]
            student = [s for s, _ in pairs.values()]
            cell_rows.append([k.point, k.build, k.protocol, task, lang + ("†" if (task, lang) in p.group.derived else ""),
                              _mean_sd(teacher) + marks, _mean_sd(student), pct(statistics.mean(seeds.values())),
                              " ".join(f"{s}:{100 * v:+.1f}" for s, v in sorted(seeds.items()))])
    out.append(("Cells", cell_head, cell_rows,
                "teacher and student: main metric, mean ± sample std over the paired seeds (n); change: mean "
                "over seeds of the per-seed change; ‡SEED: the teacher's seed is an outlier among its "
                "siblings on dev."))
    build_rows = build_spread_rows(report.points)
    if build_rows:
        out.append(("Builds of one point", ["point", "protocol", "common cells", "builds", "mean change per build",
                                            "spread across builds", "seed sd within builds"], build_rows,
                    "builds of one point name under one protocol family (another compression seed, say), over "
                    "the cells they all have: spread across builds is max - min of their mean changes, what rebuilding the "
                    "recipe moves the measure by; seed sd within builds is each build's sample std over seeds "
                    "of the per-seed mean over cells. The seed intervals above do not contain the build spread."))
    by_head = ["point", "build", "protocol", "by", "", "cells", "mean change", "95% CI (bootstrap)"]
    by_rows = []
    for p in report.points:
        for what, parts in (("task", p.by_task), ("language", p.by_language)):
            for name, s in parts.items():
                by_rows.append([p.key.point, p.key.build, p.key.protocol, what, name, str(s.cells),
                                pct(s.mean), interval(s.boot_low, s.boot_high)])
    out.append(("Per task and per language", by_head, by_rows, "the same measure over the cells of one task or language."))
    out.append((f"Teachers ({report.split} scores)", ["teacher", "task", "language", "protocol", "lr", "score",
                                                        "per seed"], report.teachers,
                "every teacher run on this split, per protocol family (lr: the encoder's fine-tuning learning "
                "rate); the teacher's settings are chosen on dev."))
    flag_rows = [[t, task, lang, label, str(seed), f"{v:.3f}"]
                 for (t, task, lang, _, seed), (label, v) in sorted(report.flagged.items())]
    out.append(("Teacher seeds flagged on dev", ["teacher", "task", "language", "protocol", "seed", "dev score"],
                flag_rows, f"a teacher seed whose dev score lies more than {OUTLIER_MADS:g} scaled MADs "
                f"(1.4826 x median absolute deviation) and {OUTLIER_MIN_GAP} from the median of its seeds on "
                "that cell (3+ seeds). Flagged, not dropped: 'without flagged teacher seeds' leaves their "
                "pairs out." + ("" if flag_rows else " None flagged.")))
    return out


def _seed_sd(cells: dict[Cell, dict[int, float]]) -> float | None:
    per_seed = per_seed_means(cells)
    return statistics.stdev(per_seed) if len(per_seed) > 1 else None


def build_spread_rows(points: list[PointReport]) -> list[list[str]]:
    """One row per point name and protocol family that has several builds: each build's mean
    change over the cells all of them have, their spread, and each one's seed sd there."""
    families: dict[tuple, list[PointReport]] = defaultdict(list)
    for p in points:
        families[(p.key.point, p.key.teacher, p.key.protocol)].append(p)
    rows = []
    for (point, _, protocol), members in sorted(families.items()):
        if len(members) < 2:
            continue
        common = set.intersection(*(set(m.group.cells) for m in members))
        if not common:
            continue
        shared = [{c: m.group.cells[c] for c in common} for m in members]
        means = [statistics.mean(statistics.mean(v.values()) for v in cells.values()) for cells in shared]
        sds = [_seed_sd(cells) for cells in shared]
        where = ", ".join(f"{t}/{lang}" for t, lang in sorted(common, key=lambda c: (c[1], task_rank(c[0]))))
        rows.append([point, protocol, where, str(len(members)),
                     ", ".join(f"{m.key.build} {pct(x)}" for m, x in zip(members, means)),
                     f"{100 * (max(means) - min(means)):.1f} pts",
                     ", ".join("-" if sd is None else f"{100 * sd:.1f} pts" for sd in sds)])
    return rows


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "-"
    sd = f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else ""
    return f"{statistics.mean(values):.3f}{sd} ({len(values)})"


def _header_lines(report: Report) -> list[str]:
    h = report.header
    return [f"command: {h['command'] or 'harness report'}",
            f"database: {h['database']}; split: {h['split']}",
            f"runs made at git: {', '.join(h['run_git_revs']) or '-'}; machines: {'; '.join(h['machines']) or '-'}",
            f"protocol families (profile/precision): {', '.join(h['protocols']) or '-'}"]


def render_text(report: Report) -> str:
    if not report.points:
        return ""
    parts = _header_lines(report)
    for title, head, rows, legend in tables(report):
        if rows:
            parts += ["", f"== {title} ==", text_table(head, rows, legend)]
        else:
            parts += ["", f"== {title} ==", legend]
    parts += [f"note: {n}" for n in report.notes]
    parts += ["builds: " + "; ".join(f"{p.key.point}@{p.key.build} = {', '.join(p.group.model_keys)}"
                                     for p in report.points)]
    return "\n".join(parts)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(report: Report) -> str:
    if not report.points:
        return ""
    parts = ["<!-- generated by `harness report`; do not edit by hand -->", ""]
    parts += [f"- {_md_cell(line)}" for line in _header_lines(report)]
    for title, head, rows, legend in tables(report):
        parts += ["", f"### {title}", ""]
        if rows:
            parts += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            parts += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
            parts.append("")
        parts.append(legend)
    if report.notes:
        parts += [""] + [f"- note: {_md_cell(n)}" for n in report.notes]
    parts += ["", "Builds: " + "; ".join(f"`{p.key.point}@{p.key.build}` = " + ", ".join(f"`{k}`" for k in p.group.model_keys)
                                          for p in report.points), ""]
    return "\n".join(parts)
