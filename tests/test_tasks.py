"""Tests of ntm.tasks: every target is recomputed here from the inputs, independently of the task code.

Each `parse_<task>` reads one batch the way a person would from the layout in the task's docstring,
asserts that targets, mask and lengths follow from the inputs, and returns the sizes it found per
sequence (e.g. {"length": [...]}) so tests can check them against the difficulty asked for.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import ntm.tasks as tasks
from ntm.tasks import Batch

PAPER_ORDER = ["copy", "repeat_copy", "associative_recall", "ngrams", "priority_sort"]


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def check_common(task, batch: Batch, batch_size: int, steps: int) -> None:
    """Shapes, dtypes, binary masks, zero padding and zero targets where nothing is scored."""
    assert isinstance(batch, Batch)
    assert batch.inputs.shape == (batch_size, steps, task.input_size)
    assert batch.targets.shape == (batch_size, steps, task.output_size)
    assert batch.mask.shape == (batch_size, steps)
    assert batch.lengths.shape == (batch_size,)
    assert batch.inputs.dtype == batch.targets.dtype == batch.mask.dtype == np.float32
    assert batch.lengths.dtype == np.int32
    assert set(np.unique(batch.mask)) <= {0.0, 1.0}
    assert set(np.unique(batch.targets)) <= {0.0, 1.0}
    assert (batch.lengths >= 1).all() and (batch.lengths <= steps).all()
    padding = np.arange(steps)[None, :] >= batch.lengths[:, None]
    assert not batch.inputs[padding].any()
    assert not batch.targets[padding].any()
    assert not batch.mask[padding].any()
    assert not batch.targets[batch.mask == 0].any()
    assert batch.mask.sum(axis=1).min() >= 1


def mask_between(steps: int, first: int, stop: int) -> np.ndarray:
    expected = np.zeros(steps, np.float32)
    expected[first:stop] = 1
    return expected


def is_bits(array: np.ndarray) -> bool:
    return set(np.unique(array)) <= {0.0, 1.0}


def parse_copy(task, batch: Batch) -> dict:
    width, steps = task.bits, batch.mask.shape[1]
    found = []
    for x, y, m, n in zip(*batch):
        (length,) = np.flatnonzero(x[:, width])  # one delimiter
        sequence = x[:length, :width]
        assert is_bits(sequence) and not x[length, :width].any()
        assert not x[length + 1 :].any()  # no input while answering
        np.testing.assert_array_equal(y[length + 1 : 2 * length + 1], sequence)
        np.testing.assert_array_equal(m, mask_between(steps, length + 1, 2 * length + 1))
        assert n == 2 * length + 1
        found.append(length)
    return {"length": found}


def repeat_statistics(low: int, high: int) -> tuple[float, float]:
    """Mean and standard deviation of an integer uniform on [low, high]."""
    values = np.arange(low, high + 1)
    return values.mean(), values.std() or 1.0


def parse_repeat_copy(task, batch: Batch) -> dict:
    width, steps = task.bits, batch.mask.shape[1]
    mean, std = repeat_statistics(task.difficulty["min_repeats"], task.difficulty["max_repeats"])
    lengths, repeats = [], []
    for x, y, m, n in zip(*batch):
        (length,) = np.flatnonzero(x[:, width])
        count = int(round(x[length, width + 1] * std + mean))
        assert abs(x[length, width + 1] * std + mean - count) < 1e-4  # an exact count once decoded
        assert not x[:length, width + 1].any() and not x[length + 1 :].any()
        sequence = x[:length, :width]
        end = length + 1 + length * count
        np.testing.assert_array_equal(y[length + 1 : end, :width], np.tile(sequence, (count, 1)))
        np.testing.assert_array_equal(y[:, width], np.eye(steps, dtype=np.float32)[end])
        np.testing.assert_array_equal(m, mask_between(steps, length + 1, end + 1))
        assert n == end + 1
        lengths.append(length)
        repeats.append(count)
    return {"length": lengths, "repeats": repeats}


def parse_associative_recall(task, batch: Batch) -> dict:
    width, span, steps = task.bits, task.item_length, batch.mask.shape[1]
    found = []
    for x, y, m, n in zip(*batch):
        starts = np.flatnonzero(x[:, width])
        count = len(starts)
        np.testing.assert_array_equal(starts, np.arange(count) * (span + 1))
        items = [x[s + 1 : s + 1 + span, :width] for s in starts]
        assert len({item.tobytes() for item in items}) == count  # distinct
        query_open, query_close = np.flatnonzero(x[:, width + 1])
        assert query_open == count * (span + 1) and query_close == query_open + span + 1
        query = x[query_open + 1 : query_close, :width]
        (position,) = [i for i, item in enumerate(items) if np.array_equal(item, query)]
        assert position < count - 1
        answer = query_close + 1
        assert not x[answer:].any()
        np.testing.assert_array_equal(y[answer : answer + span], items[position + 1])
        np.testing.assert_array_equal(m, mask_between(steps, answer, answer + span))
        assert n == answer + span
        found.append(count)
    return {"items": found}


def parse_ngrams(task, batch: Batch) -> dict:
    context, steps = task.context_bits, batch.mask.shape[1]
    found = []
    for x, y, m, n in zip(*batch):
        assert is_bits(x[:n, 0])
        length = n - context + 1
        np.testing.assert_array_equal(m, mask_between(steps, context - 1, n))
        np.testing.assert_array_equal(y[context - 1 : n - 1, 0], x[context:n, 0])  # the next bit
        found.append(length)
    return {"length": found}


def parse_priority_sort(task, batch: Batch) -> dict:
    width, steps = task.bits, batch.mask.shape[1]
    items, outputs = [], []
    for x, y, m, n in zip(*batch):
        (count,) = np.flatnonzero(x[:, width + 1])
        vectors, priorities = x[:count, :width], x[:count, width]
        assert is_bits(vectors) and (np.abs(priorities) <= 1).all()
        assert not x[count + 1 :].any()
        k = int(m.sum())
        top = sorted(range(count), key=lambda i: priorities[i], reverse=True)[:k]
        np.testing.assert_array_equal(y[count + 1 : count + 1 + k], vectors[top])
        np.testing.assert_array_equal(m, mask_between(steps, count + 1, count + 1 + k))
        assert n == count + 1 + k
        items.append(count)
        outputs.append(k)
    return {"items": items, "num_outputs": outputs}


PARSERS = {
    "copy": parse_copy,
    "repeat_copy": parse_repeat_copy,
    "associative_recall": parse_associative_recall,
    "ngrams": parse_ngrams,
    "priority_sort": parse_priority_sort,
}


def sample_and_parse(task, batch_size: int, seed: int = 0, **difficulty) -> dict:
    """Sample, run every check, and confirm the sizes found lie in the difficulty's ranges."""
    batch = task.sample(rng(seed), batch_size, **difficulty)
    check_common(task, batch, batch_size, task.max_steps(**difficulty))
    found = PARSERS[task.name](task, batch)
    d = task.resolve(**difficulty)
    for low_key, high_key, _ in task.RANGES:
        quantity = low_key.removeprefix("min_")
        assert d[low_key] <= min(found[quantity]) and max(found[quantity]) <= d[high_key], quantity
    return found


