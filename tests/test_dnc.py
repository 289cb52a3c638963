"""Tests of the Differentiable Neural Computer: its addressing maths by hand and under hypothesis,
its config, the cell and sequence layer (masks, carries, traces, nnx.RNN, gradients), and that it
learns the copy task on the CPU."""

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays
from jax.test_util import check_grads

import ntm
from ntm import models
from ntm.dnc import DNC, DNCCell, DNCConfig, DNCState, DNCStepTrace
from ntm.dnc import addressing as dnc

# A small machine for the layer tests; the copy task's input has 8 bits and a delimiter channel.
BITS = 8
SMALL = DNCConfig(BITS + 1, BITS, memory_slots=8, memory_width=6, read_heads=2, controller_units=16)


def batched(*rows):
    """One batch entry from plain lists: each argument becomes an array with a leading axis of 1."""
    return [jnp.asarray([row], jnp.float32) for row in rows]


# --- addressing: hand-computed cases -------------------------------------------------------------


def test_allocation_of_hand_computed_usage():
    # Rising usage: slot 1 (0.1), slot 0 (0.5), slot 2 (0.9).
    # a[1] = 0.9; a[0] = 0.5 * 0.1; a[2] = 0.1 * 0.1 * 0.5.
    (usage,) = batched([0.5, 0.1, 0.9])
    np.testing.assert_allclose(dnc.allocation_weights(usage)[0], [0.05, 0.9, 0.005], atol=1e-5)


def test_allocation_of_empty_memory_picks_the_first_slot_and_of_full_memory_nothing():
    empty = jnp.zeros((1, 4))
    np.testing.assert_allclose(dnc.allocation_weights(empty)[0], [1.0, 0.0, 0.0, 0.0], atol=1e-5)
    full = jnp.ones((1, 4))
    np.testing.assert_allclose(dnc.allocation_weights(full)[0], np.zeros(4), atol=1e-5)
    # One free slot among used ones gets all the allocation, wherever it is.
    (usage,) = batched([1.0, 1.0, 0.0, 1.0])
    np.testing.assert_allclose(dnc.allocation_weights(usage)[0], [0.0, 0.0, 1.0, 0.0], atol=1e-5)


def test_usage_update_adds_the_last_write_and_frees_what_was_read():
    # u + w - u w = [0.6, 0.5, 0.5]; one read head fully freeing slot 1 -> retention [1, 0, 1].
    usage, write = batched([0.2, 0.5, 0.0], [0.5, 0.0, 0.5])
    new = dnc.update_usage(usage, write[:, None], jnp.array([[1.0]]), jnp.array([[[0.0, 1.0, 0.0]]]))
    np.testing.assert_allclose(new[0], [0.6, 0.0, 0.5], atol=1e-6)
    # Two read heads: free gates 0.5 and 1 on reads [1, 0, 0] and [0, 0, 0.5] -> psi [0.5, 1, 0.5].
    reads = jnp.array([[[1.0, 0.0, 0.0], [0.0, 0.0, 0.5]]])
    np.testing.assert_allclose(dnc.retention(jnp.array([[0.5, 1.0]]), reads)[0], [0.5, 1.0, 0.5], atol=1e-6)
    new = dnc.update_usage(usage, write[:, None], jnp.array([[0.5, 1.0]]), reads)
    np.testing.assert_allclose(new[0], [0.3, 0.5, 0.25], atol=1e-6)
    # Free gates at zero keep everything.
    kept = dnc.update_usage(usage, write[:, None], jnp.zeros((1, 2)), reads)
    np.testing.assert_allclose(kept[0], [0.6, 0.5, 0.5], atol=1e-6)


