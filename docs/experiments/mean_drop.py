"""`harness results --by-point` across several results databases, for models whose names differ
per language (the `models:` entries of issue 13's experiments): a recipe's change against the
teacher over its (task, language) cells, paired by seed (harness.report.paired_change).

    python docs/experiments/mean_drop.py --db results/headline.duckdb --db results/four.duckdb \\
        --recipe "h300k=L6-F768-V5k-h300k" --recipe "today=L6-F768-V5k(--|-[a-z]{3}$)"

A recipe is label=regex, searched in the model key. Runs are matched on protocol profile and
precision (and on the teacher-labels option), never across them.
"""
from __future__ import annotations

import argparse
import re
from collections import defaultdict

import duckdb

from harness.report import pct, paired_change

QUERY = """
select r.model_key, r.task, r.language, r.seed, s.value,
       json_extract_string(r.config, '$.protocol.profile') as profile,
       json_extract_string(r.config, '$.protocol.precision') as precision,
       json_extract_string(r.config, '$.protocol.teacher_labels') as teacher_labels
from runs r join scores s using (run_id)
where r.status = 'done' and s.split = 'test' and s.is_main
"""


def load(dbs: list[str], profile: str, precision: str, teacher_labels: bool) -> list[tuple]:
    rows = []
    for db in dbs:
        with duckdb.connect(db, read_only=True) as con:
            for key, task, lang, seed, value, prof, prec, tl in con.execute(QUERY).fetchall():
                if prof == profile and prec == precision and (tl is not None) == teacher_labels:
                    rows.append((key, task, lang, seed, value))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", action="append", required=True)
    ap.add_argument("--recipe", action="append", required=True, help="label=regex on the model key")
    ap.add_argument("--teacher", default="e5-small")
    ap.add_argument("--profile", default="standard")
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--teacher-labels", action="store_true", help="the task-specific distillation family")
    a = ap.parse_args()
    rows = load(a.db, a.profile, a.precision, a.teacher_labels)
    teacher = {(t, lang, s): v for k, t, lang, s, v in rows if k == a.teacher}
    for label, pattern in (r.split("=", 1) for r in a.recipe):
        cells: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
        for k, t, lang, s, v in rows:
            if k != a.teacher and re.search(pattern, k) and (t, lang, s) in teacher:
                if s in cells[(t, lang)]:
                    raise SystemExit(f"recipe {label!r} matches two models in {t}/{lang} seed {s}: narrow its regex")
                cells[(t, lang)][s] = v / teacher[(t, lang, s)] - 1
        if not cells:
            continue
        summary = paired_change(cells)
        print(f"## {label}  ({a.profile}/{a.precision}{', teacher labels' if a.teacher_labels else ''})")
        print("| task | language | vs teacher, same seeds | n |\n|---|---|---|---|")
        for (task, lang), (m, sd, n) in summary["cells"].items():
            print(f"| {task} | {lang} | {pct(m, sd)} | {n} |")
        line = f"mean over {len(summary['cells'])} cells: {pct(summary['mean'])}"
        if summary["paired"]:
            m, sd, n = summary["paired"]
            line += f"; per-seed mean over cells {pct(m, sd)} (n={n} seeds)"
        print(line + "\n")


if __name__ == "__main__":
    main()
