"""Tests of the warm start (`init_from`): a model of a task with more channels starts from a trained one
and computes what it computed (new inputs ignored, new outputs at logit 0); mismatches are named."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from ntm import models, tasks
from ntm.training import TrainSettings, train
from ntm.training.runs import build_model
from ntm.training.warm_start import warm_start, widened

TINY = {"ntm": {"memory_slots": 16, "memory_width": 8, "controller_units": 32},
        "ntm-feedforward": {"memory_slots": 16, "memory_width": 8, "controller_units": 32,
                            "controller": "feedforward", "read_heads": 2},
        "lstm": {"units": 24, "layers": 2},
        "dnc": {"memory_slots": 8, "memory_width": 8, "controller_units": 24, "read_heads": 2}}


def model_for(task_name, kind, seed):
    settings = TrainSettings(task=task_name, model=kind.split("-")[0], model_options=TINY[kind], seed=seed)
    return build_model(settings, tasks.get(task_name))[0]


def randomised(model, seed):
    """Every parameter drawn at random (no zero biases), so a misplaced row or column changes the outputs."""
    params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    rng = np.random.default_rng(seed)  # numpy: no XLA program to compile for each parameter's shape
    models.put_params(model, jax.tree.map(lambda leaf: (0.3 * rng.normal(size=leaf.shape)).astype(leaf.dtype),
                                          params))
    return model


@pytest.mark.parametrize("kind", list(TINY))
def test_a_copy_model_widened_to_repeat_copy_computes_what_it_computed(kind):
    copy_model = randomised(model_for("copy", kind, 0), 1)
    repeat_model = model_for("repeat_copy", kind, 2)
    warm_start(repeat_model, copy_model)
    inputs = np.asarray(jax.random.bernoulli(jax.random.key(3), 0.5, (4, 7, 9)), np.float32)  # copy's 9 channels
    with_count = np.concatenate([inputs, np.full((4, 7, 1), 0.7, np.float32)], -1)  # + any repeat count
    before, after = copy_model(jnp.asarray(inputs)), repeat_model(jnp.asarray(with_count))
    np.testing.assert_allclose(np.asarray(after[..., :8]), np.asarray(before), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(after[..., 8]), 0.0)  # the end marker: a new output at zero


def test_widened_inserts_input_rows_after_the_inputs_and_appends_outputs():
    source = {"first": {"kernel": np.arange(12.0).reshape(6, 2)}, "out": {"kernel": np.ones((2, 3)),
                                                                         "bias": np.arange(3.0)}}
    target = {"first": {"kernel": np.zeros((7, 2))}, "out": {"kernel": np.zeros((2, 4)), "bias": np.zeros(4)}}
    result = widened(target, source, source_io=(2, 3), target_io=(3, 4))
    np.testing.assert_array_equal(result["first"]["kernel"],
                                  [[0, 1], [2, 3], [0, 0], [4, 5], [6, 7], [8, 9], [10, 11]])
    np.testing.assert_array_equal(result["out"]["bias"], [0, 1, 2, 0])
    np.testing.assert_array_equal(result["out"]["kernel"][:, 3], 0.0)


def test_mismatched_models_are_refused_naming_what_differs():
    copy_model = model_for("copy", "ntm", 0)
    with pytest.raises(ValueError, match="channels can be added, not removed"):
        warm_start(model_for("copy", "ntm", 1), model_for("repeat_copy", "ntm", 0))
    with pytest.raises(ValueError, match="the source is a ntm model, this run trains a lstm"):
        warm_start(model_for("repeat_copy", "lstm", 0), copy_model)
    bigger = build_model(TrainSettings(task="repeat_copy", model_options={**TINY["ntm"], "memory_width": 12}),
                         tasks.get("repeat_copy"))[0]
    with pytest.raises(ValueError, match="memory_width=8 there, 12 here"):
        warm_start(bigger, copy_model)


def test_a_run_started_from_a_trained_run_begins_at_its_parameters(trained_tiny_run, tmp_path, capsys):
    from ntm.evaluate import load_run

    settings = TrainSettings(task="repeat_copy", task_options={"max_length": 3, "max_repeats": 2},
                             model_options=TINY["ntm"], batch_size=2, steps=1, lr=1e-9, until_solved=False,
                             init_from=str(trained_tiny_run), judge_sequences=10, screen_sequences=10)
    train(settings, run_dir=tmp_path / "warm", progress=False)
    assert f"starting from the parameters of {trained_tiny_run}" in " ".join(capsys.readouterr().err.split())
    source = nnx.to_pure_dict(nnx.state(load_run(trained_tiny_run).model, nnx.Param))
    started = nnx.to_pure_dict(nnx.state(load_run(tmp_path / "warm").model, nnx.Param))
    expected = widened(started, source, (9, 8), (10, 9))
    for a, b in zip(jax.tree.leaves(started), jax.tree.leaves(expected)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
    assert load_run(tmp_path / "warm").settings.init_from == str(trained_tiny_run)
