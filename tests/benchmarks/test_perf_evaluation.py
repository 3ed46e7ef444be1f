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
