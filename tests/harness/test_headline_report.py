"""`harness report` and the build/protocol grouping of every point-level report, on stores whose
numbers were worked out by hand: two builds of one name, two protocol families, a derived cell, a
missing seed, a teacher seed that is an outlier on dev."""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

from harness.store import ModelRecord, RunInfo, RunKey, RunResult, Score, Store


def _run(store: Store, model: str, task: str, lang: str, seed: int, test: float, dev: float = 0.5,
         protocol: str = "p1", derived: bool = False) -> None:
    key = RunKey(model, task, lang, seed, protocol)
    store.start_run(RunInfo(key, "data", derived, "from dev 80/20" if derived else None))
    store.finish_run(key, RunResult([Score("test", "accuracy", test, True), Score("dev", "accuracy", dev, True)],
                                    10, 5, 5, 1, 1.0, 0.5))


def _model(store: Store, key: str, lang: str | None = None, kind: str = "compressed") -> None:
    name = "teach" if kind == "teacher" else "--".join(key.split("--")[:3])
    store.upsert_model(ModelRecord(key, name, kind, "x", "teach", 100 if kind == "teacher" else 8, 4, 4,
                                   language=lang, compression_ratio=None if kind == "teacher" else 12.5))


def _headline_store(tmp_path) -> Store:
    """Teacher and point p (Maltese and Swahili). Per-seed changes, by hand:
    topic/mlt  teacher test 0.80 x3, dev 0.85 0.86 0.70 (seed 44 an outlier on dev); p 0.72 0.76 0.80
               -> -10, -5, 0 (mean -5%)
    pos/mlt    derived split; teacher 0.50 x3; p 0.60 0.50 0.45 -> +20, 0, -10 (mean +3.33%)
    topic/swh  teacher 0.60 on 42, 43, 44; p only 42, 43: 0.48 0.54 -> -20, -10 (mean -15%)"""
    store = Store(tmp_path / "r.duckdb").init()
    _model(store, "teach", kind="teacher")
    _model(store, "teach--mlt_Latn--p--aa", "mlt_Latn")
    _model(store, "teach--swh_Latn--p--cc", "swh_Latn")
    for seed, dev in zip((42, 43, 44), (0.85, 0.86, 0.70)):
        _run(store, "teach", "topic", "mlt_Latn", seed, 0.80, dev)
        _run(store, "teach", "pos", "mlt_Latn", seed, 0.50, derived=True)
        _run(store, "teach", "topic", "swh_Latn", seed, 0.60)
    for seed, v in zip((42, 43, 44), (0.72, 0.76, 0.80)):
        _run(store, "teach--mlt_Latn--p--aa", "topic", "mlt_Latn", seed, v)
    for seed, v in zip((42, 43, 44), (0.60, 0.50, 0.45)):
        _run(store, "teach--mlt_Latn--p--aa", "pos", "mlt_Latn", seed, v, derived=True)
    for seed, v in zip((42, 43), (0.48, 0.54)):
        _run(store, "teach--swh_Latn--p--cc", "topic", "swh_Latn", seed, v)
    return store


def test_report_measures_by_hand(tmp_path):
    from harness.headline import build_report

    report = build_report(_headline_store(tmp_path))
    (p,) = report.points
    assert p.key.point == "p" and set(p.group.model_keys) == {"teach--mlt_Latn--p--aa", "teach--swh_Latn--p--cc"}
    assert p.overall.cells == 3
    assert p.overall.mean == pytest.approx((-0.05 + 0.1 / 3 - 0.15) / 3)
    assert p.overall.boot_low < p.overall.mean < p.overall.boot_high
    # t over seeds 42 and 43 (Swahili lacks 44): per-seed means -3.33% and -5.0%, t(0.975, 1) = 12.706
    assert p.overall.t_seeds == 2
    half = 12.7062047 * 0.0117851130 / 2 ** 0.5
    assert p.overall.t_low == pytest.approx(-0.0416667 - half, abs=1e-6)
    assert p.overall.t_high == pytest.approx(-0.0416667 + half, abs=1e-6)
    assert p.gains_as_zero == pytest.approx((-0.05 + 0 - 0.15) / 3)
    assert p.median_cell == pytest.approx(-0.05)
    assert p.group.derived == {("pos", "mlt_Latn")}
    assert p.without_derived.mean == pytest.approx(-0.10) and p.without_derived.cells == 2
    assert report.flagged == {("teach", "topic", "mlt_Latn", "p1", 44): ("?", 0.70)}
    assert p.without_flagged.mean == pytest.approx((-0.075 + 0.1 / 3 - 0.15) / 3)
    assert p.by_task["topic"].mean == pytest.approx(-0.10) and p.by_task["pos"].cells == 1
    assert p.by_language["swh_Latn"].mean == pytest.approx(-0.15)


