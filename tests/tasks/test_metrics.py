"""Metrics against values computed by hand in the comments."""
from __future__ import annotations

import pytest

from tasks.metrics import METRICS, compute
from tasks.registry import get_task


def test_accuracy_and_macro_f1_by_hand():
    gold = ["a", "a", "b", "c"]
    pred = ["a", "b", "b", "a"]
    # a: tp=1 fp=1 fn=1 -> F1 2/4;  b: tp=1 fp=1 fn=0 -> 2/3;  c: tp=0 fp=0 fn=1 -> 0
    scores = compute(get_task("topic"), gold, pred)
    assert scores["accuracy"] == pytest.approx(2 / 4)
    assert scores["macro_f1"] == pytest.approx((1 / 2 + 2 / 3 + 0) / 3)


def test_macro_f1_counts_labels_only_predicted():
    # a: tp=1 fn=1 -> 2/3; d (never gold, predicted once): 0 -> mean over {a, d} = 1/3
    assert METRICS.get("macro_f1")(["a", "a"], ["a", "d"], {}) == pytest.approx(1 / 3)
    # labels that occur in neither gold nor pred do not count (e.g. 'neutral' here)
    assert METRICS.get("macro_f1")(["pos", "neg"], ["pos", "neg"], {}) == 1.0


def test_sentiment_main_metric_is_macro_f1():
    spec = get_task("sentiment")
    assert spec.main_metric == "macro_f1" and set(spec.metrics) == {"macro_f1", "accuracy"}
    assert get_task("topic").main_metric == "accuracy"


def test_ner_strict_iob2_differs_from_default_mode():
    spec = get_task("ner")
    assert spec.metric_options == {"scheme": "IOB2", "mode": "strict"}
    gold = [["B-PER", "I-PER", "O", "B-LOC"]]
    pred = [["I-PER", "I-PER", "O", "B-LOC"]]
    # strict IOB2: an entity must start with B-, so pred has only LOC -> P = 1/1, R = 1/2, F1 = 2/3
    strict = compute(spec, gold, pred)
    assert strict["entity_precision"] == pytest.approx(1.0)
    assert strict["entity_recall"] == pytest.approx(0.5)
    assert strict["entity_f1"] == pytest.approx(2 / 3)
    # conlleval-style default mode starts a chunk at I-PER, so PER matches too: F1 = 1
    assert METRICS.get("entity_f1")(gold, pred, {"mode": "default"}) == pytest.approx(1.0)


def test_ner_entity_f1_over_several_sentences():
    gold = [["B-ORG", "I-ORG", "O"], ["B-DATE", "O", "B-PER"]]
    pred = [["B-ORG", "O", "O"], ["B-DATE", "O", "B-PER"]]
    # gold: ORG(0-1), DATE, PER = 3; pred: ORG(0), DATE, PER = 3; matches: DATE, PER = 2
    scores = compute(get_task("ner"), gold, pred)
    assert scores["entity_precision"] == pytest.approx(2 / 3)
    assert scores["entity_recall"] == pytest.approx(2 / 3)
    assert scores["entity_f1"] == pytest.approx(2 / 3)


def test_upos_accuracy_is_per_word_not_per_sentence_and_not_seqeval():
    gold = [["NOUN", "VERB", "ADJ"], ["PUNCT"]]
    pred = [["NOUN", "NOUN", "ADJ"], ["X"]]
    # 2 of 4 words right = 0.5 (a per-sentence mean would give (2/3 + 0) / 2 = 1/3)
    assert compute(get_task("pos"), gold, pred) == {"upos_accuracy": pytest.approx(0.5)}
    # tags that look like IOB prefixes are compared as whole strings, not as entities
    assert compute(get_task("pos"), [["B-X", "I-X"]], [["B-X", "B-X"]])["upos_accuracy"] == pytest.approx(0.5)


def test_misaligned_predictions_are_rejected():
    with pytest.raises(ValueError, match="2 gold but 1 predicted"):
        compute(get_task("topic"), ["a", "b"], ["a"])
    with pytest.raises(ValueError, match="sentence 0: 2 gold tags but 1 predicted"):
        compute(get_task("pos"), [["A", "B"]], [["A"]])
