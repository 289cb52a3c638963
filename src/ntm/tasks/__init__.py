"""The five algorithmic tasks of the NTM paper (Graves et al. 2014, section 4), by name.

    task = ntm.tasks.get("copy", max_length=10)      # options: difficulty defaults and sizes
    batch = task.sample(np.random.default_rng(0), 32) # Batch(inputs, targets, mask, lengths)

Every task shares the `Task` interface of `ntm.tasks.base`; each lives in its own module.
"""

from __future__ import annotations

from typing import Any

from ntm.tasks.associative_recall import AssociativeRecallTask
from ntm.tasks.base import Batch, Task
from ntm.tasks.copy import CopyTask
from ntm.tasks.ngrams import NGramsTask
from ntm.tasks.priority_sort import PrioritySortTask
from ntm.tasks.repeat_copy import RepeatCopyTask

# In the paper's order.
_TASKS: dict[str, type[Task]] = {
    task.name: task for task in (CopyTask, RepeatCopyTask, AssociativeRecallTask, NGramsTask, PrioritySortTask)
}


def names() -> list[str]:
    """The task names, in the paper's order."""
    return list(_TASKS)


def get(name: str, **options: Any) -> Task:
    """The named task; `options` set its default difficulty (e.g. max_length) or sizes (e.g. bits)."""
    if name not in _TASKS:
        raise ValueError(f"unknown task {name!r}; choose from {', '.join(names())}")
    return _TASKS[name](**options)


__all__ = [
    "AssociativeRecallTask",
    "Batch",
    "CopyTask",
    "NGramsTask",
    "PrioritySortTask",
    "RepeatCopyTask",
    "Task",
    "get",
    "names",
]
