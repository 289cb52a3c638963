"""The check of a task class against the contract in `ntm.tasks.base.Task`'s docstring.

`check_task_class(cls, label)` raises a ValueError naming the first clause `cls` breaks, so a user's
task fails when it is named (`ntm train my_pkg.tasks:Parity`, `tasks.get(...)`), in one line, rather
than deep in JAX or halfway through training. Beyond the class attributes it builds the task with its
defaults and samples one small batch at the hardest training case (NumPy only, no model) to check the
arrays `_fill` wrote.
"""

from __future__ import annotations

import inspect
import numbers
import re
from typing import Any

import numpy as np

from ntm.tasks.base import Task

# Per-sequence statistics that `Task.sequence_stats` always returns.
BASE_STATISTICS = ("cost", "bit_errors")
CHECK_BATCH = 4
# A task's name titles figures and names its default run directory (runs/NAME-TIMESTAMP).
SHORT_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def check_task_class(cls: Any, label: str) -> Task:
    """`cls` built with its defaults, if it keeps the task contract; else ValueError naming `label`."""
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise ValueError(f"task {label}: {cls!r} is not a subclass of ntm.tasks.Task")
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(cls.__abstractmethods__))
        raise ValueError(f"task {label}: {cls.__name__} does not implement {missing}")
    _check_class_attributes(cls, label)
    task = _build(cls, label)
    _check_sample(task, label)
    return task


def _fail(label: str, message: str) -> ValueError:
    return ValueError(f"task {label}: {message}")


def _is_int(value: Any, minimum: int) -> bool:
    return not isinstance(value, bool) and isinstance(value, numbers.Integral) and value >= minimum


def _check_class_attributes(cls: type[Task], label: str) -> None:
    name = cls.__name__
    for attribute in ("name", "PAPER_DIFFICULTY", "RANGES", "generalisation_key", "DEFAULT_EVAL_VALUES"):
        if not hasattr(cls, attribute):
            raise _fail(label, f"{name} does not set {attribute} (see the contract in help(ntm.tasks.Task))")
    if not isinstance(cls.name, str) or not SHORT_NAME.match(cls.name):
        raise _fail(label, f"{name}.name must be a short name of letters, digits, '_', '-' or '.' (it names run "
                           f"directories), got {cls.name!r}")
    difficulty = cls.PAPER_DIFFICULTY
    if not isinstance(difficulty, dict) or not difficulty:
        raise _fail(label, f"{name}.PAPER_DIFFICULTY must be a non-empty dict of option: int, got {difficulty!r}")
    for key, value in difficulty.items():
        if not isinstance(key, str) or not _is_int(value, 0):
            raise _fail(label, f"{name}.PAPER_DIFFICULTY maps option names to integers >= 0; got {key!r}: {value!r}")
    if not isinstance(cls.RANGES, (tuple, list)):
        raise _fail(label, f"{name}.RANGES must be a tuple of (min key, max key, smallest value), got {cls.RANGES!r}")
    for entry in cls.RANGES:
        if not (isinstance(entry, (tuple, list)) and len(entry) == 3 and _is_int(entry[2], 0)):
            raise _fail(label, f"{name}.RANGES holds (min key, max key, smallest value) triples, got {entry!r}")
        absent = [key for key in entry[:2] if key not in difficulty]
        if absent:
            raise _fail(label, f"{name}.RANGES names {', '.join(map(repr, absent))}, which PAPER_DIFFICULTY lacks")
    key = cls.generalisation_key
    if not isinstance(key, str):
        raise _fail(label, f"{name}.generalisation_key must be a string, got {key!r}")
    if cls._fixed is Task._fixed and not {f"min_{key}", f"max_{key}"} <= set(difficulty):
        raise _fail(label, f"{name}.generalisation_key {key!r} needs min_{key} and max_{key} in PAPER_DIFFICULTY "
                           f"(or a _fixed method that pins it)")
    values = cls.DEFAULT_EVAL_VALUES
    if not isinstance(values, (tuple, list)) or not values or not all(_is_int(v, 1) for v in values):
        raise _fail(label, f"{name}.DEFAULT_EVAL_VALUES must be a non-empty tuple of integers >= 1, got {values!r}")
    if cls.solve_threshold is Task.solve_threshold:
        raise _fail(label, f"{name} does not say when it is solved: give it a solve_threshold property "
                           f"(or subclass ntm.tasks.base.ExactOutputTask)")
    metric = cls.solve_metric
    own_statistics = cls.sequence_stats is not Task.sequence_stats
    reference = metric == "excess_cost" and cls.reference_costs is not Task.reference_costs
    if metric not in BASE_STATISTICS and not own_statistics and not reference:
        raise _fail(label, f"{name}.solve_metric {metric!r} is not a statistic it computes: use "
                           f"{' or '.join(BASE_STATISTICS)}, or return it from sequence_stats")


