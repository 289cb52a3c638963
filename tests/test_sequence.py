"""Tests of what the NTM, DNC and LSTM share through `ntm.sequence`: padding by selection (NaN inert),
checked lengths and masks, carry and batch checks, dtypes (bfloat16, float64), zeroed padded traces."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from ntm import DNC, NTM, DNCConfig, NTMConfig, NTMState
from ntm.baselines import LSTMConfig, LSTMModel
from ntm.sequence import check_lengths, count_params, sequence_mask

SIZES = dict(input_size=5, output_size=4)
BUILDERS = {
    "ntm": lambda **kw: NTM(NTMConfig(**SIZES, memory_slots=8, memory_width=6, controller_units=12, **kw),
                            rngs=nnx.Rngs(0)),
    "dnc": lambda **kw: DNC(DNCConfig(**SIZES, memory_slots=8, memory_width=6, controller_units=12, **kw),
                            rngs=nnx.Rngs(0)),
    "lstm": lambda **kw: LSTMModel(LSTMConfig(**SIZES, layers=2, units=12, **kw), rngs=nnx.Rngs(0)),
}
MODELS = sorted(BUILDERS)


def inputs(batch=3, steps=6, seed=0):
    return jnp.asarray(np.random.default_rng(seed).integers(0, 2, size=(batch, steps, 5)), jnp.float32)


def loss_and_grads(model, x, return_carry=True, **options):
    """A loss of the logits (and the final carry), the carry, the logits and every parameter's gradient."""
    graphdef, params = nnx.split(model, nnx.Param)

    def loss(params):
        result = nnx.merge(graphdef, params)(x, return_carry=return_carry, **options)
        carry, logits = result if return_carry else ((), result)
        return jnp.sum(logits**2) + sum(jnp.sum(leaf) for leaf in jax.tree.leaves(carry)), (carry, logits)

    (value, (carry, logits)), grads = jax.value_and_grad(loss, has_aux=True)(params)
    return value, carry, logits, grads


@functools.partial(jax.jit, static_argnames=("graphdef", "return_carry"))
def jitted_loss_and_grads(graphdef, params, x, lengths, return_carry):
    """`loss_and_grads` of nnx.merge(graphdef, params) as one compiled program (clean and poisoned inputs share it)."""
    return loss_and_grads(nnx.merge(graphdef, params), x, return_carry, lengths=lengths)


def assert_trees_close(a, b, **tolerance):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), **tolerance)


@pytest.mark.parametrize("return_carry", [True, False])
@pytest.mark.parametrize("name", MODELS)
def test_nan_in_padded_steps_touches_no_output_carry_or_gradient(name, return_carry):
    model = BUILDERS[name]()
    clean = inputs()
    lengths = jnp.array([6, 2, 4])
    padded = jnp.arange(6)[None, :, None] >= lengths[:, None, None]
    poisoned = jnp.where(padded, jnp.nan, clean)
    graphdef, params = nnx.split(model)
    want = jitted_loss_and_grads(graphdef, params, jnp.where(padded, 0.0, clean), lengths, return_carry)
    got = jitted_loss_and_grads(graphdef, params, poisoned, lengths, return_carry)
    for tree in got:
        assert all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree.leaves(tree))
    assert_trees_close(got, want, rtol=1e-6, atol=1e-7)
    assert any(float(jnp.abs(g).sum()) > 0 for g in jax.tree.leaves(got[3]))