# ---- registry and defaults ---------------------------------------------------------------------


def test_names_lists_the_five_tasks_in_paper_order():
    assert tasks.names() == PAPER_ORDER
    for name in PAPER_ORDER:
        assert tasks.get(name).name == name


def test_unknown_task_name_is_a_value_error():
    with pytest.raises(ValueError, match="sorting"):
        tasks.get("sorting")


@pytest.mark.parametrize(
    "name, input_size, output_size, difficulty",
    [
        ("copy", 9, 8, {"min_length": 1, "max_length": 20}),
        ("repeat_copy", 10, 9, {"min_length": 1, "max_length": 10, "min_repeats": 1, "max_repeats": 10,
                                "one_pair_per_batch": 0}),
        ("associative_recall", 8, 6, {"min_items": 2, "max_items": 6}),
        ("ngrams", 1, 1, {"min_length": 200, "max_length": 200}),
        ("priority_sort", 10, 8, {"min_items": 20, "max_items": 20, "num_outputs": 16}),
    ],
)
def test_paper_sizes_and_training_difficulty_are_the_defaults(name, input_size, output_size, difficulty):
    task = tasks.get(name)
    assert (task.input_size, task.output_size) == (input_size, output_size)
    assert task.difficulty == difficulty


@pytest.mark.parametrize("name", PAPER_ORDER)
def test_targets_follow_from_inputs_at_paper_difficulty(name):
    sample_and_parse(tasks.get(name), 24)


