import pytest

from harness.finetune.protocol import PROFILES, Protocol


def test_profile_defaults_and_overrides():
    p = Protocol(profile="fewshot", epochs=5, tasks={"ner": {"epochs": 8, "learning_rate": 1e-4}})
    assert p.resolve("topic").epochs == 5
    assert p.resolve("topic").max_train_examples == PROFILES["fewshot"]["max_train_examples"]
    ner = p.resolve("ner")
    assert ner.epochs == 8 and ner.learning_rate == 1e-4


def test_quick_is_the_old_name_of_fewshot():
    assert Protocol(profile="quick").profile == "fewshot"
    assert Protocol(profile="quick").resolve("topic").hash() == Protocol(profile="fewshot").resolve("topic").hash()


def test_hash_changes_with_any_setting_and_is_stable():
    base = Protocol().resolve("topic")
    assert base.hash() == Protocol().resolve("topic").hash()
    assert base.hash() != Protocol(learning_rate=3e-4).resolve("topic").hash()
    assert base.hash() != Protocol(profile="full").resolve("topic").hash()
    assert base.hash() != Protocol(profile="fewshot").resolve("topic").hash()
    assert base.hash() != Protocol(freeze_embeddings=True).resolve("topic").hash()
    assert Protocol(tasks={"ner": {"epochs": 9}}).resolve("topic").hash() == base.hash()


def test_kind_defaults_sit_between_profile_and_grid():
    fewshot = Protocol(profile="fewshot")
    assert fewshot.resolve("ner").epochs == 8 and fewshot.resolve("pos").epochs == 8
    assert fewshot.resolve("topic").epochs == 5
    assert Protocol(profile="fewshot", epochs=3).resolve("ner").epochs == 3


def test_standard_is_the_default_and_trains_on_whole_splits_where_affordable():
    p = Protocol()
    assert p.profile == "standard"
    assert p.resolve("topic").max_train_examples is None and p.resolve("pos").max_train_examples is None
    # sentiment and NER are capped per task; a grid's own setting still wins
    assert p.resolve("sentiment").max_train_examples == 2000
    assert Protocol(tasks={"ner": {"max_train_examples": 500}}).resolve("ner").max_train_examples == 500


def test_full_profile_has_no_caps():
    full = Protocol(profile="full").resolve("pos")
    assert full.max_train_examples is None and full.max_dev_examples is None


def test_precision_is_resolved_and_part_of_the_hash(monkeypatch):
    monkeypatch.setenv("HARNESS_CPU_BF16", "1")
    auto = Protocol().resolve("topic", device="cpu")
    assert auto.precision == "bf16"
    forced = Protocol(precision="fp32").resolve("topic", device="cpu")
    assert forced.precision == "fp32" and forced.hash() != auto.hash()
    # `auto` and an explicit bf16 compute the same thing here, so they are one run
    assert Protocol(precision="bf16").resolve("topic", device="cpu").hash() == auto.hash()
    monkeypatch.setenv("HARNESS_CPU_BF16", "0")
    assert Protocol().resolve("topic", device="cpu").precision == "fp32"


def test_family_id_separates_precisions(monkeypatch):
    monkeypatch.setenv("HARNESS_CPU_BF16", "1")
    bf16 = Protocol().family_id()
    monkeypatch.setenv("HARNESS_CPU_BF16", "0")
    assert Protocol().family_id() != bf16


def test_bad_precision_is_refused():
    with pytest.raises(ValueError):
        Protocol(precision="fp16")
