"""Speed of the evaluation hot paths on a tiny model: encoding a test split and predicting it."""
from __future__ import annotations

import pytest

train = pytest.importorskip("harness.finetune.train")
features = pytest.importorskip("harness.finetune.features")
protocol = pytest.importorskip("harness.finetune.protocol")
registry = pytest.importorskip("tasks.registry")
types = pytest.importorskip("tasks.types")

N_EXAMPLES = 256
LABELS = ["science/technology", "travel", "politics", "sports", "health", "entertainment", "geography"]


@pytest.fixture(scope="module")
def topic_setup(teacher, texts):
    """A tiny sequence classifier, the topic task's spec and a fake test split of 256 texts."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    spec = registry.get_task("topic")
    examples = [types.SequenceExample(t, LABELS[i % len(LABELS)]) for i, t in enumerate(texts[:N_EXAMPLES])]
    data = types.TaskData(task="topic", language="aa", dataset="synthetic", kind="sequence",
                          labels=LABELS, train=examples, dev=examples, test=examples)
    proto = protocol.Protocol().resolve("topic")
    tuner = train.Finetuner(teacher, spec, data, proto, seed=0, device="cpu", progress=False)
    tok = AutoTokenizer.from_pretrained(teacher)
    model = AutoModelForSequenceClassification.from_pretrained(teacher, num_labels=len(LABELS)).eval()
    return tuner, tok, model, examples, proto


@pytest.mark.benchmark(group="evaluation")
def test_encode_test_split(benchmark, topic_setup):
    tuner, tok, _, examples, proto = topic_setup
    label2id = {label: i for i, label in enumerate(LABELS)}
    encoded = benchmark(features.encode_sequences, tok, [e.text for e in examples],
                        [e.label for e in examples], label2id, proto.max_length)
    assert len(encoded) == N_EXAMPLES


@pytest.mark.benchmark(group="evaluation")
def test_predict_test_split(benchmark, topic_setup):
    """Length-sorted batches of eval_batch_size through the classifier, argmax per example."""
    tuner, tok, model, examples, proto = topic_setup
    label2id = {label: i for i, label in enumerate(LABELS)}
    encoded = features.encode_sequences(tok, [e.text for e in examples], [e.label for e in examples],
                                        label2id, proto.max_length)
    pred = benchmark(tuner.predict, model, encoded, tok.pad_token_id)
    assert len(pred) == N_EXAMPLES and all(0 <= p < len(LABELS) for p in pred)


@pytest.fixture(scope="module")
def wide_vocab_encoder(tmp_path_factory):
    """A tiny BERT encoder with a teacher-sized vocabulary (250,002 rows of 64), of which a toy
    split's text reaches a few hundred: the shape of fine-tuning multilingual-e5 on one language."""
    from transformers import BertConfig, BertModel

    from tests.conftest import build_wordpiece_tokenizer

    tok = build_wordpiece_tokenizer()
    cfg = BertConfig(vocab_size=250_002, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=128, max_position_embeddings=64, pad_token_id=tok.pad_token_id)
    path = tmp_path_factory.mktemp("wide-vocab")
    BertModel(cfg, add_pooling_layer=False).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.mark.benchmark(group="fine-tuning, 250k-row embedding")
@pytest.mark.parametrize("rows", ["used rows", "whole matrix"])
def test_finetune_epoch_wide_vocabulary(benchmark, wide_vocab_encoder, texts, rows, rounds, monkeypatch):
    """One epoch over 64 examples: training the reachable rows (harness/finetune/used_rows.py)
    against the dense gradient and AdamW step over the whole matrix."""
    used_rows = pytest.importorskip("harness.finetune.used_rows")
    monkeypatch.setattr(used_rows, "MAX_SHARE", 0.5 if rows == "used rows" else 0.0)
    examples = [types.SequenceExample(" ".join(t.split()[:12]), LABELS[i % len(LABELS)])
                for i, t in enumerate(texts[:64])]
    data = types.TaskData(task="topic", language="aa", dataset="synthetic", kind="sequence",
                          labels=LABELS, train=examples, dev=examples[:16], test=examples[:16])
    proto = protocol.Protocol(epochs=1, precision="fp32").resolve("topic")

    def run():
        tuner = train.Finetuner(wide_vocab_encoder, registry.get_task("topic"), data, proto, seed=0,
                                device="cpu", progress=False)
        tuner.run()
        return tuner.report.embedding_rows

    swapped = benchmark.pedantic(run, rounds=rounds, iterations=1)
    assert (swapped is not None) == (rows == "used rows")