def test_bootstrap_interval_is_deterministic_and_degenerate_without_spread():
    from harness.headline import bootstrap_interval

    assert bootstrap_interval([[0.1, 0.1, 0.1], [-0.2, -0.2]]) == pytest.approx((-0.05, -0.05))
    cells = [[-0.1, -0.05, 0.0], [0.2, 0.0, -0.1]]
    first = bootstrap_interval(cells)
    assert first == bootstrap_interval(cells) and first[0] < -0.0083 < first[1]


def test_report_text_and_markdown_name_what_produced_them(tmp_path):
    from harness.headline import build_report, render_markdown, render_text

    report = build_report(_headline_store(tmp_path), command="harness report --db r.duckdb")
    text = render_text(report)
    assert "command: harness report --db r.duckdb" in text and "machines:" in text and "split: test" in text
    row = next(line for line in text.splitlines() if line.startswith("p "))
    assert "-5.6%" in row and "-6.7%" in row and "3 (1†)" in row and "-10.0% (2)" in row and "-6.4%" in row
    assert "‡44" in text   # the flagged teacher seed, on its cell
    md = render_markdown(report)
    assert md.startswith("<!-- generated by `harness report`") and "| point | build |" in md
    assert "| p |" in md and "-5.6%" in md


def _two_builds_store(tmp_path, order) -> Store:
    """One point name, two builds in Maltese (aa: -25%, bb: -5% on the teacher's 0.8), inserted in
    `order`."""
    store = Store(tmp_path / "r.duckdb").init()
    _model(store, "teach", kind="teacher")
    _run(store, "teach", "topic", "mlt_Latn", 42, 0.80)
    values = {"teach--mlt_Latn--p--aa": 0.60, "teach--mlt_Latn--p--bb": 0.76}
    for key in order:
        _model(store, key, "mlt_Latn")
        _run(store, key, "topic", "mlt_Latn", 42, values[key])
    return store


@pytest.mark.parametrize("order", [("teach--mlt_Latn--p--aa", "teach--mlt_Latn--p--bb"),
                                   ("teach--mlt_Latn--p--bb", "teach--mlt_Latn--p--aa")])
def test_two_builds_of_one_name_are_two_rows_whatever_the_row_order(tmp_path, order):
    from harness.report import point_changes

    store = _two_builds_store(tmp_path, order)
    text = point_changes(store)
    rows = [line for line in text.splitlines() if line.startswith("p ")]
    assert len(rows) == 2 and sorted("-25.0%" in r for r in rows) == [False, True]
    assert any("-5.0%" in r for r in rows)
    assert "has 2 builds" in text and "--pool-builds" in text
    pooled = point_changes(store, pool_builds=True)
    (row,) = [line for line in pooled.splitlines() if line.startswith("p ")]
    assert "pooled(2)" in row and "-15.0%" in row
    assert "2 builds pooled: teach--mlt_Latn--p--aa, teach--mlt_Latn--p--bb" in pooled


def test_a_baseline_with_two_builds_must_be_named_with_its_build(tmp_path):
    from core.errors import UserError
    from harness.paired import build_id
    from harness.report import point_changes

    store = _two_builds_store(tmp_path, ("teach--mlt_Latn--p--aa", "teach--mlt_Latn--p--bb"))
    _model(store, "teach--mlt_Latn--q--dd", "mlt_Latn")
    _run(store, "teach--mlt_Latn--q--dd", "topic", "mlt_Latn", 42, 0.72)
    with pytest.raises(UserError, match="has 2 builds .* name one as --baseline p@BUILD"):
        point_changes(store, baseline="p")
    aa = build_id(["teach--mlt_Latn--p--aa"])
    row = next(line for line in point_changes(store, baseline=f"p@{aa}").splitlines() if line.startswith("q "))
    assert "+15.0 pts" in row   # (0.72 - 0.60) / 0.8


