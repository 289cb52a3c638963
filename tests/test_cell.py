"""Tests of NTMCell and the NTM sequence layer: nnx.RNN equivalence, masking, traces, shapes, options."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import ntm
from ntm import NTM, NTMCell, NTMConfig, NTMState

SMALL = dict(input_size=5, output_size=4, memory_slots=12, memory_width=6, controller_units=16)


def small_model(seed=0, **changes):
    return NTM(NTMConfig(**{**SMALL, **changes}), rngs=nnx.Rngs(seed))


def random_inputs(batch=3, steps=7, size=5, seed=0):
    return jnp.asarray(np.random.default_rng(seed).integers(0, 2, size=(batch, steps, size)), jnp.float32)


def test_output_shape_and_parameter_count_of_the_papers_copy_machine():
    model = NTM(NTMConfig(input_size=9, output_size=8), rngs=nnx.Rngs(0))
    logits = model(jnp.zeros((2, 4, 9)))
    assert logits.shape == (2, 4, 8)
    lstm = (9 + 20 + 100) * 400 + 400
    heads = 100 * (2 * (20 + 3 + 3) + 2 * 20) + (2 * (20 + 3 + 3) + 2 * 20)
    output = (100 + 20) * 8 + 8
    assert ntm.count_params(model) == lstm + heads + output


def test_cell_inside_nnx_rnn_matches_the_layer():
    model = small_model()
    x = random_inputs()
    rnn = nnx.RNN(model.cell)
    np.testing.assert_allclose(rnn(x), model(x), atol=1e-6)
    carry_rnn, _ = rnn(x, return_carry=True)
    carry, _ = model(x, return_carry=True)
    np.testing.assert_allclose(carry_rnn.memory, carry.memory, atol=1e-6)


def test_padded_sequence_matches_the_same_sequence_alone():
    model = small_model(read_heads=2, write_heads=2)
    x = random_inputs(batch=3, steps=9)
    lengths = jnp.array([9, 4, 6])
    carry, logits = model(x, lengths=lengths, return_carry=True)
    for b, length in enumerate([9, 4, 6]):
        alone_carry, alone = model(x[b : b + 1, :length], return_carry=True)
        np.testing.assert_allclose(logits[b, :length], alone[0], atol=1e-5)
        np.testing.assert_allclose(logits[b, length:], 0.0)
        for got, want in zip(jax.tree.leaves(carry), jax.tree.leaves(alone_carry)):
            np.testing.assert_allclose(got[b], want[0], atol=1e-5)


def test_mask_is_equivalent_to_lengths():
    model = small_model()
    x = random_inputs()
    lengths = jnp.array([7, 2, 5])
    mask = (jnp.arange(7)[None] < lengths[:, None]).astype(jnp.float32)
    np.testing.assert_allclose(model(x, mask=mask), model(x, lengths=lengths), atol=1e-6)
    with pytest.raises(ValueError, match="either lengths or mask"):
        model(x, mask=mask, lengths=lengths)
    with pytest.raises(ValueError, match="lengths must have shape"):
        model(x, lengths=jnp.array([1, 2]))


def test_initial_carry_continues_a_split_sequence():
    model = small_model()
    x = random_inputs(steps=8)
    whole = model(x)
    carry, first = model(x[:, :3], return_carry=True)
    second = model(x[:, 3:], initial_carry=carry)
    np.testing.assert_allclose(jnp.concatenate([first, second], 1), whole, atol=1e-5)


def test_trace_returns_per_step_internals_consistent_with_the_carry():
    model = small_model(read_heads=2)
    x = random_inputs(steps=6)
    carry, logits, trace = model(x, return_carry=True, trace=True)
    assert trace.read_weights.shape == (3, 6, 2, 12)
    assert trace.write_weights.shape == (3, 6, 1, 12)
    assert trace.reads.shape == (3, 6, 2, 6)
    assert trace.erase.shape == trace.add.shape == (3, 6, 1, 6)
    assert trace.memory.shape == (3, 6, 12, 6)
    np.testing.assert_allclose(trace.memory[:, -1], carry.memory, atol=1e-6)
    np.testing.assert_allclose(trace.read_weights.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(logits, model(x), atol=1e-6)
    # reads at step t come from the memory after step t-1's write
    np.testing.assert_allclose(
        trace.reads[:, 3], ntm.memory.read(trace.memory[:, 2], trace.read_weights[:, 3]), atol=1e-5
    )


def test_wrong_input_shapes_raise_value_error_saying_what_was_expected():
    model = small_model()
    with pytest.raises(ValueError, match=r"\[batch, time, 5\].*\(2, 3, 4\)"):
        model(jnp.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="got \\(3, 5\\)"):
        model(jnp.zeros((3, 5)))
    with pytest.raises(ValueError, match="config must be an NTMConfig"):
        NTM({"input_size": 5}, rngs=nnx.Rngs(0))


@pytest.mark.parametrize(
    "changes",
    [
        dict(controller="feedforward", controller_layers=2, controller_activation="relu"),
        dict(controller_layers=2),
        dict(memory_init="learned", learn_initial_weights=True, learn_initial_reads=True),
        dict(clip_value=None, shift_range=5),
    ],
)
def test_variants_give_finite_outputs_and_gradients(changes):
    model = small_model(**changes)
    x = random_inputs()
    graphdef, params = nnx.split(model, nnx.Param)

    def loss(params):
        return jnp.sum(nnx.merge(graphdef, params)(x) ** 2)

    value, grads = jax.value_and_grad(loss)(params)
    assert np.isfinite(float(value))
    leaves = jax.tree.leaves(grads)
    assert all(np.isfinite(np.asarray(g)).all() for g in leaves)
    assert any(np.abs(np.asarray(g)).sum() > 0 for g in leaves)
    if changes.get("memory_init") == "learned":
        assert float(jnp.abs(grads["cell"]["initial_memory"][...]).sum()) > 0


@pytest.mark.parametrize("memory_step", ["fused", "plain"])
def test_addresses_are_trained_by_gradients_and_never_written(memory_step):
    model = small_model(address_size=3, read_heads=2, write_heads=2, memory_step=memory_step)
    cell = model.cell
    assert cell.addresses[...].shape == (12, 3)
    assert model.config.head_parameter_size == 4 * (3 + 6 + 3 + 3) + 2 * 2 * 6  # keys are A + M = 9 wide
    before = np.asarray(cell.addresses[...])
    x = random_inputs()
    carry, _, trace = model(x, return_carry=True, trace=True)
    # Writes changed the content (constant 1e-6 at the start) and left the addresses as they were.
    assert carry.memory.shape == (3, 12, 6) and trace.memory.shape == (3, 7, 12, 6)
    assert float(jnp.max(jnp.abs(carry.memory - 1e-6))) > 1e-2
    np.testing.assert_array_equal(cell.addresses[...], before)
    # The loss depends on the addresses through the lookups: they get a gradient, and a step of
    # gradient descent (not a write) is what changes them.
    graphdef, params = nnx.split(model, nnx.Param)
    grads = jax.grad(lambda p: jnp.sum(nnx.merge(graphdef, p)(x) ** 2))(params)
    address_grads = np.asarray(grads["cell"]["addresses"][...])
    assert np.isfinite(address_grads).all() and np.abs(address_grads).min(axis=1).max() > 0
    moved = nnx.merge(graphdef, jax.tree.map(lambda p, g: p - 0.1 * g, params, grads))
    assert not np.allclose(moved.cell.addresses[...], before)


def test_a_model_without_addresses_initialises_as_before_they_existed():
    """The addresses are drawn after every other parameter, so address_size=0 leaves the rest alone."""
    plain, addressed = small_model(seed=4), small_model(seed=4, address_size=2)
    assert not hasattr(plain.cell, "addresses")
    for path in (("controller",), ("output",)):
        a = nnx.state(plain.cell, nnx.Param)[path[0]]
        b = nnx.state(addressed.cell, nnx.Param)[path[0]]
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
            np.testing.assert_array_equal(x, y)


def test_random_memory_init_draws_from_its_own_stream_or_the_given_rngs():
    model = small_model(memory_init="random")
    x = random_inputs()
    first, second = model(x), model(x)  # the layer's own stream advances between calls
    assert not np.allclose(first, second)
    again = small_model(memory_init="random")  # the same seed gives the same stream
    np.testing.assert_allclose(again(x), first)
    a = model(x, rngs=jax.random.key(1))
    b = model(x, rngs=jax.random.key(2))
    assert not np.allclose(a, b)
    np.testing.assert_allclose(a, model(x, rngs=jax.random.key(1)))


def test_constant_memory_init_value_and_one_hot_start():
    model = small_model(memory_init_value=0.25)
    carry = model.cell.initialize_carry((2, 5))
    assert isinstance(carry, NTMState)
    np.testing.assert_allclose(carry.memory, 0.25)
    np.testing.assert_allclose(carry.read_weights[:, :, 0], 1.0)
    np.testing.assert_allclose(carry.reads, 0.25)


class TinyGRUController(nnx.Module):
    """A user-written controller meeting the documented contract."""

    def __init__(self, input_size, units, *, rngs):
        self.cell = nnx.GRUCell(input_size, units, rngs=rngs)
        self.output_size = units

    def initialize_state(self, batch_size):
        return jnp.zeros((batch_size, self.output_size))

    def __call__(self, state, inputs):
        return self.cell(state, inputs)


def test_user_given_controller_replaces_the_built_in_one():
    cfg = NTMConfig(**SMALL)
    controller = TinyGRUController(cfg.input_size + cfg.memory_width, 10, rngs=nnx.Rngs(3))
    model = NTM(cfg, rngs=nnx.Rngs(0), controller=controller)
    logits = model(random_inputs())
    assert logits.shape == (3, 7, 4)
    assert isinstance(model.cell.controller, TinyGRUController)
    with pytest.raises(ValueError, match="controller must be"):
        NTMCell(cfg, rngs=nnx.Rngs(0), controller=object())


def test_jit_compiles_the_layer():
    model = small_model()
    x = random_inputs()

    @nnx.jit
    def forward(model, x):
        return model(x)

    np.testing.assert_allclose(forward(model, x), model(x), atol=1e-5)


def test_unfrozen_carry_fast_path_gives_the_same_real_outputs():
    model = small_model()
    x = random_inputs(batch=3, steps=9)
    lengths = jnp.array([9, 4, 1])
    _, frozen = model(x, lengths=lengths, return_carry=True)
    np.testing.assert_allclose(model(x, lengths=lengths), frozen, atol=1e-6)
    np.testing.assert_allclose(model(x, lengths=lengths)[1, 4:], 0.0)


def test_remat_gives_the_same_loss_and_gradients():
    model = small_model()
    x = random_inputs(steps=6)
    graphdef, params = nnx.split(model, nnx.Param)

    def loss(params, remat):
        return jnp.sum(jnp.tanh(nnx.merge(graphdef, params)(x, lengths=jnp.array([6, 3, 5]), remat=remat)))

    plain_value, plain = jax.value_and_grad(loss)(params, False)
    remat_value, remat = jax.value_and_grad(loss)(params, True)
    np.testing.assert_allclose(remat_value, plain_value, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(remat)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_cell_with_the_wrong_feature_size_is_a_clear_error_at_the_call():
    cell = small_model().cell
    carry = cell.initialize_carry((2, 5))
    with pytest.raises(ValueError, match=r"NTMCell inputs must have shape \[batch, 5\], got \(2, 4\)"):
        cell(carry, jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"\[batch, 5\], got \(2, 6\)"):
        nnx.RNN(cell)(jnp.zeros((2, 3, 6)))


def test_controller_input_size_is_what_the_built_in_controller_receives():
    cfg = NTMConfig(**{**SMALL, "read_heads": 3})
    assert cfg.controller_input_size == 5 + 3 * 6
    model = NTM(cfg, rngs=nnx.Rngs(0))
    assert model.cell.controller.layers[0].input_size == cfg.controller_input_size


class WrongInputController(TinyGRUController):
    """Built for the NTM's input size alone, forgetting the reads."""


