"""The teacher-comparison table of `harness results --vs-teacher`: per language, the teacher and
each compressed point of it, their size, the main test score of every task (mean +- std over
seeds, n) and the change against the teacher's score on the same task, language and protocol,
taken over the same seeds when the teacher has them all (the store's v_relative view)."""
from __future__ import annotations

import fnmatch
import statistics
from collections import defaultdict
from typing import Any, Sequence

from core.constants import ordered_tasks
from harness.paired import Scope, against_baseline, paired_groups, per_seed_means, tell_apart_same_labels
from harness.store import PROTOCOL_LABELS, Store


_SQL = """
SELECT m.model_key, m.name, m.kind, m.teacher_key, coalesce(m.language, st.language) AS model_language,
       m.params_total, m.compression_ratio, m.stage_chain,
       st.task, st.language, st.protocol_hash, st.metric, st.mean, st.std, st.n, st.derived,
       rel.teacher_score, rel.teacher_seeds_matched, coalesce(p.label, '?') AS protocol
FROM v_main_test st
JOIN models m ON m.model_key = st.model_key
LEFT JOIN {labels} p ON p.protocol_hash = st.protocol_hash
LEFT JOIN v_relative rel ON rel.model_key = st.model_key AND rel.task = st.task
     AND rel.language = st.language AND rel.protocol_hash = st.protocol_hash AND rel.metric = st.metric
ORDER BY st.language, m.teacher_key, m.params_total DESC, m.model_key, st.task
""".format(labels=PROTOCOL_LABELS)


def _records(store: Store, sql: str) -> list[dict[str, Any]]:
    columns, rows = store.query(sql, read_only=True)
    return [dict(zip(columns, r)) for r in rows]


def text_table(header: list[str], body: list[list[str]], legend: str) -> str:
    """Columns padded to their widest cell, a rule under the header, the legend below."""
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths))]
    lines.append("-" * len(lines[0]))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in body]
    return "\n".join([*lines, legend])


def _cell(row: dict[str, Any], is_teacher: bool) -> str:
    std = f"±{row['std']:.3f}" if row["std"] is not None else ""
    text = f"{row['mean']:.3f}{std} ({row['n']})" + ("†" if row["derived"] else "")
    reference, mark = _teacher_reference(row)
    if not is_teacher and reference:
        text += f" {100 * (row['mean'] / reference - 1):+.1f}%{mark}"
    return text


def _teacher_reference(row: dict[str, Any]) -> tuple[float | None, str]:
    """The teacher's score from v_relative (over the row's own seeds when the teacher has them
    all), marked '*' when it had to fall back on all the teacher's seeds."""
    return row["teacher_score"], ("" if row["teacher_seeds_matched"] else "*")


def teacher_comparison(store: Store, patterns: Sequence[str] = ("*",)) -> str:
    """The table as text; `patterns` (shell-style, e.g. '*L6*') select compressed model keys (any
    match); the teachers are always shown."""
    rows = _records(store, _SQL)
    if not rows:
        return ""
    by_model: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = defaultdict(dict)
    facts: dict[tuple[str, str, str], dict[str, Any]] = {}
    tell_apart_same_labels(rows)   # two families that read alike get their hashes
    for r in rows:
        if r["kind"] != "teacher" and not any(fnmatch.fnmatch(r["model_key"], p) for p in patterns):
            continue
        key = (r["language"], r["model_key"], r["protocol"])
        by_model[key][r["task"]] = r   # one row per model and protocol family: nothing to choose
        facts[key] = r
    tasks = ordered_tasks({t for v in by_model.values() for t in v})
    header = ["language", "model", "protocol", "params", "fewer", *tasks, "rel. score"]
    body: list[list[str]] = []
    order = sorted(facts, key=lambda k: (k[0], facts[k]["teacher_key"], k[2],
                                         facts[k]["kind"] != "teacher", -(facts[k]["params_total"] or 0), k[1]))
    for key in order:
        f, scores = facts[key], by_model[key]
        is_teacher = f["kind"] == "teacher"
        ratio = f["compression_ratio"] or 1.0
        rel = [s["mean"] / ref for s in scores.values() if (ref := _teacher_reference(s)[0])]
        body.append([key[0], key[1], key[2], f"{(f['params_total'] or 0) / 1e6:.2f}M",
                     "-" if is_teacher else f"{100 * (1 - 1 / ratio):.1f}%",
                     *[_cell(scores[t], is_teacher) if t in scores else "-" for t in tasks],
                     "100%" if is_teacher else (f"{100 * statistics.mean(rel):.1f}%" if rel else "-")])
    return text_table(header, body, "cells: main test metric, mean±std (n seeds), then the change against the teacher's "
                 "mean on the same task, language, protocol and seeds (* the teacher lacks some of the "
                 "seeds: against all its seeds); † a derived split; rel. score: mean over the tasks of "
                 "score / teacher's score. One row per model and protocol family (runs under two "
                 "protocols are never pooled or chosen between).")


