"""Speed of the compression hot paths on tiny models: vocabulary mining, each stage, distillation.

Each case also checks its result, so a benchmark of broken code fails instead of timing it.
"""
from __future__ import annotations

import json

import pytest

vocab = pytest.importorskip("compression.stages.vocab")
stages = pytest.importorskip("compression.stages")
config = pytest.importorskip("compression.schema")


def _ctx(texts):
    return stages.StageContext(seed=0, device="cpu", language="aa", texts=texts[:400], dev=texts[-100:])


@pytest.mark.benchmark(group="vocab-mining")
def test_count_tokens(benchmark, teacher, texts):
    tok = vocab.load_tokenizer(teacher)
    counts = benchmark(vocab.count_tokens, tok, texts)
    assert sum(counts.values()) > len(texts)


@pytest.mark.benchmark(group="vocab-mining")
def test_select_ids(benchmark, teacher, texts):
    from transformers import AutoConfig

    tok = vocab.load_tokenizer(teacher)
    tj = vocab.tokenizer_json(tok)
    cfg = config.VocabStage(size=150)
    model_config = AutoConfig.from_pretrained(teacher)
    kept, facts = benchmark(vocab.select_ids, cfg, tj, tok, model_config, texts, model_config.vocab_size)
    assert len(kept) == facts["kept"] <= 150


STAGES = {
    "vocab": lambda: config.VocabStage(size=150),
    "depth": lambda: config.DepthStage(layers=2, strategy="stride"),
    "ffn": lambda: config.FfnStage(width=128, calibration_lines=32, batch_size=16, max_length=32),
    "hidden-truncate": lambda: config.HiddenStage(size=32, init="truncate"),
    "hidden-svd": lambda: config.HiddenStage(size=32, init="svd"),
}


@pytest.mark.benchmark(group="stage")
@pytest.mark.parametrize("stage", list(STAGES))
def test_stage(benchmark, rounds, teacher, texts, fresh_dir, stage):
    cfg = STAGES[stage]()

    def run():
        out = fresh_dir()
        stages.run_stage(teacher, cfg, _ctx(texts), out)
        return out

    out = benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=0)
    saved = json.loads((out / "config.json").read_text())
    expected = {"vocab": ("vocab_size", None), "depth": ("num_hidden_layers", 2),
                "ffn": ("intermediate_size", 128), "hidden-truncate": ("hidden_size", 32),
                "hidden-svd": ("hidden_size", 32)}[stage]
    field, value = expected
    assert saved[field] == value if value is not None else saved[field] <= 150


@pytest.mark.benchmark(group="distill")
def test_distill_steps(benchmark, rounds, teacher, texts, fresh_dir):
    """Three optimizer steps of student-from-teacher distillation (loading and saving included)."""
    distill = pytest.importorskip("compression.distill.loop")
    student = fresh_dir()
    stages.run_stage(teacher, config.DepthStage(layers=2), _ctx(texts), student)
    cfg = distill.DistillConfig(steps=3, batch_size=8, max_length=32, checkpoint_every=None, log_every=1)

    def run():
        return distill.distill(student, teacher, texts[:200], cfg, fresh_dir(), device="cpu", progress=False)

    report = benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=0)
    assert report.finished and report.steps == 3
