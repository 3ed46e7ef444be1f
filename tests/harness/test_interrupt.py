"""A SIGTERM that lands inside a __del__ (garbage collection) is not lost: Python swallows the
KeyboardInterrupt raised there, so long loops check core.interrupt's record at each step (the
distillation loop's check is tested in tests/compression/test_distill.py)."""
from __future__ import annotations

import pytest

from core import interrupt
from harness.finetune.protocol import Protocol
from harness.finetune.train import Finetuner
from tasks.registry import get_task, load_task_data
from tests.conftest import save_tiny_model

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the swallowed one


def test_the_request_survives_the_swallowed_exception(lost_sigterm):
    with pytest.raises(KeyboardInterrupt, match="signal 15"):
        interrupt.check()
    interrupt.clear()
    interrupt.check()   # nothing requested: no exception


def test_fine_tuning_stops_at_the_next_step(lost_sigterm, toy_tasks, tmp_path):
    model_dir = save_tiny_model(tmp_path / "bert", "bert", seed=0)
    resolved = Protocol(epochs=2, batch_size=8, precision="fp32").resolve("toy_topic")
    tuner = Finetuner(model_dir, get_task("toy_topic"), load_task_data("toy_topic", "mlt_Latn", toy_tasks),
                      resolved, seed=1, progress=False)
    with pytest.raises(KeyboardInterrupt):
        tuner.run()