def test_write_weighting_mixes_allocation_and_content_through_the_gates():
    content, allocation = batched([0.1, 0.8, 0.1], [0.7, 0.2, 0.1])
    w = dnc.write_weights(content[:, None], allocation[:, None], jnp.array([[0.25]]), jnp.array([[0.5]]))
    # 0.5 * (0.25 * a + 0.75 * c)
    np.testing.assert_allclose(w[0, 0], [0.125, 0.325, 0.05], atol=1e-6)
    closed = dnc.write_weights(content[:, None], allocation[:, None], jnp.array([[0.25]]), jnp.zeros((1, 1)))
    np.testing.assert_allclose(closed, np.zeros((1, 1, 3)))


def test_precedence_follows_the_last_write():
    p = jnp.zeros((1, 1, 3))
    p = dnc.update_precedence(p, jnp.array([[[1.0, 0.0, 0.0]]]))
    np.testing.assert_allclose(p[0, 0], [1.0, 0.0, 0.0])
    p = dnc.update_precedence(p, jnp.array([[[0.0, 0.5, 0.0]]]))
    np.testing.assert_allclose(p[0, 0], [0.5, 0.5, 0.0])
    p = dnc.update_precedence(p, jnp.zeros((1, 1, 3)))  # no write keeps it
    np.testing.assert_allclose(p[0, 0], [0.5, 0.5, 0.0])


def write_sequence(writes):
    """Run precedence and link updates over a list of write weightings [N]; return (link, precedence)."""
    n = len(writes[0])
    link, precedence = jnp.zeros((1, 1, n, n)), jnp.zeros((1, 1, n))
    for w in writes:
        w = jnp.asarray(w, jnp.float32)[None, None]
        link = dnc.update_link(link, precedence, w)
        precedence = dnc.update_precedence(precedence, w)
    return link, precedence


def test_link_matrix_records_the_order_of_one_hot_writes():
    # Writes to slot 0, then 2, then 1: L[2,0] = 1 (2 came after 0) and L[1,2] = 1.
    link, precedence = write_sequence([[1, 0, 0], [0, 0, 1], [0, 1, 0]])
    expected = np.zeros((3, 3))
    expected[2, 0] = expected[1, 2] = 1.0
    np.testing.assert_allclose(link[0, 0], expected, atol=1e-6)
    np.testing.assert_allclose(precedence[0, 0], [0.0, 1.0, 0.0], atol=1e-6)


def test_link_matrix_of_soft_writes_by_hand():
    # p after the first write: [0.5, 0.5, 0]. Writing [0, 0, 1]: L[2,j] = p[j] -> row 2 = [0.5, 0.5, 0],
    # p becomes [0, 0, 1]. Writing [0.5, 0, 0]: L[0,2] = 0.5 * 1; L[2,0] = (1 - 0 - 0.5) * 0.5;
    # L[2,1] = 0.5 unchanged; the diagonal stays 0.
    link, precedence = write_sequence([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0], [0.5, 0.0, 0.0]])
    expected = [[0.0, 0.0, 0.5], [0.0, 0.0, 0.0], [0.25, 0.5, 0.0]]
    np.testing.assert_allclose(link[0, 0], expected, atol=1e-6)
    np.testing.assert_allclose(precedence[0, 0], [0.5, 0.0, 0.5], atol=1e-6)