def _build(cls: type[Task], label: str) -> Task:
    name = cls.__name__
    try:
        task = cls()
    except Exception as error:  # whatever the user's __init__ raises, said in one line
        raise _fail(label, f"{name}() with its default options failed: {type(error).__name__}: {error}") from None
    if not hasattr(task, "difficulty"):
        raise _fail(label, f"{name}.__init__ must call super().__init__(difficulty)")
    for size in ("input_size", "output_size"):
        if not _is_int(getattr(task, size, None), 1):
            raise _fail(label, f"{name} must set {size} to an integer >= 1 in __init__, "
                               f"got {getattr(task, size, None)!r}")
    try:
        threshold = float(task.solve_threshold)
    except Exception as error:
        raise _fail(label, f"{name}.solve_threshold failed: {type(error).__name__}: {error}") from None
    if not threshold > 0 or not np.isfinite(threshold):
        raise _fail(label, f"{name}.solve_threshold must be a positive number, got {threshold!r}")
    for value in task.default_eval_values:
        try:
            task.eval_difficulty(value)
        except ValueError as error:
            raise _fail(label, f"{name}.DEFAULT_EVAL_VALUES holds {value}, which is not a valid "
                               f"{task.generalisation_key}: {error}") from None
    task.curriculum_levels()
    return task


def _check_sample(task: Task, label: str) -> None:
    """One small batch at the hardest training case: shapes, lengths, mask and targets as `Batch` says."""
    name = type(task).__name__
    difficulty = task.hardest()
    steps = task._max_steps(difficulty)
    if not _is_int(steps, 1):
        raise _fail(label, f"{name}._max_steps must return an integer >= 1, got {steps!r}")
    try:
        batch = task.sample(np.random.default_rng(0), CHECK_BATCH, **difficulty)
    except Exception as error:
        raise _fail(label, f"{name}._fill failed on a batch of {CHECK_BATCH}: "
                           f"{type(error).__name__}: {error}") from None
    lengths = batch.lengths
    if lengths.min() < 1 or lengths.max() > steps:
        raise _fail(label, f"{name}._fill wrote lengths {lengths.tolist()}; each must be within 1..{steps} "
                           f"(_max_steps)")
    real = np.arange(steps)[None, :] < lengths[:, None]
    mask, targets = batch.mask, batch.targets
    if not np.isin(mask, (0.0, 1.0)).all() or mask[~real].any():
        raise _fail(label, f"{name}._fill wrote a mask that is not 0 or 1, or is 1 past a sequence's length")
    if not mask.any(axis=1).all():
        raise _fail(label, f"{name}._fill left a sequence with nothing scored (its mask is all 0)")
    if not np.isin(targets, (0.0, 1.0)).all() or (targets * (mask == 0)[..., None]).any():
        raise _fail(label, f"{name}._fill wrote targets that are not bits (0 or 1), or are set where the mask is 0")
    if not np.isfinite(batch.inputs).all() or batch.inputs[~real].any():
        raise _fail(label, f"{name}._fill wrote inputs that are not finite, or are set past a sequence's length")
