"""Derived splits: deterministic (also across processes with other hash seeds), order-independent,
stratified, disjoint and complete."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from tasks.splits import derive, describe, split_examples
from tasks.types import SequenceExample, TokenExample

ROOT = Path(__file__).resolve().parents[2]


def corpus(n=200):
    labels = ["negative"] * (n // 2) + ["neutral"] * (n // 4) + ["positive"] * (n - n // 2 - n // 4)
    return [SequenceExample(f"text number {i}", lab) for i, lab in enumerate(labels)]


def test_parts_are_disjoint_complete_and_in_file_order():
    data = corpus()
    train, dev, test = split_examples(data, [0.8, 0.1, 0.1], seed=13)
    assert len(train) + len(dev) + len(test) == len(data)
    assert set(train).isdisjoint(dev) and set(train).isdisjoint(test) and set(dev).isdisjoint(test)
    assert (len(train), len(dev), len(test)) == (160, 20, 20)
    for part in (train, dev, test):
        positions = [data.index(x) for x in part]
        assert positions == sorted(positions)


def test_stratified_by_label():
    train, dev, test = split_examples(corpus(), [0.8, 0.1, 0.1], seed=13)
    # 100 negative / 50 neutral / 50 positive -> exactly 80/40/40, 10/5/5, 10/5/5
    assert Counter(x.label for x in train) == {"negative": 80, "neutral": 40, "positive": 40}
    assert Counter(x.label for x in dev) == {"negative": 10, "neutral": 5, "positive": 5}


def test_same_seed_same_split_other_seed_other_split_input_order_irrelevant():
    data = corpus()
    a = split_examples(data, [0.8, 0.2], seed=13)
    assert a == split_examples(list(data), [0.8, 0.2], seed=13)
    assert a != split_examples(data, [0.8, 0.2], seed=14)
    shuffled = data[1::2] + data[0::2]
    b = split_examples(shuffled, [0.8, 0.2], seed=13)
    assert [set(p) for p in a] == [set(p) for p in b]


def test_identical_examples_are_split_deterministically():
    data = [SequenceExample("same", "x")] * 10
    assert [len(p) for p in split_examples(data, [0.8, 0.2], seed=1)] == [8, 2]


def test_derive_replaces_source_and_describes():
    toks = [TokenExample((f"w{i}",), ("NOUN",)) for i in range(50)]
    test = [TokenExample(("t",), ("X",))]
    out, text = derive({"dev": toks, "test": test}, "dev", ["train", "dev"], [0.8, 0.2], seed=13)
    assert len(out["train"]) == 40 and len(out["dev"]) == 10 and out["test"] == test
    assert text == "train/dev cut 80/20 from the published dev split (50 sentences), seed 13; test as published"
    assert describe("all", ["train", "dev", "test"], [0.8, 0.1, 0.1], 7, 2122, "examples", True) == (
        "train/dev/test cut 80/10/10, stratified by label, from the unsplit data (2122 examples), seed 7")


def test_same_split_in_processes_with_different_hash_seeds():
    code = ("import json; from tasks.splits import split_examples; from tasks.types import SequenceExample as S; "
            "d=[S(f't{i}', 'abc'[i % 3]) for i in range(90)]; "
            "print(json.dumps([[x.text for x in p] for p in split_examples(d, [0.8, 0.1, 0.1], seed=13)]))")
    outs = []
    for hash_seed in ("1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
        outs.append(json.loads(res.stdout))
    assert outs[0] == outs[1]
    assert [len(p) for p in outs[0]] == [72, 9, 9]