def test_forward_and_backward_weightings_step_along_the_write_order():
    link, _ = write_sequence([[1, 0, 0], [0, 0, 1], [0, 1, 0]])  # order of writes: 0, 2, 1
    at_slot_2 = jnp.array([[[0.0, 0.0, 1.0]]])
    np.testing.assert_allclose(dnc.forward_weights(link, at_slot_2)[0, 0, 0], [0.0, 1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(dnc.backward_weights(link, at_slot_2)[0, 0, 0], [1.0, 0.0, 0.0], atol=1e-6)
    # The last write has nothing after it; the first nothing before it.
    at_slot_1 = jnp.array([[[0.0, 1.0, 0.0]]])
    np.testing.assert_allclose(dnc.forward_weights(link, at_slot_1)[0, 0, 0], np.zeros(3), atol=1e-6)
    at_slot_0 = jnp.array([[[1.0, 0.0, 0.0]]])
    np.testing.assert_allclose(dnc.backward_weights(link, at_slot_0)[0, 0, 0], np.zeros(3), atol=1e-6)
    # Soft read weights mix linearly: half on slot 0 and half on slot 2 -> forward half on 2, half on 1.
    half = jnp.array([[[0.5, 0.0, 0.5]]])
    np.testing.assert_allclose(dnc.forward_weights(link, half)[0, 0, 0], [0.0, 0.5, 0.5], atol=1e-6)


def test_read_weighting_mixes_backward_content_forward_by_the_read_modes():
    backward, content, forward = batched([1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0])
    modes = jnp.array([[[0.2, 0.5, 0.3]]])  # backward, content, forward
    w = dnc.read_weights(content[:, None], forward[:, None, None], backward[:, None, None], modes)
    np.testing.assert_allclose(w[0, 0], [0.2, 0.5, 0.3], atol=1e-6)
    only_forward = jnp.array([[[0.0, 0.0, 1.0]]])
    w = dnc.read_weights(content[:, None], forward[:, None, None], backward[:, None, None], only_forward)
    np.testing.assert_allclose(w[0, 0], forward[0], atol=1e-6)


# --- addressing: invariants under hypothesis -----------------------------------------------------

unit_floats = st.floats(0.0, 1.0, width=32)


@st.composite
def weightings(draw, count, slots):
    """`count` weightings over `slots`: non-negative, each summing to at most 1 (some exactly 1)."""
    raw = draw(arrays(np.float32, (count, slots), elements=unit_floats))
    totals = draw(arrays(np.float32, (count, 1), elements=st.sampled_from([0.0, 0.3, 1.0])))
    sums = raw.sum(axis=-1, keepdims=True)
    return np.where(sums > 0, raw / np.maximum(sums, 1e-12) * totals, 0.0).astype(np.float32)


def reference_allocation(usage):
    """The paper's allocation, one slot at a time in NumPy (float64 after the float32 epsilon map,
    so that usages equal in float32 tie in both and keep their slot order)."""
    epsilon = np.float32(dnc.USAGE_EPSILON)
    usage = (epsilon + (np.float32(1) - epsilon) * np.asarray(usage, np.float32)).astype(np.float64)
    allocation = np.zeros_like(usage)
    product = 1.0
    for slot in np.argsort(usage, kind="stable"):
        allocation[slot] = (1 - usage[slot]) * product
        product *= usage[slot]
    return allocation


@settings(max_examples=40, deadline=None)
@given(arrays(np.float32, (3, 6), elements=unit_floats))
def test_allocation_is_non_negative_sums_to_at_most_one_and_matches_the_reference(usage):
    allocation = np.asarray(dnc.allocation_weights(jnp.asarray(usage)))
    assert np.all(allocation >= 0)
    assert np.all(allocation.sum(axis=-1) <= 1 + 1e-5)
    for row, usage_row in zip(allocation, usage):
        np.testing.assert_allclose(row, reference_allocation(usage_row), atol=1e-5)


@settings(max_examples=30, deadline=None)
@given(
    arrays(np.float32, (2, 5), elements=unit_floats),
    st.integers(0, 2**31 - 1),
)
def test_usage_stays_in_the_unit_interval(usage, seed):
    rng = np.random.default_rng(seed)
    write = rng.dirichlet(np.ones(5), size=(2, 1)).astype(np.float32) * rng.uniform(0, 1, (2, 1, 1))
    reads = rng.dirichlet(np.ones(5), size=(2, 3)).astype(np.float32)
    free = rng.uniform(0, 1, (2, 3)).astype(np.float32)
    new = np.asarray(dnc.update_usage(jnp.asarray(usage), jnp.asarray(write, jnp.float32), free, reads))
    assert np.all(new >= 0) and np.all(new <= 1)
    # Without freeing, usage never falls.
    kept = np.asarray(dnc.update_usage(jnp.asarray(usage), jnp.asarray(write, jnp.float32), 0 * free, reads))
    assert np.all(kept >= usage - 1e-7)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6).flatmap(lambda steps: weightings(steps, 5)), weightings(2, 5))