def test_max_steps_at_paper_difficulty():
    expected = {"copy": 41, "repeat_copy": 112, "associative_recall": 32, "ngrams": 204, "priority_sort": 37}
    assert {name: tasks.get(name).max_steps() for name in PAPER_ORDER} == expected


# ---- random difficulties -----------------------------------------------------------------------

FAST = settings(max_examples=25, deadline=None)


def bounds(low: int, high: int, widest: int):
    return st.integers(low, high).flatmap(lambda a: st.tuples(st.just(a), st.integers(a, a + widest)))


@FAST
@given(bounds(1, 12, 8), st.integers(1, 8), st.integers(1, 6), st.integers(0, 10**6))
def test_copy_at_random_difficulty(length, bits, batch_size, seed):
    task = tasks.get("copy", bits=bits, min_length=length[0], max_length=length[1])
    sample_and_parse(task, batch_size, seed)


@FAST
@given(bounds(1, 5, 4), bounds(1, 5, 4), st.integers(1, 5), st.integers(0, 10**6))
def test_repeat_copy_at_random_difficulty(length, repeats, bits, seed):
    task = tasks.get(
        "repeat_copy", bits=bits, min_length=length[0], max_length=length[1],
        min_repeats=repeats[0], max_repeats=repeats[1],
    )
    sample_and_parse(task, 6, seed)


@FAST
@given(bounds(2, 8, 6), st.integers(1, 6), st.integers(1, 4), st.integers(0, 10**6))
def test_associative_recall_at_random_difficulty(items, bits, item_length, seed):
    if 2 ** (bits * item_length) < items[1]:
        with pytest.raises(ValueError, match="max_items"):
            tasks.get("associative_recall", bits=bits, item_length=item_length, max_items=items[1])
        return
    task = tasks.get(
        "associative_recall", bits=bits, item_length=item_length, min_items=items[0], max_items=items[1]
    )
    sample_and_parse(task, 6, seed)


@FAST
@given(bounds(1, 40, 30), st.integers(2, 7), st.integers(0, 10**6))
def test_ngrams_at_random_difficulty(length, order, seed):
    task = tasks.get("ngrams", order=order, min_length=length[0], max_length=length[1])
    found = sample_and_parse(task, 6, seed)
    assert task.max_steps() == order - 1 + length[1] - 1
    assert min(found["length"]) >= length[0]


@FAST
@given(bounds(1, 25, 10), st.data(), st.integers(1, 8), st.integers(0, 10**6))
def test_priority_sort_at_random_difficulty(items, data, bits, seed):
    outputs = data.draw(st.integers(1, items[0]))
    task = tasks.get("priority_sort", bits=bits, min_items=items[0], max_items=items[1], num_outputs=outputs)
    found = sample_and_parse(task, 6, seed)
    assert set(found["num_outputs"]) == {outputs}


@pytest.mark.parametrize(
    "name, difficulty, quantity, expected",
    [
        ("copy", {"min_length": 3, "max_length": 5}, "length", {3, 4, 5}),
        ("repeat_copy", {"min_repeats": 2, "max_repeats": 4}, "repeats", {2, 3, 4}),
        ("repeat_copy", {"min_length": 7, "max_length": 7}, "length", {7}),
        ("associative_recall", {"min_items": 3, "max_items": 5}, "items", {3, 4, 5}),
        ("ngrams", {"min_length": 30, "max_length": 32}, "length", {30, 31, 32}),
        ("priority_sort", {"min_items": 4, "max_items": 6, "num_outputs": 3}, "items", {4, 5, 6}),
    ],
)
def test_sample_time_difficulty_sets_the_sizes_drawn(name, difficulty, quantity, expected):
    task = tasks.get(name)
    found = sample_and_parse(task, 120, **difficulty)
    assert set(found[quantity]) == expected


