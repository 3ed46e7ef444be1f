"""Hugging Face `datasets` as a task source, on local files written by the test (the Hub is not
reachable here; the same `datasets.load_dataset` code path serves Hub ids with a pinned revision)."""
from __future__ import annotations

import json
import textwrap

import pytest

datasets = pytest.importorskip("datasets")

from core.errors import ConfigError, DataError  # noqa: E402
from tasks.hf_source import load_hf_splits  # noqa: E402
from tasks.registry import add_task_dir, get_task, load_task_data  # noqa: E402
from tasks.spec import DatasetDef  # noqa: E402
from tasks.types import SequenceExample, TokenExample  # noqa: E402


@pytest.fixture(autouse=True)
def hf_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_cache")


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def test_user_task_from_json_files_relative_to_the_yaml(tmp_path):
    defs = tmp_path / "defs"
    for split, n in (("train", 6), ("validation", 2), ("test", 3)):
        write_jsonl(defs / "data" / f"{split}.jsonl",
                    [{"sentence": f"{split} sentenza {i}", "polarity": "pos" if i % 2 else "neg"} for i in range(n)])
    (defs / "my_sentiment.yaml").write_text(textwrap.dedent("""\
        name: my_sentiment
        kind: sequence
        main_metric: macro_f1
        metrics: [macro_f1, accuracy]
        datasets:
          my/mt-sentiment:
            source: hf
            path: json
            data_files: {train: data/train.jsonl, validation: data/validation.jsonl, test: data/test.jsonl}
            splits: {train: train, dev: validation, test: test}
            columns: {text: sentence, label: polarity}
            license: CC BY 4.0
            non_commercial: false
            citation: Test data
        languages:
          mlt_Latn:
        """))
    add_task_dir(defs)
    spec = get_task("my_sentiment")
    assert spec.license_for("mlt_Latn") == "CC BY 4.0" and spec.to_config("mlt_Latn")["hf"]["path"] == "json"
    td = load_task_data("my_sentiment", "mlt_Latn", tmp_path / "unused")
    assert td.sizes() == {"train": 6, "dev": 2, "test": 3} and not td.derived
    assert td.labels == ["neg", "pos"] and td.dataset == "my/mt-sentiment"
    assert td.train[1] == SequenceExample("train sentenza 1", "pos")
    assert td.files["dev"] == "json[validation]"
    from tasks.registry import license_notice_for
    assert "my/mt-sentiment  CC BY 4.0" in license_notice_for([("my_sentiment", "mlt_Latn")])


def test_classlabel_ints_mapped_to_names_from_a_local_directory(tmp_path):
    feats = datasets.Features({"text": datasets.Value("string"),
                               "label": datasets.ClassLabel(names=["negative", "neutral", "positive"])})
    local = tmp_path / "local_ds"
    local.mkdir()
    for split, labels in (("train", [0, 2, 1, 2]), ("test", [1, 0])):
        ds = datasets.Dataset.from_dict({"text": [f"t{i}" for i in range(len(labels))], "label": labels}, features=feats)
        ds.to_parquet(str(local / f"{split}.parquet"))
    ddef = DatasetDef(source="hf", path=str(local), splits={"train": "train", "test": "test"}, license="CC0")
    out = load_hf_splits(ddef, "sequence", base_dir=tmp_path)
    assert [x.label for x in out["train"]] == ["negative", "positive", "neutral", "positive"]
    assert out["test"] == [SequenceExample("t0", "neutral"), SequenceExample("t1", "negative")]


def test_token_task_with_sequence_of_classlabel(tmp_path):
    feats = datasets.Features({"tokens": datasets.List(datasets.Value("string")),
                               "ner_tags": datasets.List(datasets.ClassLabel(names=["O", "B-PER", "I-PER"]))})
    local = tmp_path / "ner_ds"
    local.mkdir()
    ds = datasets.Dataset.from_dict({"tokens": [["Ġużeppi", "Borg", "qal"]], "ner_tags": [[1, 2, 0]]}, features=feats)
    ds.to_parquet(str(local / "train.parquet"))
    ddef = DatasetDef(source="hf", path="ner_ds", splits={"all": "train"}, license="CC0",
                      columns={"tags": "ner_tags"})
    out = load_hf_splits(ddef, "token", base_dir=tmp_path)  # `path` relative to the YAML's directory
    assert out == {"all": [TokenExample(("Ġużeppi", "Borg", "qal"), ("B-PER", "I-PER", "O"))]}


def test_missing_column_and_split_are_config_errors(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", [{"txt": "a", "label": "x"}])
    ddef = DatasetDef(source="hf", path="json", data_files={"train": "train.jsonl"},
                      splits={"train": "train"}, license="CC0")
    with pytest.raises(ConfigError, match=r"has no column 'text' \(the text column\); columns: txt, label"):
        load_hf_splits(ddef, "sequence", base_dir=tmp_path)
    ddef2 = ddef.model_copy(update={"splits": {"train": "training"}})
    with pytest.raises(ConfigError, match=r"has no split 'training' \(for train\); it has: train"):
        load_hf_splits(ddef2, "sequence", base_dir=tmp_path)


def test_hub_id_needs_a_pinned_revision_and_load_failures_name_the_source(tmp_path, monkeypatch):
    ddef = DatasetDef(source="hf", path="someone/some-dataset", splits={"train": "train"}, license="CC0")
    with pytest.raises(ConfigError, match=r"pin a `revision`"):
        load_hf_splits(ddef, "sequence", base_dir=tmp_path)

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'someone/some-dataset' on the Hub (LocalEntryNotFoundError)")
    monkeypatch.setattr(datasets, "load_dataset", offline)
    pinned = ddef.model_copy(update={"revision": "0123abc"})
    with pytest.raises(DataError, match=r"cannot load Hugging Face dataset 'someone/some-dataset': ConnectionError"):
        load_hf_splits(pinned, "sequence", base_dir=tmp_path)


@pytest.mark.parametrize("fields,message", [
    ({"source": "hf", "splits": {"train": "train"}, "license": "x"}, "needs `path`"),
    ({"source": "hf", "path": "json", "license": "x"}, "needs `splits`"),
    ({"source": "hf", "path": "json", "splits": {"train": "train"}}, "needs `license`"),
    ({"reader": "two_column", "path": "json"}, "only apply to `source: hf`"),
    ({}, "needs `reader`"),
])
def test_dataset_definition_validation(fields, message):
    from pydantic import ValidationError
    with pytest.raises(ValidationError, match=message):
        DatasetDef(**fields)