def test_link_has_zero_diagonal_and_rows_and_columns_summing_to_at_most_one(writes, reads):
    link, precedence = write_sequence(list(writes))
    link = np.asarray(link[0, 0])
    assert np.all(np.diag(link) == 0)
    assert np.all(link >= -1e-6)
    assert np.all(link.sum(axis=0) <= 1 + 1e-5) and np.all(link.sum(axis=1) <= 1 + 1e-5)
    assert float(jnp.sum(precedence)) <= 1 + 1e-5 and float(jnp.min(precedence)) >= 0
    link = jnp.asarray(link)[None, None]
    for direction in (dnc.forward_weights, dnc.backward_weights):
        w = np.asarray(direction(link, jnp.asarray(reads)[None]))
        assert w.shape == (1, 2, 1, 5)
        assert np.all(w >= -1e-6) and np.all(w.sum(axis=-1) <= 1 + 1e-5)


# --- addressing: gradients ----------------------------------------------------------------------


def test_addressing_gradients_match_finite_differences():
    # float64 so finite differences are accurate; each function jitted so it compiles once.
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        f64 = lambda a: jnp.asarray(a, jnp.float64)
        # Distinct usages keep the sort order fixed under the finite-difference steps.
        usage = f64([[0.5, 0.1, 0.9, 0.3]])
        check_grads(jax.jit(dnc.allocation_weights), (usage,), order=1, modes=("fwd", "rev"), eps=1e-4)
        write = f64(rng.dirichlet(np.ones(4), size=(1, 1)) * 0.8)
        reads = f64(rng.dirichlet(np.ones(4), size=(1, 2)))
        free = f64([[0.3, 0.7]])
        check_grads(jax.jit(dnc.update_usage), (usage, write, free, reads), order=1, modes=("rev",), eps=1e-4)
        link = f64(rng.uniform(0, 0.2, (1, 1, 4, 4)) * (1 - np.eye(4)))
        precedence = f64(rng.dirichlet(np.ones(4), size=(1, 1)) * 0.5)
        check_grads(jax.jit(dnc.update_link), (link, precedence, write), order=1, modes=("rev",), eps=1e-4)
        modes = f64(rng.dirichlet(np.ones(3), size=(1, 2)))
        content = f64(rng.dirichlet(np.ones(4), size=(1, 2)))

        def read_by_modes(link, previous_reads, content, modes):
            forward = dnc.forward_weights(link, previous_reads)
            backward = dnc.backward_weights(link, previous_reads)
            return dnc.read_weights(content, forward, backward, modes)

        check_grads(jax.jit(read_by_modes), (link, reads, content, modes), order=1, modes=("rev",), eps=1e-4)


def test_allocation_runs_inside_a_jitted_scan():
    def body(usage, _):
        return usage * 0.9 + 0.1 * dnc.allocation_weights(usage), dnc.allocation_weights(usage)

    usage = jnp.asarray([[0.5, 0.1, 0.9], [0.0, 0.0, 0.0]])
    _, stacked = jax.jit(lambda u: jax.lax.scan(body, u, None, length=4))(usage)
    assert stacked.shape == (4, 2, 3)
    np.testing.assert_allclose(stacked[0], dnc.allocation_weights(usage), atol=1e-6)


# --- config -------------------------------------------------------------------------------------


def test_config_round_trips_and_rejects_unknown_fields():
    config = DNCConfig(9, 8, memory_slots=16, clip_value=None)
    assert DNCConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown DNCConfig fields: shift_range"):
        DNCConfig.from_dict({**config.to_dict(), "shift_range": 3})
    assert config.replace(read_heads=4).read_heads == 4


