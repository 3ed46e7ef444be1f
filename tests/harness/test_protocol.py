from harness.finetune.protocol import PROFILES, Protocol


def test_profile_defaults_and_overrides():
    p = Protocol(profile="quick", epochs=5, tasks={"ner": {"epochs": 8, "learning_rate": 1e-4}})
    assert p.resolve("topic").epochs == 5
    assert p.resolve("topic").max_train_examples == PROFILES["quick"]["max_train_examples"]
    ner = p.resolve("ner")
    assert ner.epochs == 8 and ner.learning_rate == 1e-4


def test_hash_changes_with_any_setting_and_is_stable():
    base = Protocol().resolve("topic")
    assert base.hash() == Protocol().resolve("topic").hash()
    assert base.hash() != Protocol(learning_rate=3e-4).resolve("topic").hash()
    assert base.hash() != Protocol(profile="full").resolve("topic").hash()
    assert Protocol(tasks={"ner": {"epochs": 9}}).resolve("topic").hash() == base.hash()


def test_kind_defaults_sit_between_profile_and_grid():
    assert Protocol().resolve("ner").epochs == 8 and Protocol().resolve("pos").epochs == 8
    assert Protocol().resolve("topic").epochs == 5
    assert Protocol(epochs=3).resolve("ner").epochs == 3


def test_full_profile_has_no_caps():
    full = Protocol(profile="full").resolve("pos")
    assert full.max_train_examples is None and full.max_dev_examples is None
