"""Task definitions: names, variants, per-language datasets, and config errors with did-you-mean."""
from __future__ import annotations

import textwrap

import pytest

from core.errors import ConfigError, DataError, UserError
from tasks.registry import get_task, has_data, load_task_data, required_files, task_names

def test_task_names_and_kinds():
    assert task_names() == ["ner", "ner_uner", "ner_wikiann", "pos", "sentiment", "topic"]
    assert {n: get_task(n).kind for n in task_names()} == {
        "ner": "token", "ner_uner": "token", "ner_wikiann": "token", "pos": "token",
        "sentiment": "sequence", "topic": "sequence"}
    assert get_task("pos").main_metric == "upos_accuracy" and get_task("ner").main_metric == "entity_f1"


def test_every_task_language_pair_has_its_dataset_and_catalogued_files():
    """Whatever the definitions and the catalogue hold (the shipped primary dataset per language is
    pinned in tests/regression/snapshots/catalogue_counts.json)."""
    from tasks.catalogue import load_catalogue
    from tasks.languages import language_codes
    by_path = {e.path: e for e in load_catalogue().files}
    for task in task_names():
        spec = get_task(task)
        assert spec.languages(), task
        for lang in spec.languages():
            assert lang in language_codes()
            src = spec.source_for(lang)
            assert src.dataset == spec.dataset_for(lang)
            assert {"train", "dev", "test"} <= set(src.files) | (set(src.derivation.into) if src.derivation else set())
            for rel in required_files(task, lang):
                assert by_path[rel.path].dataset == src.dataset and by_path[rel.path].language == lang, rel.path
            assert has_data(task, lang)


def test_topic_uses_sib200_everywhere():
    spec = get_task("topic")
    assert {spec.dataset_for(lang) for lang in spec.languages()} == {"sib200"}
    assert {"mlt_Latn", "swh_Latn", "eng_Latn"} <= set(spec.languages())


def test_variant_is_configuration_only():
    v, base = get_task("ner_wikiann"), get_task("ner")
    assert v.extends == "ner"
    assert (v.kind, v.metrics, v.main_metric, v.metric_options) == (base.kind, base.metrics, base.main_metric,
                                                                   base.metric_options)
    assert v.languages() == ["swh_Latn"] and v.dataset_for("swh_Latn") == "wikiann"


def test_licence_and_non_commercial_per_language():
    ner = get_task("ner")
    assert "CC BY-NC 4.0" in ner.license_for("swh_Latn") and ner.non_commercial_for("swh_Latn")
    assert get_task("topic").license_for("mlt_Latn").startswith("CC BY-SA 4.0")
    assert not get_task("topic").non_commercial_for("mlt_Latn")
    assert get_task("pos").non_commercial_for("est_Latn")  # UD Estonian-EDT is CC BY-NC-SA


def test_license_notice_for_task_language_pairs():
    from tasks.registry import license_notice_for
    text = license_notice_for([("ner", "swh_Latn"), ("topic", "swh_Latn"), ("ner", "hau_Latn")])
    assert text.splitlines()[0] == "Data licences (2 datasets):"
    assert "Non-commercial: masakhaner2" in text


def test_unknown_task_did_you_mean():
    with pytest.raises(UserError, match=r"unknown task 'sentimnet' \(did you mean 'sentiment'\?\); known: ner, "):
        get_task("sentimnet")


def test_unknown_language_did_you_mean():
    with pytest.raises(UserError, match=r"unknown language 'mlt' \(did you mean 'mlt_Latn'\?\)"):
        load_task_data("topic", "mlt", "/nonexistent")


def test_language_without_data_names_languages_that_have_it():
    import re
    assert not has_data("ner", "mlt_Latn") and has_data("ner", "amh_Ethi")
    with_data = ", ".join(sorted(get_task("ner").languages()))
    with pytest.raises(UserError, match=r"task 'ner' has no data for 'mlt_Latn'; languages with ner data: "
                                        + re.escape(with_data)):
        required_files("ner", "mlt_Latn")


def test_required_files_of_a_derived_language():
    assert [e.split for e in required_files("pos", "slk_Latn")] == ["dev", "test"]
    assert [e.path for e in required_files("sentiment", "est_Latn")] == ["sentiment/estonian-valence/est/korpus.csv"]


def test_to_config_records_scheme_mode_files_and_derivation():
    cfg = get_task("ner").to_config("swh_Latn")
    assert cfg["metric_options"] == {"scheme": "IOB2", "mode": "strict"} and cfg["derivation"] is None
    assert cfg["files"]["test"]["path"] == "masakhaner2/swa/test.txt" and len(cfg["files"]["test"]["sha256"]) == 64
    assert get_task("pos").to_config("slk_Latn")["derivation"] == {
        "from": "dev", "into": ["train", "dev"], "ratios": [0.8, 0.2], "seed": 13, "stratify": True}


