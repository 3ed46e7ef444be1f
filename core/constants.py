"""Values that several packages must agree on."""
from __future__ import annotations

IGNORE_INDEX = -100  # label of positions the loss and the metrics ignore (padding, non-first sub-words, unmasked)

# The four tasks in the order every table shows them; other tasks follow alphabetically.
TASK_ORDER = ("topic", "sentiment", "ner", "pos")


def ordered_tasks(tasks) -> list[str]:
    """The usual four tasks in their usual order, then any others alphabetically."""
    tasks = set(tasks)
    return [t for t in TASK_ORDER if t in tasks] + sorted(tasks - set(TASK_ORDER))


def task_rank(task: str) -> tuple[int, str]:
    """A sort key putting tasks in ordered_tasks' order."""
    return (TASK_ORDER.index(task) if task in TASK_ORDER else len(TASK_ORDER), task)
