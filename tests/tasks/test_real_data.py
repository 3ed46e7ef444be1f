"""Every task x language loads from the real data with the counts of MANIFEST.json (whatever pairs
the definitions hold; their number is pinned in tests/regression/snapshots/catalogue_counts.json)."""
from __future__ import annotations

import json
from collections import Counter

import pytest

from tasks.catalogue import load_catalogue
from tasks.registry import get_task, load_task_data, task_names

pytestmark = pytest.mark.real_data

PAIRS = [(t, lang) for t in task_names() for lang in get_task(t).languages()]
UPOS = {"ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN", "PUNCT",
        "SCONJ", "SYM", "VERB", "X"}


@pytest.fixture(scope="module")
def counts(real_data_dir):
    """MANIFEST.json counts per file (from the data directory, else the catalogue's copy)."""
    manifest = real_data_dir / "MANIFEST.json"
    if manifest.exists():
        return {m["path"]: m.get("counts", {}) for m in json.loads(manifest.read_text(encoding="utf-8"))}
    return {e.path: e.counts for e in load_catalogue().files}


def n_items(c: dict) -> int:
    return c.get("examples", c.get("sentences"))


def n_words(c: dict) -> int:
    return c.get("words", c.get("tokens"))


def test_pairs_cover_the_data():
    from tasks.catalogue import load_catalogue
    catalogued = {(e.task, e.language) for e in load_catalogue().files if e.task in task_names()}
    assert catalogued <= set(PAIRS) and PAIRS


@pytest.mark.parametrize("task,language", PAIRS)
def test_loads_with_manifest_counts(real_data_dir, counts, task, language):
    td = load_task_data(task, language, real_data_dir)
    spec = get_task(task)
    src = spec.source_for(language)
    assert td.derived == (src.derivation is not None) and bool(td.derivation) == td.derived
    assert td.dataset == src.dataset and td.license and td.citation
    assert all(td.sizes()[s] > 0 for s in ("train", "dev", "test"))
    if not td.derived:
        for split in ("train", "dev", "test"):
            c = counts[src.files[split]]
            assert len(td.split(split)) == n_items(c), (split, c)
            if spec.kind == "token":
                assert sum(len(x.tokens) for x in td.split(split)) == n_words(c)
    else:
        d = src.derivation
        source_count = n_items(counts[src.files[d.source]])
        assert sum(len(td.split(s)) for s in d.into) == source_count
        for s in {"train", "dev", "test"} - set(d.into):
            assert len(td.split(s)) == n_items(counts[src.files[s]])
        assert f"({source_count} " in td.derivation and f"seed {d.seed}" in td.derivation
        assert td.files[d.into[0]] == src.files[d.source]
        # derived parts never share an example object position: disjoint by construction
        assert not set(map(id, td.train)) & set(map(id, td.dev))
    all_labels = Counter(lab for s in ("train", "dev", "test") for x in td.split(s)
                         for lab in (x.tags if spec.kind == "token" else (x.label,)))
    assert set(all_labels) <= set(td.labels)
    if task == "pos":
        assert set(td.labels) == UPOS
    if spec.kind == "token" and not td.derived:  # the tag inventory of every file, as MANIFEST lists it
        for split, rel in src.files.items():
            tagset = counts[rel].get("upos_tagset") or counts[rel].get("label_set")
            assert {t for x in td.split(split) for t in x.tags} == set(tagset)


def test_topic_labels_and_parallel_splits(real_data_dir):
    mt = load_task_data("topic", "mlt_Latn", real_data_dir)
    en = load_task_data("topic", "eng_Latn", real_data_dir)
    assert len(mt.labels) == 7 and "science/technology" in mt.labels
    assert [x.label for x in mt.test] == [x.label for x in en.test]  # SIB-200 is parallel


def test_sentiment_label_mapping_keeps_counts(real_data_dir, counts):
    mt = load_task_data("sentiment", "mlt_Latn", real_data_dir)
    c = counts["sentiment/typology-crosslingual/mt/train.csv"]["label_counts"]
    assert Counter(x.label for x in mt.train) == {"negative": c["0"], "positive": c["1"]}
    est = load_task_data("sentiment", "est_Latn", real_data_dir)
    c = counts["sentiment/estonian-valence/est/korpus.csv"]["label_counts"]
    total = Counter(x.label for s in ("train", "dev", "test") for x in est.split(s))
    assert total == {"negative": c["negatiivne"], "neutral": c["neutraalne"], "positive": c["positiivne"]}
    # stratified: each derived split keeps the corpus's label proportions within a couple of examples
    for s, share in (("train", 0.8), ("dev", 0.1), ("test", 0.1)):
        got = Counter(x.label for x in est.split(s))
        for lab, n in total.items():
            assert abs(got[lab] - n * share) <= 1.5


def test_amharic_pos_counts_syntactic_words_not_surface_tokens(real_data_dir, counts):
    td = load_task_data("pos", "amh_Ethi", real_data_dir)
    words = sum(len(x.tokens) for s in ("train", "dev", "test") for x in td.split(s))
    assert words == counts["ud/UD_Amharic-ATT/am_att-ud-test.conllu"]["words"] == 10010


def test_verify_the_whole_data_directory(real_data_dir):
    from cli.data import data_verify
    lines: list[str] = []
    assert data_verify(data_dir=real_data_dir, echo=lines.append) == 0, lines
