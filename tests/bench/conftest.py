"""Fixtures of the benchmark tests: a student derived from the shared tiny BERT, a quick grid."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.bench.config import BenchSection
from harness.store import Store


@pytest.fixture
def tiny_student(tiny_bert: Path, tmp_path: Path) -> Path:
    """The tiny BERT with its last layer dropped (a depth-pruned student), same tokenizer."""
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(tiny_bert)
    model.encoder.layer = model.encoder.layer[:1]
    model.config.num_hidden_layers = 1
    out = tmp_path / "tiny-student"
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(out)
    return out


@pytest.fixture
def quick_section() -> BenchSection:
    """Few iterations, one thread, CPU only, one process per row (no repeats, memory measured by
    the latency process): enough to exercise every code path quickly."""
    return BenchSection(batch_sizes=[2], seq_lens=[8], devices=["cpu"], warmup=0,
                        min_iterations=3, min_duration_s=0.0, threads=1, repeats=1,
                        memory_mmap_threshold=None, targets=["load", "first_forward", "forward"])


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "bench.duckdb").init()