# -- config errors in user task files -------------------------------------------------------------
GOOD = """\
name: {name}
kind: sequence
main_metric: accuracy
metrics: [accuracy, macro_f1]
datasets:
  sib200:
    reader: sib200_tsv
    files: {{train: "sib200/{{language}}/train.tsv", dev: "sib200/{{language}}/dev.tsv", test: "sib200/{{language}}/test.tsv"}}
languages:
  mlt_Latn:
"""


def user_task(tmp_path, name, text):
    from tasks.registry import add_task_dir
    d = tmp_path / "defs"
    d.mkdir(exist_ok=True)
    (d / f"{name}.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    add_task_dir(d)


def test_user_task_from_env_dir(tmp_path, monkeypatch):
    d = tmp_path / "envdefs"
    d.mkdir()
    (d / "topic_mt.yaml").write_text(GOOD.format(name="topic_mt"))
    monkeypatch.setenv("HARNESS_TASK_DIRS", str(d))
    assert "topic_mt" in task_names() and get_task("topic_mt").languages() == ["mlt_Latn"]


@pytest.mark.parametrize("edit,message", [
    (lambda t: t.replace("mlt_Latn:", "mlt_Latm:"),
     r"field languages\.mlt_Latm: unknown language 'mlt_Latm' \(did you mean 'mlt_Latn'"),
    (lambda t: t.replace("main_metric: accuracy", "main_metric: f1"),
     r"main_metric 'f1' must be one of metrics"),
    (lambda t: t.replace("[accuracy, macro_f1]", "[accuracy, macro_f2]").replace("main_metric: accuracy", "main_metric: accuracy"),
     r"field metrics: unknown metric 'macro_f2' \(did you mean 'macro_f1'"),
    (lambda t: t.replace("reader: sib200_tsv", "reader: sib_tsv"),
     r"field datasets\.sib200\.reader: unknown reader 'sib_tsv' \(did you mean 'sib200_tsv'"),
    (lambda t: t.replace("kind: sequence", "kind: pair"),
     r"field kind: Input should be 'sequence' or 'token' \(got 'pair'\)"),
    (lambda t: t.replace("metrics: [", "lables: [x]\nmetrics: ["),
     r"field lables: Extra inputs are not permitted"),
    (lambda t: t.replace(', test: "sib200/{language}/test.tsv"', ""),
     r"field languages\.mlt_Latn: splits \['dev', 'train'\] given; train, dev and test are needed"),
    (lambda t: t.replace("/train.tsv", "/trian.tsv"),
     r"field languages\.mlt_Latn\.files\.train: unknown data file 'sib200/mlt_Latn/trian\.tsv' \(did you mean"),
    (lambda t: t.replace("  sib200:\n", "  sib-200:\n"),
     r"field languages\.mlt_Latn\.dataset: unknown catalogue dataset 'sib-200' \(did you mean 'sib200'"),
    (lambda t: t.replace("kind: sequence", "kind: [sequence"),
     r":3: invalid YAML"),
])
def test_config_errors_name_file_field_and_fix(tmp_path, edit, message):
    user_task(tmp_path, "bad_task", edit(GOOD.format(name="bad_task")))
    with pytest.raises(ConfigError, match=r"bad_task\.yaml.*" + message):
        get_task("bad_task")


def test_derivation_errors(tmp_path):
    text = GOOD.format(name="bad_deriv").replace("  mlt_Latn:\n", textwrap.dedent("""\
      mlt_Latn:
        derivation: {from: dev, into: [train, test], ratios: [0.5, 0.5]}
    """).replace("\n", "\n  ").rstrip(" ").replace("mlt_Latn", "  mlt_Latn", 1))
    user_task(tmp_path, "bad_deriv", text)
    with pytest.raises(ConfigError, match=r"derivation\.into: \['test', 'train'\] is published already"):
        get_task("bad_deriv")
    text2 = text.replace("ratios: [0.5, 0.5]", "ratios: [0.5, 0.4]").replace("bad_deriv", "bad_ratio")
    user_task(tmp_path, "bad_ratio", text2)
    with pytest.raises(ConfigError, match=r"ratios must be positive and sum to 1"):
        get_task("bad_ratio")


def test_extends_cycle_and_name_mismatch(tmp_path):
    user_task(tmp_path, "loop_a", "extends: loop_b\n")
    user_task(tmp_path, "loop_b", "extends: loop_a\n")
    with pytest.raises(ConfigError, match=r"extends itself"):
        get_task("loop_a")
    user_task(tmp_path, "named", GOOD.format(name="other"))
    with pytest.raises(ConfigError, match=r"named\.yaml: field name: 'other' must match the file name 'named'"):
        get_task("named")


# -- loading with a miniature catalogue -------------------------------------------------------------
MINI_TASK = """\
name: mini_sentiment
kind: sequence
main_metric: macro_f1
metrics: [macro_f1, accuracy]
datasets:
  mini/valence:
    reader: headerless_csv
    reader_options: {label_map: {pos: positive, neg: negative}}
    labels: [negative, positive]
languages:
  est_Latn:
    dataset: mini/valence
    files: {all: mini/est/all.csv}
    derivation: {from: all, into: [train, dev, test], ratios: [0.6, 0.2, 0.2], seed: 5}
"""


def mini_corpus(n=20):
    return "".join(f"{'pos' if i % 2 else 'neg'},sentence {i}\n" for i in range(n))


def test_load_derived_task_from_catalogue(mini):
    mini.add("mini/est/all.csv", mini_corpus(), dataset="mini/valence", language="est_Latn",
             task="sentiment", split="all", license="GPL-3.0")
    (mini.task_dir() / "mini_sentiment.yaml").write_text(MINI_TASK)
    td = load_task_data("mini_sentiment", "est_Latn", mini.data_dir)
    assert td.derived and td.derivation == ("train/dev/test cut 60/20/20, stratified by label, from the "
                                            "unsplit data (20 examples), seed 5")
    assert td.sizes() == {"train": 12, "dev": 4, "test": 4}
    assert td.labels == ["negative", "positive"] and td.license == "GPL-3.0"
    assert td.files == {s: "mini/est/all.csv" for s in ("train", "dev", "test")}
    texts = [{x.text for x in td.split(s)} for s in ("train", "dev", "test")]
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])
    again = load_task_data("mini_sentiment", "est_Latn", mini.data_dir)
    assert (again.train, again.dev, again.test) == (td.train, td.dev, td.test)


