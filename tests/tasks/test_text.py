"""Target-language text for compression: raw text plus task *train* text, never dev or test."""
from __future__ import annotations

import pytest

from tasks.text import dev_texts, text_fingerprint, text_required_files, training_texts

TASK = """\
name: mini_topic
kind: sequence
main_metric: accuracy
metrics: [accuracy]
datasets:
  mini/topic:
    reader: headerless_csv
languages:
  est_Latn:
    files: {train: mini/est/train.csv, dev: mini/est/dev.csv, test: mini/est/test.csv}
"""
DERIVED = """\
name: mini_pos
kind: token
main_metric: upos_accuracy
metrics: [upos_accuracy]
datasets:
  mini/pos:
    reader: two_column
languages:
  est_Latn:
    files: {dev: mini/est/pos-dev.txt, test: mini/est/pos-test.txt}
    derivation: {from: dev, into: [train, dev], ratios: [0.5, 0.5], seed: 1}
"""


@pytest.fixture
def est(mini):
    add = lambda path, text, ds, split: mini.add(path, text, dataset=ds, language="est_Latn",  # noqa: E731
                                                 task="raw" if path.startswith("raw/") else "x", split=split)
    add("mini/est/train.csv", "a,Tere hommikust\nb,Head aega\na,Tere hommikust\n", "mini/topic", "train")
    add("mini/est/dev.csv", "a,Arendus lause\n", "mini/topic", "dev")
    add("mini/est/test.csv", "b,Testi lause.\n", "mini/topic", "test")
    add("mini/est/pos-dev.txt", "Üks NUM\n\nKaks NUM\n\nKolm NUM\n\nNeli NUM\n", "mini/pos", "dev")
    add("mini/est/pos-test.txt", "Viis NUM\n", "mini/pos", "test")
    add("raw/est/text.txt", "Vana tekst\ntesti   LAUSE\nHead aega\n\nVana tekst\n", "raw/x", "unlabeled")
    d = mini.task_dir(only=True)
    (d / "mini_topic.yaml").write_text(TASK)
    (d / "mini_pos.yaml").write_text(DERIVED)
    return mini


def test_training_texts_raw_then_train_deduplicated_without_dev_or_test(est):
    from tasks.registry import load_task_data
    pos = load_task_data("mini_pos", "est_Latn", est.data_dir)
    pos_train = [" ".join(x.tokens) for x in pos.train]
    texts = training_texts("est_Latn", est.data_dir)
    # 'testi LAUSE' equals the test text 'Testi lause.' up to case/space/punctuation: dropped
    # raw lines first (file order), then the train texts of each task by task name; first copy kept
    assert texts == ["Vana tekst", "Head aega", *pos_train, "Tere hommikust"]
    held_out = {"Arendus lause", "Testi lause.", "Viis", *(" ".join(x.tokens) for x in pos.dev)}
    assert not held_out & set(texts)
    assert len(pos_train) == 2  # only the derived train part of the derived dev split


def test_options_and_task_selection(est):
    assert training_texts("est_Latn", est.data_dir, include_task_train=False) == ["Vana tekst", "Head aega"]
    only_topic = training_texts("est_Latn", est.data_dir, include_raw=False, tasks=["mini_topic"])
    assert only_topic == ["Tere hommikust", "Head aega"]


def test_dev_texts_and_required_files(est):
    from tasks.registry import load_task_data
    pos = load_task_data("mini_pos", "est_Latn", est.data_dir)
    # tasks in name order: mini_pos, then mini_topic
    assert dev_texts("est_Latn", est.data_dir) == [*(" ".join(x.tokens) for x in pos.dev), "Arendus lause"]
    assert [e.path for e in text_required_files("est_Latn")] == [
        "mini/est/dev.csv", "mini/est/pos-dev.txt", "mini/est/pos-test.txt", "mini/est/test.csv",
        "mini/est/train.csv", "raw/est/text.txt"]


def test_fingerprint_is_order_and_boundary_sensitive():
    assert text_fingerprint(["a", "b"]) == text_fingerprint(["a", "b"])
    assert text_fingerprint(["a", "b"]) != text_fingerprint(["b", "a"])
    assert text_fingerprint(["ab", "c"]) != text_fingerprint(["a", "bc"])
    assert len(text_fingerprint([])) == 64


@pytest.mark.real_data
@pytest.mark.parametrize("language", ["mlt_Latn", "swh_Latn", "slk_Latn"])
def test_real_training_texts_hold_no_dev_or_test_text(real_data_dir, language):
    import re

    from tasks.registry import get_task, load_task_data, task_names
    norm = lambda s: re.sub(r"[\W_]+", "", s.lower())  # noqa: E731
    held_out = set()
    for t in task_names():
        if language in get_task(t).languages():
            td = load_task_data(t, language, real_data_dir)
            held_out |= {norm(x.text) for x in (*td.dev, *td.test)}
    texts = training_texts(language, real_data_dir)
    assert len(texts) > 3000 and len(texts) == len(set(texts))
    assert not {norm(t) for t in texts} & held_out
    if language == "mlt_Latn":  # the smallest: check determinism on it only
        assert training_texts(language, real_data_dir) == texts