@pytest.mark.parametrize(
    "field, value",
    [
        ("input_size", 0),
        ("output_size", -1),
        ("memory_slots", 0),
        ("memory_width", 2.5),
        ("read_heads", 0),
        ("write_heads", 2),
        ("controller_units", True),
        ("controller_layers", 0),
        ("clip_value", 0.0),
        ("clip_value", float("inf")),
        ("clip_value", "20"),
    ],
)
def test_config_bad_values_raise_naming_the_field(field, value):
    values = {"input_size": 9, "output_size": 8, field: value}
    with pytest.raises(ValueError, match=field):
        DNCConfig(**values)


def test_interface_size_counts_every_interface_part():
    config = DNCConfig(3, 2, memory_width=5, read_heads=2)
    # read keys 2x5, read strengths 2, write key 5, write strength 1, erase 5, add 5, free gates 2,
    # allocation and write gates 2, read modes 2x3.
    assert config.interface_size == 10 + 2 + 5 + 1 + 5 + 5 + 2 + 2 + 6


def test_dnc_is_registered_and_exported():
    spec = models.get("dnc")
    assert spec.config_class is DNCConfig and spec.model_class is DNC
    assert models.build_config("dnc", {"input_size": 9, "output_size": 8}) == DNCConfig(9, 8)
    assert ntm.DNC is DNC and ntm.DNCCell is DNCCell and ntm.DNCConfig is DNCConfig and ntm.DNCState is DNCState


# --- the cell and the sequence layer -------------------------------------------------------------


@pytest.fixture(scope="module")
def small_model():
    return DNC(SMALL, rngs=nnx.Rngs(0))


def random_inputs(seed, batch, steps, width=BITS + 1):
    return jnp.asarray(np.random.default_rng(seed).integers(0, 2, (batch, steps, width)), jnp.float32)


def test_outputs_carry_and_trace_have_the_documented_shapes(small_model):
    x = random_inputs(0, 2, 5)
    logits = small_model(x)
    assert logits.shape == (2, 5, BITS)
    carry, logits_again, trace = small_model(x, return_carry=True, trace=True)
    np.testing.assert_allclose(logits_again, logits, atol=1e-6)
    assert isinstance(carry, DNCState) and isinstance(trace, DNCStepTrace)
    n, m, r = SMALL.memory_slots, SMALL.memory_width, SMALL.read_heads
    assert carry.memory.shape == (2, n, m) and carry.link.shape == (2, 1, n, n)
    expected = {
        "read_weights": (2, 5, r, n),
        "write_weights": (2, 5, 1, n),
        "reads": (2, 5, r, m),
        "erase": (2, 5, 1, m),
        "add": (2, 5, 1, m),
        "memory": (2, 5, n, m),
        "usage": (2, 5, n),
        "allocation": (2, 5, n),
        "read_modes": (2, 5, r, 3),
    }
    for name, shape in expected.items():
        assert getattr(trace, name).shape == shape, name
    # The NTM's trace names are a prefix of the DNC's, so the same plots draw both.
    assert DNCStepTrace._fields[: len(ntm.NTMStepTrace._fields)] == ntm.NTMStepTrace._fields
    np.testing.assert_allclose(trace.memory[:, -1], carry.memory, atol=1e-6)
    np.testing.assert_allclose(trace.read_modes.sum(-1), 1.0, atol=1e-5)
    assert float(trace.read_weights.sum(-1).max()) <= 1 + 1e-5
    assert float(trace.usage.min()) >= 0 and float(trace.usage.max()) <= 1
    link = np.asarray(trace.link)
    assert np.all(np.diagonal(link, axis1=-2, axis2=-1) == 0)