# ---- reproducibility and padding ---------------------------------------------------------------


@pytest.mark.parametrize("name", PAPER_ORDER)
def test_same_seed_same_batch_and_other_seed_another(name):
    task = tasks.get(name)
    first, again, other = task.sample(rng(7), 8), task.sample(rng(7), 8), task.sample(rng(8), 8)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first.inputs, other.inputs)


@pytest.mark.parametrize("name", PAPER_ORDER)
def test_pad_to_adds_zero_steps_and_changes_nothing_else(name):
    task = tasks.get(name)
    steps = task.max_steps()
    plain, padded = task.sample(rng(3), 5), task.sample(rng(3), 5, pad_to=steps + 9)
    assert padded.inputs.shape[1] == steps + 9
    for a, b in zip(plain[:3], padded[:3]):
        np.testing.assert_array_equal(b[:, :steps], a)
        assert not b[:, steps:].any()
    np.testing.assert_array_equal(plain.lengths, padded.lengths)
    with pytest.raises(ValueError, match="pad_to"):
        task.sample(rng(3), 5, pad_to=steps - 1)


# ---- bad options -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, options, named",
    [
        ("copy", {"min_length": 0}, "min_length"),
        ("copy", {"max_length": 0}, "max_length"),
        ("copy", {"min_length": 5, "max_length": 4}, "min_length"),
        ("copy", {"max_length": 2.5}, "max_length"),
        ("copy", {"bits": 0}, "bits"),
        ("copy", {"length": 5}, r"option\(s\): length;"),
        ("repeat_copy", {"min_repeats": 0}, "min_repeats"),
        ("repeat_copy", {"min_repeats": 3, "max_repeats": 2}, "max_repeats"),
        ("associative_recall", {"min_items": 1}, "min_items"),
        ("associative_recall", {"bits": 1, "item_length": 2, "max_items": 5}, "max_items"),
        ("associative_recall", {"bits": 40, "item_length": 2}, "item_length"),
        ("ngrams", {"min_length": 0}, "min_length"),
        ("ngrams", {"order": 1}, "order"),
        ("priority_sort", {"num_outputs": 21}, "num_outputs"),
        ("priority_sort", {"num_outputs": 0}, "num_outputs"),
        ("priority_sort", {"min_items": 10, "max_items": 30}, "num_outputs"),
        ("priority_sort", {"min_items": 21}, "min_items"),
    ],
)
def test_bad_options_raise_value_errors_naming_them(name, options, named):
    with pytest.raises(ValueError, match=named):
        tasks.get(name, **options)
    difficulty = {key: value for key, value in options.items() if key in tasks.get(name).difficulty}
    if difficulty and "bits" not in options:  # the same options at sample time fail the same way
        with pytest.raises(ValueError, match=named):
            tasks.get(name).sample(rng(), 2, **difficulty)


@pytest.mark.parametrize(
    "call, named",
    [
        (lambda t: t.sample(rng(), 0), "batch_size"),
        (lambda t: t.sample(rng(), 2, repeats=3), "repeats"),
        (lambda t: t.sample(0, 2), "rng"),
        (lambda t: t.max_steps(max_length=-1), "max_length"),
        (lambda t: t.eval_difficulty(0), "length"),
        (lambda t: t.eval_difficulty(5, max_lenght=3), "max_lenght"),
    ],
)
def test_bad_sample_arguments_raise_value_errors_naming_them(call, named):
    with pytest.raises(ValueError, match=named):
        call(tasks.get("copy"))


# ---- curriculum, generalisation and solve criteria ---------------------------------------------


def test_copy_curriculum_grows_the_maximum_length_by_fives():
    levels = tasks.get("copy").curriculum_levels()
    assert levels == [{"min_length": 1, "max_length": high} for high in (5, 10, 15, 20)]