@pytest.mark.parametrize("name", MODELS)
def test_a_mask_with_a_hole_skips_the_step_even_when_it_holds_inf(name):
    model = BUILDERS[name]()
    x = inputs(batch=2, steps=5)
    mask = jnp.array([[1, 1, 0, 1, 1], [1, 1, 1, 1, 1]])
    poisoned = x.at[0, 2].set(jnp.inf)
    carry, logits = model(poisoned, mask=mask, return_carry=True)
    # the first sequence is the same as itself with the masked step cut out
    cut = jnp.concatenate([x[:1, :2], x[:1, 3:]], axis=1)
    cut_carry, cut_logits = model(cut, return_carry=True)
    np.testing.assert_allclose(logits[0, [0, 1, 3, 4]], cut_logits[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(logits[0, 2], 0.0)
    assert_trees_close(jax.tree.map(lambda a: a[:1], carry), cut_carry, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", MODELS)
def test_trace_entries_at_padded_steps_are_zero(name):
    model = BUILDERS[name]()
    logits, trace = model(inputs(), lengths=jnp.array([6, 2, 4]), trace=True)
    for leaf in jax.tree.leaves(trace):
        np.testing.assert_array_equal(leaf[1, 2:], 0.0)
        np.testing.assert_array_equal(leaf[2, 4:], 0.0)
    assert any(float(jnp.abs(leaf[1, :2]).sum()) > 0 for leaf in jax.tree.leaves(trace))


@pytest.mark.parametrize(
    "lengths,message",
    [
        ([6, -1, 2], r"lengths must lie in \[0, 6\]"),
        ([6, 7, 2], r"lengths must lie in \[0, 6\]"),
        ([6.0, 2.5, 1.0], "whole numbers"),
        ([True, False, True], "integers"),
    ],
)
def test_concrete_lengths_outside_0_to_t_or_fractional_are_refused(lengths, message):
    model = BUILDERS["lstm"]()
    with pytest.raises(ValueError, match=message):
        model(inputs(), lengths=np.array(lengths))


def test_whole_float_lengths_and_numpy_lengths_are_accepted():
    model = BUILDERS["lstm"]()
    x = inputs()
    want = model(x, lengths=jnp.array([6, 0, 3]))
    np.testing.assert_allclose(model(x, lengths=np.array([6.0, 0.0, 3.0])), want)
    np.testing.assert_allclose(model(x, lengths=[6, 0, 3]), want)
    np.testing.assert_array_equal(want[1], 0.0)


def test_a_mask_of_other_than_0_and_1_is_refused():
    model = BUILDERS["lstm"]()
    mask = np.ones((3, 6))
    mask[1, 3] = 0.5
    with pytest.raises(ValueError, match=r"mask entries must be 0 or 1, got \[0.5\]"):
        model(inputs(), mask=mask)
    with pytest.raises(ValueError, match=r"mask must have shape \(3, 6\)"):
        model(inputs(), mask=np.ones((3, 5)))


def test_under_jit_lengths_are_not_checked_and_clamp_as_documented():
    model = BUILDERS["lstm"]()
    x = inputs()

    @nnx.jit
    def forward(model, x, lengths):
        return model(x, lengths=lengths)

    np.testing.assert_allclose(forward(model, x, jnp.array([9, -3, 4])), model(x, lengths=jnp.array([6, 0, 4])),
                               atol=1e-6)


def test_sequence_mask_is_boolean_from_lengths_or_mask():
    np.testing.assert_array_equal(sequence_mask(2, 3, lengths=[1, 3]), [[True, False, False], [True, True, True]])
    np.testing.assert_array_equal(sequence_mask(1, 3, mask=[[1, 0, 1]]), [[True, False, True]])
    assert sequence_mask(2, 3).all() and sequence_mask(2, 3).dtype == bool
    with pytest.raises(ValueError, match=r"lengths must have shape \(2,\)"):
        check_lengths(np.array([1, 2, 3]), 2, 3)


@pytest.mark.parametrize("name", MODELS)
def test_an_initial_carry_of_the_wrong_batch_size_is_a_clear_error(name):
    model = BUILDERS[name]()
    carry = model.initial_state(2)
    with pytest.raises(ValueError, match=r"initial_carry.*batch size 3"):
        model(inputs(batch=3), initial_carry=carry)


@pytest.mark.parametrize("name", ["ntm", "dnc"])
def test_an_empty_batch_is_a_clear_error_through_the_layer_and_nnx_rnn(name):
    model = BUILDERS[name]()
    with pytest.raises(ValueError, match="at least one sequence"):
        model(jnp.zeros((0, 4, 5)))
    with pytest.raises(ValueError, match="at least one sequence"):
        nnx.RNN(model.cell)(jnp.zeros((0, 4, 5)))


@pytest.mark.parametrize("name", ["ntm", "dnc"])
def test_a_cell_carry_of_another_batch_size_is_a_clear_error_in_nnx_rnn(name):
    model = BUILDERS[name]()
    carry = model.cell.initialize_carry((2, 5))
    with pytest.raises(ValueError, match="the carry holds 2 sequences but the inputs 3"):
        nnx.RNN(model.cell)(inputs(batch=3), initial_carry=carry)


@pytest.mark.parametrize("name", MODELS)
def test_bfloat16_inputs_with_dtype_bfloat16_give_bfloat16_outputs_near_float32(name):
    wide = BUILDERS[name]()
    narrow = BUILDERS[name](dtype="bfloat16")
    nnx.update(narrow, nnx.state(wide, nnx.Param))  # the same float32 parameters
    x = inputs()
    carry, logits = narrow(x.astype(jnp.bfloat16), return_carry=True)
    assert logits.dtype == jnp.bfloat16
    assert {leaf.dtype for leaf in jax.tree.leaves(carry)} == {jnp.dtype(jnp.bfloat16)}
    want = wide(x)
    np.testing.assert_allclose(np.asarray(logits, np.float32), want, atol=0.05 * float(jnp.abs(want).max()) + 0.02)
    assert not np.array_equal(np.asarray(logits, np.float32), np.asarray(want))  # really computed in bfloat16


@pytest.mark.parametrize("name", MODELS)
def test_param_dtype_sets_every_parameter_dtype(name):
    model = BUILDERS[name](dtype="bfloat16", param_dtype="bfloat16")
    assert {leaf.dtype for leaf in jax.tree.leaves(nnx.state(model, nnx.Param))} == {jnp.dtype(jnp.bfloat16)}
    assert model(inputs()).dtype == jnp.bfloat16
    assert count_params(model) == count_params(BUILDERS[name]())


@pytest.mark.parametrize("name", MODELS)
def test_float64_works_under_x64_and_matches_float32(name):
    x, lengths = inputs(), jnp.array([6, 3, 5])
    wide = BUILDERS[name]()
    want = wide(x)
    with jax.enable_x64(True):
        # built abstractly (its initialisers need not compile again in float64), then given the same parameters
        model = nnx.eval_shape(lambda: BUILDERS[name](dtype="float64", param_dtype="float64"))
        assert {leaf.dtype for leaf in jax.tree.leaves(nnx.state(model, nnx.Param))} == {jnp.dtype(jnp.float64)}
        nnx.update(model, jax.tree.map(lambda a: a.astype(jnp.float64) if jnp.issubdtype(a.dtype, jnp.floating)
                                       else a, nnx.state(wide)))
        assert all(isinstance(leaf, jax.Array) for leaf in jax.tree.leaves(nnx.state(model)))
        wide_inputs = jnp.asarray(np.asarray(x), jnp.float64)
        _, carry, logits, grads = jitted_loss_and_grads(*nnx.split(model), wide_inputs, lengths, True)
        assert logits.dtype == jnp.float64
        assert {leaf.dtype for leaf in jax.tree.leaves(carry) + jax.tree.leaves(grads)} == {jnp.dtype(jnp.float64)}
        # the default float32 model takes float64 inputs under x64 too (cast at the call; its dtype is
        # decided when the call is traced, so tracing it is enough)
        assert jax.eval_shape(lambda x: BUILDERS[name]()(x), wide_inputs).dtype == jnp.float32
    # the same parameters in float64: the same logits up to float32 rounding at every real step (a step's
    # logits do not depend on later steps), zero at padded ones, and not bit for bit
    real = np.arange(6)[None, :, None] < np.asarray(lengths)[:, None, None]
    np.testing.assert_allclose(np.asarray(logits), np.where(real, want, 0.0), rtol=1e-4, atol=1e-5)
    assert not np.array_equal(np.asarray(logits, np.float32), np.asarray(want))


def test_float64_without_x64_is_a_clear_error_at_build():
    with pytest.raises(ValueError, match="jax_enable_x64"):
        BUILDERS["ntm"](dtype="float64")


def test_ntm_state_carry_is_in_the_config_dtype():
    carry = BUILDERS["ntm"](dtype="bfloat16").initial_state(2)
    assert isinstance(carry, NTMState)
    assert carry.memory.dtype == carry.read_weights.dtype == carry.reads.dtype == jnp.bfloat16
