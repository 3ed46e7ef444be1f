"""Tiny teachers (built once per session) and target-language text for the compression tests."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from compression.tensors.modelio import has_mlm_head, load_model
from compression.stages import StageContext
from compression.tiny import one_thread, tiny_corpus, write_tiny_teacher
from compression.stages.vocab import load_tokenizer


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="session")
def teachers(tmp_path_factory) -> dict[str, Path]:
    """bert (WordPiece), xlmr and e5 (Unigram) saved as their transformers classes, bpe (byte-level
    BPE), and bert-tk / xlmr-tk: the same vocabularies built with the tokenizers library and saved
    as PreTrainedTokenizerFast (tokenizer.json used as it is)."""
    root = tmp_path_factory.mktemp("teachers")
    out = {kind: write_tiny_teacher(kind, root / kind) for kind in ("bert", "xlmr", "e5", "bpe")}
    for kind in ("bert", "xlmr"):
        out[f"{kind}-tk"] = write_tiny_teacher(kind, root / f"{kind}-tk", tokenizer_backend="tokenizers")
    return out


@pytest.fixture(scope="session")
def train_texts() -> list[str]:
    return tiny_corpus("aa", 400, seed=0)


@pytest.fixture(scope="session")
def dev_texts() -> list[str]:
    return tiny_corpus("aa", 60, seed=7)


@pytest.fixture
def ctx(train_texts, dev_texts):
    return StageContext(seed=5, language="aa", texts=train_texts, dev=dev_texts,
                        data_fingerprint="test", teacher={"name": "tiny", "source": "test"})


class Helpers:
    @staticmethod
    def encode(model_dir: Path, texts: list[str]) -> dict:
        return dict(load_tokenizer(model_dir)(texts, padding=True, return_tensors="pt"))

    @staticmethod
    def outputs(model_dir: Path, batch: dict) -> torch.Tensor:
        """Last hidden states (an encoder) or MLM logits (a model with an MLM head)."""
        model = load_model(model_dir)
        with torch.no_grad():
            out = model(**batch)
        return out.logits if has_mlm_head(model.config) else out.last_hidden_state


@pytest.fixture(scope="session")
def helpers() -> Helpers:
    return Helpers()