@pytest.mark.parametrize("name", PAPER_ORDER)
def test_curriculum_runs_from_easy_to_the_configured_difficulty(name):
    task = tasks.get(name)
    levels = task.curriculum_levels()
    assert 3 <= len(levels) <= 5
    assert levels[-1] == task.difficulty
    steps = [task.max_steps(**level) for level in levels]
    assert steps == sorted(steps) and steps[0] < steps[-1]
    for level in levels:
        sample_and_parse(task, 4, **level)


CONFIGURED = st.one_of(
    bounds(1, 30, 30).map(lambda r: ("copy", {"min_length": r[0], "max_length": r[1]})),
    st.tuples(bounds(1, 12, 8), bounds(1, 12, 8)).map(
        lambda r: ("repeat_copy", {"min_length": r[0][0], "max_length": r[0][1], "min_repeats": r[1][0], "max_repeats": r[1][1]})
    ),
    bounds(2, 20, 10).map(lambda r: ("associative_recall", {"min_items": r[0], "max_items": r[1]})),
    bounds(1, 300, 100).map(lambda r: ("ngrams", {"min_length": r[0], "max_length": r[1]})),
    st.tuples(bounds(1, 30, 10), st.floats(0.01, 1.0)).map(
        lambda r: ("priority_sort", {"min_items": r[0][0], "max_items": r[0][1], "num_outputs": max(1, int(r[0][0] * r[1]))})
    ),
)


@settings(max_examples=60, deadline=None)
@given(CONFIGURED)
def test_curriculum_of_any_configured_difficulty_is_valid_and_ends_there(configured):
    name, difficulty = configured
    task = tasks.get(name, **difficulty)
    levels = task.curriculum_levels()
    assert 1 <= len(levels) <= 4 and levels[-1] == task.difficulty
    steps = [task.max_steps(**level) for level in levels]
    assert steps == sorted(steps)
    for level in levels:  # each level is a difficulty the task accepts and samples from
        assert task.resolve(**level) == level
        check_common(task, task.sample(rng(), 2, **level), 2, task.max_steps(**level))


def test_curriculum_follows_a_configured_difficulty():
    levels = tasks.get("copy", max_length=8).curriculum_levels()
    assert [level["max_length"] for level in levels] == [2, 4, 6, 8]


def test_priority_sort_curriculum_keeps_outputs_in_proportion():
    levels = tasks.get("priority_sort").curriculum_levels()
    assert [(level["max_items"], level["num_outputs"]) for level in levels] == [(5, 4), (10, 8), (15, 12), (20, 16)]


@pytest.mark.parametrize(
    "name, key, values",
    [
        ("copy", "length", [10, 20, 30, 50, 120]),
        ("repeat_copy", "length", [5, 10, 15, 20, 30]),
        ("associative_recall", "items", [6, 10, 12, 15, 20]),
        ("ngrams", "length", [100, 200, 400, 1000]),
        ("priority_sort", "items", [10, 20, 30, 40]),
    ],
)
def test_eval_difficulty_fixes_the_generalisation_quantity(name, key, values):
    task = tasks.get(name)
    assert task.generalisation_key == key and task.default_eval_values == values
    for value in (values[0], values[-1]):
        found = sample_and_parse(task, 3, **task.eval_difficulty(value))
        assert set(found[key]) == {value}


def test_repeat_copy_one_pair_per_batch_draws_one_length_and_count_per_batch():
    mixed, paired = tasks.get("repeat_copy"), tasks.get("repeat_copy", one_pair_per_batch=1)
    for seed in range(5):
        found = sample_and_parse(paired, 16, seed)
        assert len(set(found["length"])) == 1 and len(set(found["repeats"])) == 1
    found = sample_and_parse(mixed, 16, 0)
    assert len(set(found["length"])) > 1 and len(set(found["repeats"])) > 1
    with pytest.raises(ValueError, match="one_pair_per_batch"):
        tasks.get("repeat_copy", one_pair_per_batch=2)


def test_repeat_copy_generalisation_fixes_repeats_at_the_training_maximum():
    task = tasks.get("repeat_copy")
    found = sample_and_parse(task, 3, **task.eval_difficulty(20))
    assert set(found["repeats"]) == {10} and set(found["length"]) == {20}