def test_bad_inputs_raise(small_model):
    with pytest.raises(ValueError, match="DNC inputs must have shape"):
        small_model(jnp.zeros((2, 5, BITS)))
    with pytest.raises(ValueError, match="DNC inputs must have shape"):
        small_model(jnp.zeros((5, BITS + 1)))
    with pytest.raises(ValueError, match="lengths or mask"):
        small_model(jnp.zeros((2, 5, BITS + 1)), lengths=jnp.array([5, 5]), mask=jnp.ones((2, 5)))
    with pytest.raises(ValueError, match="DNCConfig"):
        DNCCell(ntm.NTMConfig(9, 8), rngs=nnx.Rngs(0))


def test_padded_sequence_matches_the_sequence_alone(small_model):
    x = random_inputs(1, 2, 7)
    lengths = jnp.array([7, 4])
    carry, logits = small_model(x, lengths=lengths, return_carry=True)
    alone_carry, alone = small_model(x[1:, :4], return_carry=True)
    np.testing.assert_allclose(logits[1, :4], alone[0], atol=1e-5)
    np.testing.assert_allclose(logits[1, 4:], 0.0)
    for padded_leaf, alone_leaf in zip(jax.tree.leaves(carry), jax.tree.leaves(alone_carry)):
        np.testing.assert_allclose(padded_leaf[1], alone_leaf[0], atol=1e-5)
    # The full-length sequence is unaffected by its neighbour's padding; a mask does what lengths do.
    np.testing.assert_allclose(logits[0], small_model(x[:1])[0], atol=1e-5)
    mask = (jnp.arange(7)[None] < lengths[:, None]).astype(jnp.float32)
    np.testing.assert_allclose(small_model(x, mask=mask), logits, atol=1e-6)


def test_initial_carry_continues_a_sequence(small_model):
    x = random_inputs(2, 2, 6)
    whole = small_model(x)
    carry, first = small_model(x[:, :3], return_carry=True)
    second = small_model(x[:, 3:], initial_carry=carry)
    np.testing.assert_allclose(jnp.concatenate([first, second], axis=1), whole, atol=1e-5)


def test_cell_in_nnx_rnn_equals_the_dnc_layer(small_model):
    x = random_inputs(3, 3, 6)
    rnn = nnx.RNN(small_model.cell, return_carry=True)
    rnn_carry, rnn_logits = rnn(x)
    carry, logits = small_model(x, return_carry=True)
    np.testing.assert_allclose(rnn_logits, logits, atol=1e-5)
    for a, b in zip(jax.tree.leaves(rnn_carry), jax.tree.leaves(carry)):
        np.testing.assert_allclose(a, b, atol=1e-5)


@functools.partial(jax.jit, static_argnums=0)
def sequence_loss_gradients(graphdef, params, inputs, lengths):
    """Gradients of a copy-style loss over a whole padded sequence (one compile for every model of SMALL)."""

    def loss(params):
        logits = nnx.merge(graphdef, params)(inputs, lengths=lengths)
        return jnp.sum(optax.sigmoid_binary_cross_entropy(logits, inputs[..., :BITS]))

    return jax.grad(loss)(params)


def test_gradients_are_finite_through_a_whole_sequence():
    graphdef, params = nnx.split(DNC(SMALL, rngs=nnx.Rngs(1)))
    grads = sequence_loss_gradients(graphdef, params, random_inputs(4, 3, 11), jnp.array([11, 6, 1]))
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    # The gradient reaches the interface layer, so memory use is trained, not just the LSTM.
    assert float(jnp.abs(grads["cell"]["interface"]["kernel"][...]).sum()) > 0


def test_gradients_are_finite_for_extreme_interface_values():
    # A huge interface kernel drives every interface value to the clip: gates saturate and strengths
    # reach their maximum; nothing may become NaN.
    model = DNC(SMALL, rngs=nnx.Rngs(2))
    model.cell.interface.kernel[...] = model.cell.interface.kernel[...] * 1e3
    graphdef, params = nnx.split(model)
    grads = sequence_loss_gradients(graphdef, params, random_inputs(5, 3, 11), jnp.array([11, 11, 3]))
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


# --- learning: the DNC solves copy with lengths 1-5 on the CPU ------------------------------------