def test_vs_teacher_shows_each_protocol_family_as_its_own_row(tmp_path):
    """The same cell under plain fine-tuning (-10%) and under teacher labels (-5%): two labelled
    rows, not the one with more seeds (or the first in row order)."""
    from harness.report import teacher_comparison

    store = Store(tmp_path / "r.duckdb").init()
    _model(store, "teach", kind="teacher")
    _model(store, "teach--mlt_Latn--p--aa", "mlt_Latn")
    store.register_protocol("plain", [("ner", "h-plain", "standard", {"precision": "bf16"})])
    store.register_protocol("tl", [("ner", "h-tl", "standard", {"precision": "bf16", "teacher_labels": {
        "lines": 2000, "weight": 1.0, "temperature": 2.0}})])
    for seed in (42, 43):
        _run(store, "teach", "ner", "mlt_Latn", seed, 0.80, protocol="h-plain")
        _run(store, "teach--mlt_Latn--p--aa", "ner", "mlt_Latn", seed, 0.72, protocol="h-plain")
    _run(store, "teach", "ner", "mlt_Latn", 42, 0.80, protocol="h-tl")
    _run(store, "teach--mlt_Latn--p--aa", "ner", "mlt_Latn", 42, 0.76, protocol="h-tl")
    rows = [line for line in teacher_comparison(store).splitlines() if "--p--" in line]
    assert len(rows) == 2
    plain = next(r for r in rows if "standard/bf16 " in r)
    labels = next(r for r in rows if "teacher labels(2000 lines" in r)
    assert "-10.0%" in plain and "(2)" in plain and "-5.0%" in labels and "(1)" in labels


def test_dev_scores_give_the_same_tables(tmp_path):
    """--split dev: the pairing on the kept epoch's dev scores (choices are made there)."""
    from harness.report import point_changes

    store = _headline_store(tmp_path)
    text = point_changes(store, split="dev")
    assert text.startswith("point") and "dev scores" in text


def test_report_cli(tmp_path):
    from cli.app import app

    _headline_store(tmp_path)
    db = str(tmp_path / "r.duckdb")
    out = tmp_path / "report.md"
    shown = CliRunner().invoke(app, ["report", "--db", db, "--format", "markdown", "--out", str(out)])
    assert shown.exit_code == 0, shown.output
    assert "| p |" in out.read_text() and "command: harness" in out.read_text()
    for args, expected in ((["--split", "train"], "--split 'train' is not a scored split"),
                           (["--format", "html"], "--format 'html' is not known"),
                           (["--point", "zz"], "no point 'zz' with paired runs"),
                           (["--protocol", "fewshot"], "no protocol family 'fewshot'")):
        wrong = CliRunner().invoke(app, ["report", "--db", db, *args])
        lines = wrong.output.strip().splitlines()
        assert wrong.exit_code == 2 and len(lines) == 1 and expected in lines[0], wrong.output


def test_one_seed_cells_get_no_interval(tmp_path):
    """With one seed a resample can only return that seed: no zero-width interval is shown."""
    from harness.headline import build_report, render_text

    store = _two_builds_store(tmp_path, ("teach--mlt_Latn--p--aa",))
    report = build_report(store)
    (p,) = report.points
    assert p.overall.mean == pytest.approx(-0.25) and p.overall.boot_low is None and p.overall.t_low is None
    row = next(line for line in render_text(report).splitlines() if line.startswith("p "))
    assert "-25.0%" in row and "[" not in row