class WideOutputController(nnx.Module):
    """Returns more columns than its declared output_size."""

    def __init__(self, input_size, *, rngs):
        self.linear = nnx.Linear(input_size, 12, rngs=rngs)
        self.output_size = 10

    def initialize_state(self, batch_size):
        return ()

    def __call__(self, state, inputs):
        return state, self.linear(inputs)


class GrowingStateController(TinyGRUController):
    """Returns a state of another shape than the one it started with."""

    def __call__(self, state, inputs):
        state, outputs = self.cell(state, inputs)
        return jnp.concatenate([state, state], axis=-1), outputs


def test_user_controller_of_the_wrong_shapes_is_refused_when_the_model_is_built():
    cfg = NTMConfig(**SMALL)
    with pytest.raises(ValueError, match=r"WrongInputController failed on inputs of shape \(2, 11\).*controller_input_size"):
        NTM(cfg, rngs=nnx.Rngs(0), controller=WrongInputController(cfg.input_size, 10, rngs=nnx.Rngs(1)))
    with pytest.raises(ValueError, match=r"outputs of shape \(batch, output_size\) = \(2, 10\).*\(2, 12\)"):
        NTM(cfg, rngs=nnx.Rngs(0), controller=WideOutputController(cfg.controller_input_size, rngs=nnx.Rngs(1)))
    with pytest.raises(ValueError, match=r"state like the one initialize_state gives \(\(2, 10\) float32\)"):
        NTM(cfg, rngs=nnx.Rngs(0), controller=GrowingStateController(cfg.controller_input_size, 10, rngs=nnx.Rngs(1)))


