"""Tests of NTMConfig: defaults, validation of every field, dict round-trip."""

import dataclasses

import numpy as np
import pytest

from ntm import NTMConfig

BAD_VALUES = {
    "input_size": [0, -1, 2.5, "8", True],
    "output_size": [0, None],
    "memory_slots": [0, -128],
    "memory_width": [0, 1.0],
    "address_size": [-1, 1.5, "2", True, None],
    "read_heads": [0],
    "write_heads": [0, -1],
    "shift_range": [0, 2, 4, 129],
    "controller": ["gru", None],
    "controller_layers": [0],
    "controller_units": [0, -5],
    "controller_activation": ["swish", 1],
    "memory_init": ["zeros", ""],
    "memory_init_value": ["1e-6", float("nan"), float("inf"), None],
    "learn_initial_weights": [1, "yes"],
    "learn_initial_reads": [0, None],
    "clip_value": [0, -1.0, float("inf"), "20"],
    "erase_bias": [float("nan"), "-4", None, True],
}


def test_defaults_are_the_papers_machine():
    cfg = NTMConfig(input_size=9, output_size=8)
    assert (cfg.memory_slots, cfg.memory_width) == (128, 20)
    assert (cfg.read_heads, cfg.write_heads, cfg.shift_range) == (1, 1, 3)
    assert (cfg.controller, cfg.controller_units) == ("lstm", 100)
    assert (cfg.memory_init, cfg.memory_init_value, cfg.clip_value) == ("constant", 1e-6, 20.0)


@pytest.mark.parametrize("field,value", [(f, v) for f, vs in BAD_VALUES.items() for v in vs])
def test_bad_values_raise_value_error_naming_the_field(field, value):
    values = {"input_size": 9, "output_size": 8, field: value}
    with pytest.raises(ValueError, match=field):
        NTMConfig(**values)


def test_round_trip_through_dict():
    cfg = NTMConfig(input_size=3, output_size=2, memory_slots=16, controller="feedforward",
                    memory_init="learned", learn_initial_reads=True, clip_value=None)
    assert NTMConfig.from_dict(cfg.to_dict()) == cfg


def test_from_dict_rejects_unknown_fields():
    with pytest.raises(ValueError, match="memory_size"):
        NTMConfig.from_dict({"input_size": 3, "output_size": 2, "memory_size": 4})


def test_config_is_frozen():
    cfg = NTMConfig(input_size=3, output_size=2)
    with pytest.raises(Exception):
        cfg.memory_slots = 4


def test_numpy_numbers_are_accepted_and_stored_as_python_numbers():
    import json

    import numpy as np

    cfg = NTMConfig(input_size=np.int64(4), output_size=np.int32(3), memory_slots=np.uint8(16),
                    memory_init_value=np.float32(0.5), clip_value=np.float64(10))
    assert (cfg.input_size, cfg.output_size, cfg.memory_slots) == (4, 3, 16)
    assert type(cfg.input_size) is int and type(cfg.memory_init_value) is float and type(cfg.clip_value) is float
    assert json.loads(json.dumps(cfg.to_dict())) == cfg.to_dict()
    assert NTMConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("config_class", ["ntm", "dnc", "lstm"])
def test_dtypes_are_named_and_checked_on_every_config(config_class):
    import jax.numpy as jnp
    import numpy as np

    from ntm import models

    cls = models.get(config_class).config_class
    assert cls(input_size=np.int64(3), output_size=2).dtype == "float32"
    cfg = cls(input_size=3, output_size=2, dtype=jnp.bfloat16, param_dtype=np.float64)
    assert (cfg.dtype, cfg.param_dtype) == ("bfloat16", "float64")
    for field, value in [("dtype", "float16"), ("dtype", "int32"), ("param_dtype", 5), ("param_dtype", None)]:
        with pytest.raises(ValueError, match=field):
            cls(input_size=3, output_size=2, **{field: value})


def test_address_size_widens_the_keys_only():
    plain = NTMConfig(input_size=9, output_size=8)
    addressed = NTMConfig(input_size=9, output_size=8, address_size=4)
    assert (plain.address_size, plain.key_size, addressed.key_size) == (0, 20, 24)
    assert addressed.head_parameter_size - plain.head_parameter_size == 2 * 4  # one key per head, 2 heads
    assert addressed.controller_input_size == plain.controller_input_size  # reads are the content only
    assert NTMConfig.from_dict(addressed.to_dict()) == addressed
    old = plain.to_dict()
    del old["address_size"]  # a config saved before addresses existed
    assert NTMConfig.from_dict(old) == plain


def test_erase_bias_sets_the_write_heads_erase_logits_only():
    import jax.numpy as jnp
    from flax import nnx

    from ntm.turing.heads import NTMHeads

    for address_size in (0, 3):
        config = NTMConfig(input_size=3, output_size=3, memory_width=4, read_heads=2, write_heads=2, shift_range=5,
                           address_size=address_size, erase_bias=-4.0)
        plain = NTMHeads(6, dataclasses.replace(config, erase_bias=0.0), rngs=nnx.Rngs(0))
        biased = NTMHeads(6, config, rngs=nnx.Rngs(0))
        for controller_output in (jnp.zeros((2, 6)), jnp.linspace(-1, 1, 12).reshape(2, 6)):
            (params, vectors), (plain_params, plain_vectors) = biased(controller_output), plain(controller_output)
            raw = plain.projection(controller_output).reshape(2, -1)[:, -2 * 2 * 4:].reshape(2, 2, 2, 4)
            np.testing.assert_allclose(vectors.erase, 1 / (1 + np.exp(-(raw[:, :, 0] - 4.0))), rtol=1e-5)
            np.testing.assert_array_equal(vectors.add, plain_vectors.add)
            for got, want in zip(params, plain_params):  # addressing untouched
                np.testing.assert_array_equal(got, want)
    old = NTMConfig(input_size=9, output_size=8).to_dict()
    del old["erase_bias"]  # a config saved before the option existed
    assert NTMConfig.from_dict(old).erase_bias == 0.0


def test_controller_input_size_and_user_controller_names():
    cfg = NTMConfig(input_size=9, output_size=8, read_heads=2, memory_width=20)
    assert cfg.controller_input_size == 9 + 2 * 20
    assert not cfg.user_controller
    assert NTMConfig(input_size=9, output_size=8, controller="user:pkg.Mine").user_controller
    with pytest.raises(ValueError, match="controller must name the class"):
        NTMConfig(input_size=9, output_size=8, controller="user:")