def test_eval_difficulty_of_a_curriculum_level_keeps_that_levels_other_quantities():
    task = tasks.get("repeat_copy")
    easiest = task.curriculum_levels()[0]
    assert task.eval_difficulty(3, **easiest) == {"min_length": 3, "max_length": 3, "min_repeats": 3, "max_repeats": 3,
                                                  "one_pair_per_batch": 0}
    sorting = tasks.get("priority_sort")
    assert sorting.eval_difficulty(12, min_items=4, max_items=4, num_outputs=1)["num_outputs"] == 3


def test_priority_sort_eval_keeps_outputs_in_proportion():
    assert tasks.get("priority_sort").eval_difficulty(40)["num_outputs"] == 32


@pytest.mark.parametrize(
    "name, means, solved",
    [
        ("copy", {"bit_errors": 0.0, "cost": 50.0}, True),
        ("copy", {"bit_errors": 0.009, "cost": 0.1}, True),
        ("copy", {"bit_errors": 0.01, "cost": 0.1}, False),
        ("repeat_copy", {"bit_errors": 0.5, "cost": 0.1}, False),
        ("associative_recall", {"bit_errors": 0.0, "cost": 1.0}, True),
        ("priority_sort", {"bit_errors": 1.2, "cost": 10.0}, True),
        ("priority_sort", {"bit_errors": 1.3, "cost": 10.0}, False),
        ("ngrams", {"bit_errors": 60.0, "cost": 134.0, "excess_cost": 1.9}, True),
        ("ngrams", {"bit_errors": 0.0, "cost": 131.0, "excess_cost": 2.1}, False),
    ],
)
def test_solve_criteria(name, means, solved):
    task = tasks.get(name)
    assert task.solved(means) is solved
    assert task.solve_description and task.solve_reason


def test_ngrams_solve_threshold_scales_with_the_configured_length():
    assert tasks.get("ngrams", min_length=400, max_length=400).solve_threshold == 4.0
    assert tasks.get("ngrams").solve_threshold == 2.0


def test_ngrams_reference_costs_are_the_bayes_optimal_costs():
    task = tasks.get("ngrams")
    batch = task.sample(np.random.default_rng(3), 16)
    np.testing.assert_allclose(task.reference_costs(batch), task.optimal_costs(batch))


def perfect_logits(batch: Batch) -> np.ndarray:
    """Logits whose thresholded outputs equal the targets everywhere."""
    return np.where(batch.targets > 0.5, 10.0, -10.0).astype(np.float32)


def test_repeat_copy_scores_the_end_marker_on_its_own():
    task = tasks.get("repeat_copy")
    batch = task.sample(np.random.default_rng(5), 4, pad_to=14, min_length=3, max_length=3, min_repeats=2,
                        max_repeats=2)
    assert (batch.lengths == 11).all()
    marker = task.bits
    logits = perfect_logits(batch)
    # Sequence 0 emits the marker one step early (inside the answer, where it must stay off).
    logits[0, 3 + 1 + 5, marker] = 10.0
    # Sequence 1 misses the marker at the end (step L + 1 + L*R = 10).
    logits[1, 10, marker] = -10.0
    # Sequence 2 gets a payload bit wrong, which is a bit error but not an end-marker error.
    logits[2, 3 + 1 + 2, 0] *= -1
    # Sequence 3 emits the marker in the padding, which is not scored.
    logits[3, 11:, marker] = 10.0
    stats = {name: np.asarray(value) for name, value in task.sequence_stats(logits, batch).items()}
    np.testing.assert_array_equal(stats["end_marker_errors"], [1, 1, 0, 0])
    np.testing.assert_array_equal(stats["bit_errors"], [1, 1, 1, 0])


def test_tasks_without_an_end_marker_report_cost_and_bit_errors_only():
    for name in ("copy", "associative_recall", "ngrams", "priority_sort"):
        task = tasks.get(name)
        batch = task.sample(np.random.default_rng(0), 2)
        assert set(task.sequence_stats(perfect_logits(batch), batch)) == {"cost", "bit_errors"}