def test_a_second_teacher_family_keeps_flags_on_their_cells_and_shows_in_the_teacher_table(tmp_path):
    """A learning-rate sweep adds teacher-only runs under another protocol whose label reads alike:
    the outlier flag still lands on the students' cell (matched by protocol hash, not label), and
    the teacher table shows both families of that cell."""
    from harness.headline import build_report, render_text

    store = _headline_store(tmp_path)
    store.register_protocol("lr", [("topic", "p2", "standard", {"precision": "bf16", "learning_rate": 5e-5})])
    for seed in (42, 43, 44):
        _run(store, "teach", "topic", "mlt_Latn", seed, 0.70, dev=0.75, protocol="p2")
    report = build_report(store, split="dev")
    (p,) = report.points
    assert p.without_flagged.mean != p.overall.mean   # the flagged p1 seed is left out
    text = render_text(report)
    assert "‡44" in text
    mlt_topic = [r for r in report.teachers if r[1] == "topic" and r[2] == "mlt_Latn"]
    assert len(mlt_topic) == 2 and {r[4] for r in mlt_topic} == {"5e-05", "?"}


def test_two_builds_over_the_same_cells_get_their_spread_beside_the_seed_spread(tmp_path):
    """Builds aa (-25%) and bb (-5%) of p on one cell and seed: a spread of 20 points; one seed each,
    so no seed sd."""
    from harness.headline import build_report, render_text

    report = build_report(_two_builds_store(tmp_path, ("teach--mlt_Latn--p--aa", "teach--mlt_Latn--p--bb")))
    text = render_text(report)
    assert "== Builds of one point ==" in text
    row = next(line for line in text.splitlines() if line.startswith("p ") and "pts" in line)
    assert "20.0 pts" in row and " 2 " in row


def _manifest(seed: int) -> dict:
    chain = [{"stage": "vocab", "config": {"size": 5000}, "seed": None},
             {"stage": "distill", "config": {"settings": {"max_tokens": 300000}}, "seed": seed}]
    return {"teacher": {"name": "teach"}, "chain": chain}


def test_builds_of_one_recipe_pair_across_languages_and_another_seed_is_its_own_row(tmp_path):
    """The headline's build in Maltese and Swahili (compression seed 42) is one row over both
    languages; a second Swahili build (seed 43) is a row of its own, not a reason to split the first."""
    from harness.report import point_changes

    store = Store(tmp_path / "r.duckdb").init()
    _model(store, "teach", kind="teacher")
    for key, lang, seed in (("teach--mlt_Latn--p--m42", "mlt_Latn", 42), ("teach--swh_Latn--p--s42", "swh_Latn", 42),
                            ("teach--swh_Latn--p--s43", "swh_Latn", 43)):
        store.upsert_model(ModelRecord(key, f"teach--{lang}--p", "compressed", "x", "teach", 8, 4, 4,
                                       language=lang, compression_ratio=12.5, manifest=_manifest(seed)))
    _run(store, "teach", "topic", "mlt_Latn", 42, 0.80)
    _run(store, "teach", "topic", "swh_Latn", 42, 0.50)
    _run(store, "teach--mlt_Latn--p--m42", "topic", "mlt_Latn", 42, 0.72)   # -10%
    _run(store, "teach--swh_Latn--p--s42", "topic", "swh_Latn", 42, 0.40)   # -20%
    _run(store, "teach--swh_Latn--p--s43", "topic", "swh_Latn", 42, 0.45)   # -10%
    rows = [line for line in point_changes(store).splitlines() if line.startswith("p ")]
    assert len(rows) == 2
    both = next(r for r in rows if "mlt_Latn,swh_Latn" in r)
    assert "-15.0%" in both and " 2 " in both
    other = next(r for r in rows if r is not both)
    assert "swh_Latn" in other and "mlt" not in other and "-10.0%" in other


def test_the_interval_does_not_depend_on_the_order_of_the_cells():
    from harness.headline import summarize

    cells = {("topic", "mlt_Latn"): {42: -0.18, 43: -0.09, 44: -0.16}, ("pos", "swh_Latn"): {44: -0.012, 42: -0.011, 43: -0.013},
             ("topic", "swh_Latn"): {42: -0.05, 43: -0.10, 44: -0.09}}
    reordered = {c: dict(reversed(list(cells[c].items()))) for c in reversed(list(cells))}
    a, b = summarize(cells), summarize(reordered)
    assert (a.boot_low, a.boot_high, a.mean) == (b.boot_low, b.boot_high, b.mean)