def test_checking_a_user_controller_leaves_it_unchanged():
    cfg = NTMConfig(**SMALL)
    controller = TinyGRUController(cfg.controller_input_size, 10, rngs=nnx.Rngs(3))
    before = jax.tree.map(np.asarray, nnx.state(controller))
    NTM(cfg, rngs=nnx.Rngs(0), controller=controller)
    after = jax.tree.map(np.asarray, nnx.state(controller))
    for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after)):
        np.testing.assert_array_equal(a, b)


def test_the_config_records_a_user_controller_and_needs_it_back():
    cfg = NTMConfig(**SMALL)
    model = NTM(cfg, rngs=nnx.Rngs(0), controller=TinyGRUController(cfg.controller_input_size, 10, rngs=nnx.Rngs(3)))
    assert model.config.controller == f"user:{__name__}.TinyGRUController"
    assert model.cell.config == model.config and model.config.user_controller
    assert cfg.controller == "lstm"  # the caller's config is not changed
    with pytest.raises(ValueError, match="user controller; pass that module as controller="):
        NTM(model.config, rngs=nnx.Rngs(0))


def test_help_of_the_layer_describes_its_call_options():
    import pydoc

    text = pydoc.render_doc(ntm.NTM, renderer=pydoc.plaintext)
    for option in ("initial_carry", "lengths", "mask", "return_carry", "trace", "rngs", "remat", "dtype"):
        assert option in text
    assert "NaN" in text and "under jit" in text