@pytest.mark.parametrize("name", PAPER_ORDER)
def test_training_defaults_are_valid_settings_for_the_ntm(name):
    from ntm.training import TrainSettings

    defaults = tasks.get(name).training_defaults("ntm")
    settings = TrainSettings.for_task(name)
    for field, value in defaults.items():
        if field != "model_options":
            assert getattr(settings, field) == value
    from ntm.turing.config import NTMConfig

    task = tasks.get(name)
    NTMConfig(input_size=task.input_size, output_size=task.output_size, **defaults.get("model_options", {}))


@pytest.mark.parametrize(
    "name, expected",
    [
        ("copy", {"min_length": 20, "max_length": 20}),
        ("repeat_copy", {"min_length": 10, "max_length": 10, "min_repeats": 10, "max_repeats": 10}),
        ("associative_recall", {"min_items": 6, "max_items": 6}),
    ],
)
def test_hardest_case_is_the_largest_training_value(name, expected):
    hardest = tasks.get(name).hardest()
    assert {key: hardest[key] for key in expected} == expected


# ---- distributions -----------------------------------------------------------------------------


def test_repeat_count_channel_is_normalised_over_the_training_repeats():
    task = tasks.get("repeat_copy")
    batch = task.sample(rng(1), 4000, max_length=1)
    counts = batch.inputs[:, 1, task.bits + 1]
    assert abs(counts.mean()) < 0.05 and abs(counts.var() - 1) < 0.05
    # A curriculum level draws fewer repeats but encodes each count exactly as in training.
    easy = task.sample(rng(1), 200, max_length=1, max_repeats=3)
    mean, std = repeat_statistics(1, 10)
    assert set(np.round(easy.inputs[:, 1, task.bits + 1] * std + mean).astype(int)) == {1, 2, 3}


def test_associative_recall_items_are_distinct_even_in_a_tiny_item_space():
    task = tasks.get("associative_recall", bits=1, item_length=2, min_items=4, max_items=4)
    found = sample_and_parse(task, 50)  # the parser asserts distinct items
    assert set(found["items"]) == {4}


def test_associative_recall_queries_every_item_but_the_last():
    task = tasks.get("associative_recall", min_items=5, max_items=5)
    batch = task.sample(rng(2), 300)
    starts = np.arange(5) * 4
    query = batch.inputs[:, 21:24, :6]
    positions = [
        next(i for i, s in enumerate(starts) if np.array_equal(x[s + 1 : s + 4, :6], q))
        for x, q in zip(batch.inputs, query)
    ]
    assert set(positions) == {0, 1, 2, 3}


def test_priorities_are_uniform_on_minus_one_to_one():
    task = tasks.get("priority_sort")
    priorities = task.sample(rng(4), 500).inputs[:, :20, task.bits].ravel()
    assert priorities.min() >= -1 and priorities.max() <= 1
    assert abs(priorities.mean()) < 0.02 and abs((priorities < -0.5).mean() - 0.25) < 0.02


def test_payload_bits_are_fair_coins():
    batch = tasks.get("copy").sample(rng(5), 500, min_length=20)
    assert abs(batch.inputs[:, :20, :8].mean() - 0.5) < 0.01


# ---- N-grams tables and the Bayes-optimal estimator --------------------------------------------


def test_ngram_tables_are_beta_half_half_and_fresh_for_every_sequence():
    task = tasks.get("ngrams")
    _, tables = task.sample_with_tables(rng(6), 1000, min_length=1, max_length=1)
    assert tables.shape == (1000, 32)
    assert len({row.tobytes() for row in tables}) == 1000
    # Beta(1/2, 1/2) has CDF (2/pi) asin(sqrt(p)): about 20.5% of its mass lies below 0.1.
    below = (tables < 0.1).mean()
    assert abs(below - 2 / math.pi * math.asin(math.sqrt(0.1))) < 0.01
    assert abs(tables.mean() - 0.5) < 0.01


