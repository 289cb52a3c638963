"""The five algorithmic tasks of the NTM paper (Graves et al. 2014, section 4), and yours, by name.

    task = ntm.tasks.get("copy", max_length=10)      # options: difficulty defaults and sizes
    batch = task.sample(np.random.default_rng(0), 32) # Batch(inputs, targets, mask, lengths)
    task = ntm.tasks.get("my_pkg.tasks:Parity")      # your own Task subclass, as module:Class

Every task shares the `Task` interface of `ntm.tasks.base`; each lives in its own module. A task of
your own is named by where it is defined, "module:Class", wherever ntm takes a task name (`ntm train
my_pkg.tasks:Parity`, `TrainSettings(task=...)`, a run directory's config.json); it is imported and
checked against the contract of `Task` (`ntm.tasks.contract`) the first time it is named.
"""

from __future__ import annotations

import importlib
import re
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


# "module.path:Class" (a class path, as entry points write them).
CLASS_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
# Task classes already imported and checked, by the name they were given, and all that were checked.
_NAMED: dict[str, type[Task]] = {}
_CHECKED: set[type] = set()


def get(name: str | type[Task], **options: Any) -> Task:
    """The named task; `options` set its default difficulty (e.g. max_length) or sizes (e.g. bits).

    `name` is one of `names()`, a Task subclass's "module:Class", or the subclass itself.
    """
    return task_class(name)(**options)


def task_class(name: str | type[Task]) -> type[Task]:
    """The class of a task name (see `get`), imported and checked; ValueError saying what is wrong."""
    if isinstance(name, type):
        return _checked(name, getattr(name, "__qualname__", repr(name)))
    if isinstance(name, str) and name in _TASKS:
        return _TASKS[name]
    if not isinstance(name, str) or not CLASS_PATH.match(name):
        raise ValueError(f"unknown task {name!r}; choose from {', '.join(names())}, or name a Task class of your "
                         f"own as module:Class (e.g. my_pkg.tasks:Parity)")
    if name not in _NAMED:
        module_name, _, qualname = name.partition(":")
        try:
            found: Any = importlib.import_module(module_name)
        except Exception as error:  # ImportError, or whatever the module raises as it runs
            reason = f"{type(error).__name__}: {error}".splitlines()[0]
            raise ValueError(f"task {name}: cannot import {module_name} ({reason})") from None
        for part in qualname.split("."):
            if not hasattr(found, part):
                raise ValueError(f"task {name}: {module_name} has no {qualname}")
            found = getattr(found, part)
        _NAMED[name] = _checked(found, name)
    return _NAMED[name]


def _checked(cls: Any, label: str) -> type[Task]:
    if cls in _TASKS.values() or cls in _CHECKED:
        return cls
    from ntm.tasks.contract import check_task_class

    check_task_class(cls, label)
    _CHECKED.add(cls)
    return cls


def name_of(task: str | type[Task]) -> str:
    """The name that gets `task` back: a built-in's name, else "module:Class" of the class (checked).

    ValueError for a class that cannot be found again by its name (defined in `__main__` or inside a
    function): a run directory names its task so that `ntm eval`, `--resume` and sweeps can rebuild it.
    """
    cls = task_class(task)
    if cls in _TASKS.values():
        return cls.name
    path = f"{cls.__module__}:{cls.__qualname__}"
    if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
        raise ValueError(f"task {path}: a run directory names its task by module:Class; define {cls.__name__} at "
                         f"the top of an importable module (not in __main__ or inside a function)")
    try:
        same = task_class(path) is cls
    except ValueError:
        same = False
    if not same:
        raise ValueError(f"task {path}: importing {path} does not give back {cls.__name__}; define it at the top "
                         f"of an importable module")
    return path


def named_in(words: list[str]) -> list[str]:
    """The words among `words` that name a task class of one's own and resolve to one (for its option flags).

    Words that look like a class path but do not resolve are left out; naming such a word as the task
    reports why it does not resolve."""
    found = []
    for word in words:
        if isinstance(word, str) and word not in _TASKS and CLASS_PATH.match(word) and word not in found:
            try:
                task_class(word)
            except ValueError:
                continue
            found.append(word)
    return found


__all__ = [
    "AssociativeRecallTask",
    "Batch",
    "CopyTask",
    "NGramsTask",
    "PrioritySortTask",
    "RepeatCopyTask",
    "Task",
    "get",
    "name_of",
    "named_in",
    "names",
    "task_class",
]
