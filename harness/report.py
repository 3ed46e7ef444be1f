"""The teacher-comparison table of `harness results --vs-teacher`: per language, the teacher and
each compressed point of it, their size, the main test score of every task (mean +- std over
seeds, n) and the change against the teacher's score on the same task, language and protocol,
taken over the same seeds when the teacher has them all (the store's v_relative view)."""
from __future__ import annotations

import fnmatch
import statistics
from collections import defaultdict
from typing import Any, Sequence

from core.errors import UserError
from core.registry import unknown_name_message
from harness.store import PROTOCOL_LABELS, Store

TASK_ORDER = ("topic", "sentiment", "ner", "pos")

_SQL = """
SELECT m.model_key, m.name, m.kind, m.teacher_key, coalesce(m.language, st.language) AS model_language,
       m.params_total, m.compression_ratio, m.stage_chain,
       st.task, st.language, st.protocol_hash, st.metric, st.mean, st.std, st.n, st.derived,
       rel.teacher_score, rel.teacher_seeds_matched
FROM v_main_test st
JOIN models m ON m.model_key = st.model_key
LEFT JOIN v_relative rel ON rel.model_key = st.model_key AND rel.task = st.task
     AND rel.language = st.language AND rel.protocol_hash = st.protocol_hash AND rel.metric = st.metric
ORDER BY st.language, m.teacher_key, m.params_total DESC, m.model_key, st.task
"""


def _records(store: Store, sql: str) -> list[dict[str, Any]]:
    columns, rows = store.query(sql, read_only=True)
    return [dict(zip(columns, r)) for r in rows]


def _ordered(tasks: set[str]) -> list[str]:
    return [t for t in TASK_ORDER if t in tasks] + sorted(tasks - set(TASK_ORDER))


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
    by_model: dict[tuple[str, str], dict[str, dict[str, Any]]] = defaultdict(dict)
    facts: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        if r["kind"] != "teacher" and not any(fnmatch.fnmatch(r["model_key"], p) for p in patterns):
            continue
        key = (r["language"], r["model_key"])
        kept = by_model[key].get(r["task"])
        if kept is None or r["n"] > kept["n"]:   # several protocols: the one with most seeds
            by_model[key][r["task"]] = r
        facts[key] = r
    tasks = _ordered({t for v in by_model.values() for t in v})
    header = ["language", "model", "params", "fewer", *tasks, "rel. score"]
    body: list[list[str]] = []
    order = sorted(facts, key=lambda k: (k[0], facts[k]["teacher_key"],
                                         facts[k]["kind"] != "teacher", -(facts[k]["params_total"] or 0), k[1]))
    for key in order:
        f, scores = facts[key], by_model[key]
        is_teacher = f["kind"] == "teacher"
        ratio = f["compression_ratio"] or 1.0
        rel = [s["mean"] / ref for s in scores.values() if (ref := _teacher_reference(s)[0])]
        body.append([key[0], key[1], f"{(f['params_total'] or 0) / 1e6:.2f}M",
                     "-" if is_teacher else f"{100 * (1 - 1 / ratio):.1f}%",
                     *[_cell(scores[t], is_teacher) if t in scores else "-" for t in tasks],
                     "100%" if is_teacher else (f"{100 * statistics.mean(rel):.1f}%" if rel else "-")])
    return text_table(header, body, "cells: main test metric, mean±std (n seeds), then the change against the teacher's "
                 "mean on the same task, language, protocol and seeds (* the teacher lacks some of the "
                 "seeds: against all its seeds); † a derived split; rel. score: mean over the tasks of "
                 "score / teacher's score.")


# -- a point's change against its teacher over every task and language it has -----------------------

_POINT_SQL = f"""
SELECT m.name, m.kind, m.teacher_key, m.language AS model_language, m.compression_ratio, r.model_key,
       r.task, r.language, r.seed, r.protocol_hash, s.value,
       coalesce(p.label, '?') AS protocol
FROM runs r
JOIN scores s ON s.run_id = r.run_id AND s.split = 'test' AND s.is_main
JOIN models m ON m.model_key = r.model_key
LEFT JOIN {PROTOCOL_LABELS} p ON p.protocol_hash = r.protocol_hash
WHERE r.status = 'done'
"""


def paired_change(cells: dict[tuple[str, str], dict[int, float]]) -> dict[str, Any]:
    """Summary of paired per-seed changes, `cells[(task, language)][seed]`: score / teacher's score
    on that seed - 1, or (`against_baseline`) that minus a baseline point's. Each cell's mean, std
    and n over its seeds; the mean over cells; and, over the seeds every cell has, the mean and
    sample std over seeds of the per-seed mean over cells (the spread a rerun with other seeds
    would show)."""
    per_cell = {c: (statistics.mean(v.values()), statistics.stdev(v.values()) if len(v) > 1 else None, len(v))
                for c, v in sorted(cells.items()) if v}
    common = sorted(set.intersection(*(set(v) for v in cells.values()))) if cells else []
    per_seed = [statistics.mean(v[s] for v in cells.values()) for s in common]
    return {"cells": per_cell,
            "mean": statistics.mean(m for m, _, _ in per_cell.values()) if per_cell else None,
            "paired": (statistics.mean(per_seed), statistics.stdev(per_seed) if len(per_seed) > 1 else None,
                       len(per_seed)) if per_seed else None}


def pct(x: float | None, std: float | None = None) -> str:
    if x is None:
        return "-"
    return f"{100 * x:+.1f}%" + (f" ± {100 * std:.1f}" if std is not None else "")


