"""Input lengths stay within the model's position table, in training as in evaluation (RoBERTa-
family models number positions from pad_token_id + 1, so 514 positions hold 512 tokens)."""
from __future__ import annotations

from types import SimpleNamespace

from harness.finetune.protocol import Protocol
from harness.finetune.train import Finetuner
from tasks.registry import get_task
from tests.conftest import save_tiny_model


def test_long_texts_train_on_a_model_with_a_short_position_table(tmp_path):
    """The tiny XLM-R holds 64 tokens; the protocol asks for 128 in training."""
    model = save_tiny_model(tmp_path / "xlmr", "xlmr")
    long = " ".join(["the big red cat sleeps"] * 40)
    split = [SimpleNamespace(text=f"{long} {i}", label="a" if i % 2 else "b") for i in range(8)]
    data = SimpleNamespace(labels=["a", "b"], train=split, dev=split[:4], test=split[4:], language="mlt_Latn")
    proto = Protocol(epochs=1, batch_size=4, precision="fp32", max_length=128).resolve("topic")
    result = Finetuner(model, get_task("topic"), data, proto, seed=1, progress=False).run()
    assert result.n_train == 8 and all(0 <= s.value <= 1 for s in result.scores)