COPY_MAX_LENGTH = 5
COPY_STEPS = 2 * COPY_MAX_LENGTH + 1


def copy_batch(rng, batch):
    """Copy sequences of 1-5 random 8-bit vectors, padded to 11 steps.

    Inputs: the vectors, then the delimiter on its own channel, then zeros while the answer is due.
    Returns inputs [B,T,9], targets [B,T,8], mask [B,T] (real steps), answer [B,T] (scored steps).
    """
    lengths = rng.integers(1, COPY_MAX_LENGTH + 1, size=batch)
    inputs = np.zeros((batch, COPY_STEPS, BITS + 1), np.float32)
    targets = np.zeros((batch, COPY_STEPS, BITS), np.float32)
    mask = np.zeros((batch, COPY_STEPS), np.float32)
    answer = np.zeros((batch, COPY_STEPS), np.float32)
    for row, length in enumerate(lengths):
        sequence = rng.integers(0, 2, size=(length, BITS)).astype(np.float32)
        inputs[row, :length, :BITS] = sequence
        inputs[row, length, BITS] = 1.0
        targets[row, length + 1 : 2 * length + 1] = sequence
        mask[row, : 2 * length + 1] = 1.0
        answer[row, length + 1 : 2 * length + 1] = 1.0
    return inputs, targets, mask, answer


def test_copy_batch_layout():
    inputs, targets, mask, answer = copy_batch(np.random.default_rng(0), 64)
    lengths = (answer.sum(axis=1)).astype(int)
    assert lengths.min() >= 1 and lengths.max() <= COPY_MAX_LENGTH
    np.testing.assert_array_equal(mask.sum(axis=1), 2 * lengths + 1)
    np.testing.assert_array_equal(inputs[..., BITS].sum(axis=1), 1.0)
    for row, length in enumerate(lengths):
        np.testing.assert_array_equal(targets[row, length + 1 : 2 * length + 1], inputs[row, :length, :BITS])
        assert not inputs[row, length + 1 :].any()


@pytest.mark.slow
def test_dnc_learns_copy_with_lengths_one_to_five():
    config = DNCConfig(BITS + 1, BITS, memory_slots=16, memory_width=16, controller_units=64)
    graphdef, params = nnx.split(DNC(config, rngs=nnx.Rngs(0)))
    optimizer = optax.chain(optax.clip_by_global_norm(10.0), optax.adam(3e-3))
    opt_state = optimizer.init(params)

    def loss_and_logits(params, inputs, targets, mask, answer):
        logits = nnx.merge(graphdef, params)(inputs, mask=mask)
        bce = optax.sigmoid_binary_cross_entropy(logits, targets) * answer[..., None]
        return bce.sum() / (answer.sum() * BITS), logits

    @jax.jit
    def train_step(params, opt_state, *batch):
        (loss, _), grads = jax.value_and_grad(loss_and_logits, has_aux=True)(params, *batch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    @jax.jit
    def bit_errors(params, inputs, targets, mask, answer):
        _, logits = loss_and_logits(params, inputs, targets, mask, answer)
        return jnp.sum(((logits > 0) != (targets > 0.5)) * answer[..., None])

    train_rng = np.random.default_rng(0)
    held_out = copy_batch(np.random.default_rng(12345), 128)
    batch_size, check_every, step_cap = 32, 100, 3000
    start = time.perf_counter()
    errors = None
    for step in range(1, step_cap + 1):
        params, opt_state, loss = train_step(params, opt_state, *copy_batch(train_rng, batch_size))
        if step % check_every == 0:
            errors = int(bit_errors(params, *held_out))
            if errors == 0:
                break
    seconds = time.perf_counter() - start
    print(f"DNC solved copy 1-5 after {step} steps ({step * batch_size} sequences) in {seconds:.1f} s")
    assert errors == 0, f"{errors} bit errors on the held-out batch after {step} steps, loss {float(loss):.4f}"