def test_undeclared_label_is_refused_naming_the_file(mini):
    mini.add("mini/est/all.csv", mini_corpus() + "pos,x\n", dataset="mini/valence", language="est_Latn",
             task="sentiment", split="all")
    (mini.task_dir() / "mini_sentiment.yaml").write_text(
        MINI_TASK.replace("pos: positive, neg: negative", "pos: positive, neg: negative_ish"))
    with pytest.raises(DataError, match=r"mini/est/all\.csv: label 'negative_ish' is not among the labels declared"):
        load_task_data("mini_sentiment", "est_Latn", mini.data_dir)


def test_corrupt_or_missing_file_is_refused_by_the_loader(mini):
    mini.add("mini/est/all.csv", mini_corpus(), dataset="mini/valence", language="est_Latn",
             task="sentiment", split="all")
    (mini.task_dir() / "mini_sentiment.yaml").write_text(MINI_TASK)
    target = mini.data_dir / "mini/est/all.csv"
    target.write_text(mini_corpus().replace("sentence 3", "sentence 8"))  # same size, other bytes
    with pytest.raises(DataError, match=r"corrupt data file .*all\.csv: sha256 [0-9a-f]{64}, expected [0-9a-f]{64}"):
        load_task_data("mini_sentiment", "est_Latn", mini.data_dir)
    target.unlink()
    with pytest.raises(DataError, match=r"missing data file\(s\) in .*: mini/est/all\.csv; point --data-dir"):
        load_task_data("mini_sentiment", "est_Latn", mini.data_dir)


def test_new_language_by_configuration_only(mini, tmp_path, monkeypatch):
    import tasks.languages as L
    langs = tmp_path / "languages.yaml"
    langs.write_text(L.LANGUAGES_FILE.read_text(encoding="utf-8")
                     + "yor_Latn: {name: Yoruba, iso639_3: yor, script: Latn, wikipedia: yo}\n")
    monkeypatch.setattr(L, "LANGUAGES_FILE", langs)
    L._languages.cache_clear()
    try:
        header = "index_id\tcategory\ttext\n"
        for split, n in (("train", 6), ("dev", 2), ("test", 2)):
            rows = "".join(f"{i}\t{'travel' if i % 2 else 'health'}\tỌ̀rọ̀ {split} {i}\n" for i in range(n))
            mini.add(f"sib200/yor_Latn/{split}.tsv", header + rows, dataset="sib200", language="yor_Latn",
                     task="topic", split=split)
        (mini.task_dir() / "topic_yo.yaml").write_text(GOOD.format(name="topic_yo").replace("mlt_Latn", "yor_Latn"))
        td = load_task_data("topic_yo", "yor_Latn", mini.data_dir)
        assert td.sizes() == {"train": 6, "dev": 2, "test": 2} and td.labels == ["health", "travel"]
        row = {r["code"]: r for r in L.language_rows()}["yor_Latn"]
        assert row["cc100_gib"] is None and row["in_xlmr"] is False and row["wikipedia_gib"] == pytest.approx(0.006)
    finally:
        L._languages.cache_clear()