def _point_name(row: dict[str, Any]) -> str:
    """The grid's point name: a compressed point's display name is teacher--language--point."""
    prefix = f"{row['teacher_key']}--{row['model_language']}--"
    return row["name"][len(prefix):] if row["name"].startswith(prefix) else row["name"]


def pct_points(x: float | None, std: float | None = None) -> str:
    """A difference of two relative scores, in points of the teacher's score."""
    if x is None:
        return "-"
    return f"{100 * x:+.1f} pts" + (f" ± {100 * std:.1f}" if std is not None else "")


def against_baseline(groups: dict, baseline: str) -> dict:
    """Each group's per-seed changes minus those of the `baseline` point (same teacher, protocol,
    task, language and seed): what the point gains or loses over the baseline, in points of the
    teacher's score. Cells or seeds the baseline lacks are left out; the baseline itself too."""
    out = {}
    for (name, teach, proto), cells in groups.items():
        base = groups.get((baseline, teach, proto))
        if name == baseline or base is None:
            continue
        diff = {c: {seed: v - base[c][seed] for seed, v in seeds.items() if seed in base.get(c, {})}
                for c, seeds in cells.items()}
        diff = {c: v for c, v in diff.items() if v}
        if diff:
            out[(name, teach, proto)] = diff
    return out


def _tell_apart_same_labels(rows: list[dict[str, Any]]) -> None:
    """Two protocols of one task that read alike (say, two `standard` families whose epochs differ)
    would pool into one row and overwrite each other's seeds: where a point's task and language has
    runs under more than one protocol hash with the same label, each gets its hash in the label."""
    hashes: dict[tuple, set[str]] = defaultdict(set)
    for r in rows:
        hashes[(r["name"], r["protocol"], r["task"], r["language"])].add(r["protocol_hash"])
    for r in rows:
        if len(hashes[(r["name"], r["protocol"], r["task"], r["language"])]) > 1:
            r["protocol"] = f"{r['protocol']} #{r['protocol_hash'][:6]}"


def point_changes(store: Store, baseline: str | None = None, tasks: Sequence[str] = ()) -> str:
    """`harness results --by-point`: one row per compressed point (its grid name, over every
    language it was built for), teacher and protocol: the change against the teacher over the
    (task, language) cells it has, each compared on the same protocol and seeds. With `baseline`
    (a point's grid name), the change against that point instead, paired the same way: the
    question an ablation asks ("does this choice beat the default recipe on the same seeds?").
    With `tasks`, only those tasks' cells count."""
    rows = _records(store, _POINT_SQL)
    if tasks:
        stored = sorted({r["task"] for r in rows})
        for task in tasks:
            if task not in stored:
                raise UserError(unknown_name_message("task", task, stored))
        rows = [r for r in rows if r["task"] in tasks]
    _tell_apart_same_labels(rows)
    teacher = {(r["model_key"], r["task"], r["language"], r["protocol_hash"], r["seed"]): r["value"]
               for r in rows if r["kind"] == "teacher"}
    groups: dict[tuple[str, str, str], dict[tuple[str, str], dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    fewer: dict[tuple[str, str, str], set[float]] = defaultdict(set)
    for r in rows:
        ref = teacher.get((r["teacher_key"], r["task"], r["language"], r["protocol_hash"], r["seed"]))
        if r["kind"] != "teacher" and ref:
            group = (_point_name(r), r["teacher_key"], r["protocol"])
            groups[group][(r["task"], r["language"])][r["seed"]] = r["value"] / ref - 1
            if r["compression_ratio"]:
                fewer[group].add(round(100 * (1 - 1 / r["compression_ratio"]), 1))
    fmt, what = pct, "mean over cells"
    if baseline is not None:
        known = sorted({name for name, _, _ in groups})
        if baseline not in known:
            raise UserError(unknown_name_message("baseline point", baseline, known))
        groups, fmt, what = against_baseline(groups, baseline), pct_points, f"vs {baseline}, mean over cells"
    if not groups:
        return ""
    header = ["point", "teacher", "fewer", "protocol", "cells", "languages", "tasks", what, "per seed (paired)"]
    body = []
    for (name, teach, proto), cells in sorted(groups.items()):
        s = paired_change(cells)
        f = sorted(fewer[(name, teach, proto)])
        size = "-" if not f else f"{f[0]:.1f}%" if f[0] == f[-1] else f"{f[0]:.1f}-{f[-1]:.1f}%"
        langs = sorted({lang for _, lang in cells})
        point_tasks = _ordered({t for t, _ in cells})
        paired = f"{fmt(s['paired'][0], s['paired'][1])} (n={s['paired'][2]})" if s["paired"] else "-"
        body.append([name, teach, size, proto, str(len(cells)), ",".join(langs), ",".join(point_tasks), fmt(s["mean"]), paired])
    pooling = ("mean over cells: the mean of each cell's mean over seeds; per seed: mean ± sample std over "
               "the seeds every cell has of the mean over cells.")
    if baseline is not None:
        legend = (f"change: (score - {baseline}'s score) / teacher's score, on the same task, language, "
                  f"protocol and seed, in points of the teacher's score; only the cells and seeds both "
                  f"have. {pooling}")
    else:
        legend = ("change: score / teacher's score on the same task, language, protocol and seed - 1; "
                  f"{pooling} Points are grouped by grid name.")
    return text_table(header, body, legend)
