"""Shared by the `harness eval` tests: two toy tasks (sequence and token) read from small JSON-lines
files written by the test, and a grid of a tiny model over them."""
from __future__ import annotations

import json
import random
import textwrap

import pytest
from typer.testing import CliRunner

from cli.app import app
from harness.store import Store
from tests.conftest import save_tiny_model

ANIMALS = ["cat", "dog", "kelb", "mačka", "pes"]
THINGS = ["house", "nyumba", "dom", "chakula"]
ADJ = ["red", "blue", "big", "small", "kubwa"]


def _toy_rows(n: int, seed: int):
    rng = random.Random(seed)
    seq, tok = [], []
    for i in range(n):
        animal = i % 2 == 0
        noun = rng.choice(ANIMALS if animal else THINGS)
        adj = rng.choice(ADJ)
        seq.append({"text": f"the {adj} {noun} sleeps", "label": "animal" if animal else "thing"})
        tok.append({"tokens": ["the", adj, noun, "sleeps"], "tags": ["DET", "ADJ", "NOUN", "VERB"]})
    return seq, tok


@pytest.fixture
def toy_tasks(tmp_path, monkeypatch):
    """Two user tasks (sequence and token) read with the Hugging Face `datasets` json builder."""
    from tasks import catalogue, registry

    defs = tmp_path / "taskdefs"
    for split, n in (("train", 40), ("validation", 12), ("test", 16)):
        seq, tok = _toy_rows(n, seed=len(split))
        for name, rows in (("seq", seq), ("tok", tok)):
            path = defs / "data" / f"{name}-{split}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    for name, kind, main, metrics, cols in (
            ("toy_topic", "sequence", "accuracy", "[accuracy, macro_f1]", "{text: text, label: label}"),
            ("toy_pos", "token", "upos_accuracy", "[upos_accuracy]", "{tokens: tokens, tags: tags}")):
        short = "seq" if kind == "sequence" else "tok"
        (defs / f"{name}.yaml").write_text(textwrap.dedent(f"""\
            name: {name}
            kind: {kind}
            main_metric: {main}
            metrics: {metrics}
            datasets:
              toy/{name}:
                source: hf
                path: json
                data_files: {{train: data/{short}-train.jsonl, validation: data/{short}-validation.jsonl, test: data/{short}-test.jsonl}}
                splits: {{train: train, dev: validation, test: test}}
                columns: {cols}
                license: CC0 1.0
            languages:
              mlt_Latn:
              swh_Latn:
            """))
    monkeypatch.setenv("HARNESS_TASK_DIRS", str(defs))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    registry._specs.clear()
    registry._extra_dirs.clear()
    catalogue.load_catalogue.cache_clear()
    yield defs
    registry._specs.clear()
    registry._extra_dirs.clear()


@pytest.fixture
def grid_file(tmp_path, toy_tasks):
    model = save_tiny_model(tmp_path / "models" / "tiny", "bert")
    path = tmp_path / "grid.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: toy
        models:
          - name: tiny
            source: {model}
        languages: [mlt_Latn, swh_Latn]
        tasks: [toy_topic, toy_pos]
        seeds: {{base: 1, n: 2}}
        protocol: {{profile: quick, epochs: 2, batch_size: 8, learning_rate: 1.0e-3}}
        """))
    return path


def run_eval(grid_file, db, *extra):
    result = CliRunner().invoke(app, ["eval", "--models", str(grid_file), "--db", str(db),
                                      "--data-dir", str(grid_file.parent / "data"), "--no-bench", *extra])
    return result


def rows(db, sql):
    return Store(db).query(sql)[1]