def test_ngram_bits_follow_their_table():
    task = tasks.get("ngrams")
    batch, tables = task.sample_with_tables(rng(7), 2, min_length=30000, max_length=30000)
    bits = np.concatenate([batch.inputs[:, :, 0], batch.targets[:, -1:, 0]], axis=1)
    for sequence, table in zip(bits, tables):
        context = np.zeros(len(sequence) - 5, np.int64)
        for age in range(5):
            context = context * 2 + sequence[age : len(sequence) - 5 + age].astype(np.int64)
        following = sequence[5:]
        for value in range(32):
            seen = following[context == value]
            if len(seen) > 2000:
                assert abs(seen.mean() - table[value]) < 4 * math.sqrt(0.25 / len(seen))


def bayes_cost_by_hand(task, batch: Batch) -> list[float]:
    """The Bayes-optimal cost with a dictionary of counts, one step at a time."""
    costs = []
    for x, y, m, _ in zip(*batch):
        counts, cost = {}, 0.0
        for step in np.flatnonzero(m):
            context = tuple(x[step - task.context_bits + 1 : step + 1, 0])
            ones, total = counts.get(context, (0, 0))
            p_one = (ones + 0.5) / (total + 1)
            cost -= math.log2(p_one if y[step, 0] else 1 - p_one)
            counts[context] = (ones + int(y[step, 0]), total + 1)
        costs.append(cost)
    return costs


@pytest.mark.parametrize("order, lengths", [(6, (200, 200)), (3, (5, 60))])
def test_bayes_optimal_cost_matches_a_step_by_step_estimator(order, lengths):
    task = tasks.get("ngrams", order=order, min_length=lengths[0], max_length=lengths[1])
    batch = task.sample(rng(8), 12, pad_to=task.max_steps() + 3)
    np.testing.assert_allclose(task.optimal_costs(batch), bayes_cost_by_hand(task, batch), rtol=1e-9)
    assert task.optimal_cost(batch) == pytest.approx(np.mean(bayes_cost_by_hand(task, batch)))


def test_bayes_optimal_cost_at_paper_difficulty_is_the_papers_131_to_132_bits():
    task = tasks.get("ngrams")
    assert 130.0 < task.optimal_cost(task.sample(rng(9), 3000)) < 132.5


def entropy_rate(table: np.ndarray) -> float:
    """Bits per step of the order-6 Markov source with this table, under its stationary distribution."""
    contexts = len(table)
    transition = np.zeros((contexts, contexts))
    for context, p_one in enumerate(table):
        transition[context, (2 * context) % contexts] += 1 - p_one
        transition[context, (2 * context + 1) % contexts] += p_one
    values, vectors = np.linalg.eig(transition.T)
    stationary = np.real(vectors[:, np.argmin(np.abs(values - 1))])
    stationary /= stationary.sum()
    clipped = np.clip(table, 1e-12, 1 - 1e-12)
    entropy = -(clipped * np.log2(clipped) + (1 - clipped) * np.log2(1 - clipped))
    return float(stationary @ entropy)


def test_bayes_optimal_cost_on_long_sequences_approaches_the_table_entropy():
    task = tasks.get("ngrams")
    long, long_tables = task.sample_with_tables(rng(10), 6, min_length=40000, max_length=40000)
    short, short_tables = task.sample_with_tables(rng(11), 6)
    excess_long = task.optimal_costs(long) / 40000 - [entropy_rate(table) for table in long_tables]
    excess_short = task.optimal_costs(short) / 200 - [entropy_rate(table) for table in short_tables]
    # The regret, ~32 log2(n) / 2n bits per bit, vanishes; slowly mixing tables add some noise.
    assert np.abs(excess_long).mean() < 0.01 and np.abs(excess_long).max() < 0.03
    assert excess_short.mean() > 5 * np.abs(excess_long).mean()


def test_repeat_copy_ramp_copies_twice_the_length_then_grows_the_repeats():
    levels = tasks.get("repeat_copy").ramp_levels()
    assert [(level["max_length"], level["min_repeats"], level["max_repeats"]) for level in levels] == [
        (20, 1, 1), (10, 1, 2), (10, 1, 4), (10, 1, 7), (10, 1, 10)]
    assert tasks.get("repeat_copy", min_repeats=3, max_repeats=5).ramp_levels()[1]["max_repeats"] == 3
    assert tasks.get("copy").ramp_levels() == tasks.get("copy").curriculum_levels()