# -- a point's change against its teacher over every task and language it has -----------------------

def paired_change(cells: dict[tuple[str, str], dict[int, float]]) -> dict[str, Any]:
    """Summary of paired per-seed changes, `cells[(task, language)][seed]`: score / teacher's score
    on that seed - 1, or (`against_baseline`) that minus a baseline point's. Each cell's mean, std
    and n over its seeds; the mean over cells; and, over the seeds every cell has, the mean and
    sample std over seeds of the per-seed mean over cells (the spread a rerun with other seeds
    would show)."""
    per_cell = {c: (statistics.mean(v.values()), statistics.stdev(v.values()) if len(v) > 1 else None, len(v))
                for c, v in sorted(cells.items()) if v}
    per_seed = per_seed_means(cells)
    return {"cells": per_cell,
            "mean": statistics.mean(m for m, _, _ in per_cell.values()) if per_cell else None,
            "paired": (statistics.mean(per_seed), statistics.stdev(per_seed) if len(per_seed) > 1 else None,
                       len(per_seed)) if per_seed else None}


def pct(x: float | None, std: float | None = None) -> str:
    if x is None:
        return "-"
    return f"{100 * x:+.1f}%" + (f" ± {100 * std:.1f}" if std is not None else "")


def pct_points(x: float | None, std: float | None = None) -> str:
    """A difference of two relative scores, in points of the teacher's score."""
    if x is None:
        return "-"
    return f"{100 * x:+.1f} pts" + (f" ± {100 * std:.1f}" if std is not None else "")


def size_label(fewer: set[float]) -> str:
    f = sorted(fewer)
    return "-" if not f else f"{f[0]:.1f}%" if f[0] == f[-1] else f"{f[0]:.1f}-{f[-1]:.1f}%"


def point_changes(store: Store, baseline: str | None = None, tasks: Sequence[str] = (),
                  split: str = "test", pool_builds: bool = False, scope: Scope | None = None) -> str:
    """`harness results --by-point`: one row per build of a compressed point (its grid name, over
    every language it was built for) and protocol family: the change against the teacher over the
    (task, language) cells it has, each compared on the same protocol and seeds. With `baseline`
    (a point's grid name, or NAME@BUILD), the change against that point instead, paired the same
    way: the question an ablation asks ("does this choice beat the default recipe on the same
    seeds?"), to be asked on `split="dev"`. With `tasks`, only those tasks' cells count."""
    groups, notes = paired_groups(store, split, tasks, pool_builds, scope)
    fmt, what = pct, "mean over cells"
    if baseline is not None:
        groups, fmt, what = against_baseline(groups, baseline), pct_points, f"vs {baseline}, mean over cells"
    if not groups:
        return ""
    header = ["point", "build", "teacher", "fewer", "protocol", "cells", "languages", "tasks", what,
              "per seed (paired)"]
    body = []
    for key, group in sorted(groups.items(), key=lambda kv: (kv[0].point, kv[0].teacher, kv[0].protocol, kv[0].build)):
        s = paired_change(group.cells)
        langs = sorted({lang for _, lang in group.cells})
        point_tasks = ordered_tasks({t for t, _ in group.cells})
        paired = f"{fmt(s['paired'][0], s['paired'][1])} (n={s['paired'][2]})" if s["paired"] else "-"
        derived = "†" if group.derived else ""
        body.append([key.point, key.build, key.teacher, size_label(group.fewer), key.protocol,
                     f"{len(group.cells)}{derived}", ",".join(langs), ",".join(point_tasks), fmt(s["mean"]), paired])
    pooling = ("mean over cells: the mean of each cell's mean over seeds; per seed: mean ± sample std over "
               "the seeds every cell has of the mean over cells.")
    scored = f"{split} scores (main metric); " if split != "test" else ""
    if baseline is not None:
        legend = (f"{scored}change: (score - {baseline}'s score) / teacher's score, on the same task, language, "
                  f"protocol and seed, in points of the teacher's score; only the cells and seeds both "
                  f"have. {pooling}")
    else:
        legend = (f"{scored}change: score / teacher's score on the same task, language, protocol and seed - 1; "
                  f"{pooling}")
    legend += (" One row per build (the model keys of the point's languages, `build` a short id of them) "
               "and protocol family; † some cells are derived splits (`harness report` shows the mean "
               "without them).")
    return text_table(header, body, "\n".join([legend, *(f"note: {n}" for n in notes)]))
