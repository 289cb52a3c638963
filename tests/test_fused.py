"""Tests of `ntm.turing.fused.memory_step`: values and gradients equal to the plain addressing/read/write path.

The reference is `addressing.address`, `memory.read` and `memory.write` of `ntm.turing` composed;
the fused step must give the same weightings, reads and new memory, and the same gradients of a
loss through all three for every input, in both memory layouts, for several read and write heads,
and at the extremes the plain functions are tested at (strengths up to 1e3, sharpening up to 100,
zero memory, zero keys, erase of exactly 1).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays
from jax.test_util import check_grads

from ntm.turing import addressing, fused

ARGS = ("memory", "previous", "keys", "strengths", "gates", "shift_weights", "gammas", "erase", "add", "addresses")


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def make_inputs(rng, batch=2, reads=1, writes=1, slots=12, width=5, shifts=3, dtype=np.float32, address_size=0):
    """The nine inputs of a memory step, and with `address_size` the slots' addresses [N,A] as a tenth."""
    heads = reads + writes
    values = (
        rng.normal(size=(batch, slots, width)),
        _softmax(2 * rng.normal(size=(batch, heads, slots))),
        rng.normal(size=(batch, heads, address_size + width)),
        rng.uniform(0, 5, (batch, heads)),
        rng.uniform(0, 1, (batch, heads)),
        _softmax(rng.normal(size=(batch, heads, shifts))),
        rng.uniform(1, 5, (batch, heads)),
        rng.uniform(0, 1, (batch, writes, width)),
        rng.uniform(-1, 1, (batch, writes, width)),
    ) + ((rng.normal(size=(slots, address_size)),) if address_size else ())
    return [jnp.asarray(v, dtype) for v in values]


def call(step, args, read_heads, slots_last):
    """`step` on the nine inputs, with addresses if `args` has a tenth."""
    return step(*args[:9], read_heads=read_heads, slots_last=slots_last, addresses=(args[9:] or [None])[0])


def to_layout(inputs, slots_last):
    if not slots_last:
        return inputs
    return [jnp.swapaxes(inputs[0], 1, 2)] + list(inputs[1:])


@functools.cache
def compiled(step, read_heads, slots_last):
    """Jitted outputs and gradients of a linear function of all three outputs (every output's path counts)."""

    def loss(args, weights):
        outputs = call(step, args, read_heads, slots_last)
        return sum(jnp.sum(o * w) for o, w in zip(outputs, weights)), outputs

    return jax.jit(jax.grad(loss, has_aux=True))


def output_weights(inputs, read_heads, slots_last):
    """Fixed random weights of the three outputs, for the linear loss of `compiled` (numpy, the outputs' dtypes)."""
    shapes = jax.eval_shape(lambda a: call(fused.reference_memory_step, a, read_heads, slots_last), inputs)
    rng = np.random.default_rng(1)
    return [rng.normal(size=o.shape).astype(o.dtype) for o in shapes]


def assert_same_values_and_gradients(inputs, read_heads, slots_last, rtol=2e-5, atol=2e-5):
    inputs = to_layout(inputs, slots_last)
    weights = [jnp.asarray(w) for w in output_weights(inputs, read_heads, slots_last)]
    got, got_outputs = compiled(fused.memory_step, read_heads, slots_last)(inputs, weights)
    want, want_outputs = compiled(fused.reference_memory_step, read_heads, slots_last)(inputs, weights)
    for name, g, w in zip(("weights", "reads", "memory"), got_outputs, want_outputs):
        assert g.shape == w.shape, name
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=name)
    for name, g, w in zip(ARGS, got, want):
        assert np.isfinite(np.asarray(g)).all(), name
        scale = max(1.0, float(jnp.max(jnp.abs(w))))
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol * scale, err_msg=f"gradient of {name}")


@pytest.mark.parametrize("slots_last", [False, True])
@pytest.mark.parametrize("reads,writes", [(1, 1), (1, 3), (3, 2)])
def test_values_and_gradients_equal_the_plain_path(reads, writes, slots_last):
    inputs = make_inputs(np.random.default_rng(reads * 10 + writes), reads=reads, writes=writes)
    assert_same_values_and_gradients(inputs, reads, slots_last)


@pytest.mark.parametrize("slots_last", [False, True])
@pytest.mark.parametrize("reads,writes", [(1, 1), (2, 3)])
def test_with_addresses_values_and_gradients_equal_the_plain_path(reads, writes, slots_last):
    inputs = make_inputs(np.random.default_rng(reads + 7 * writes), reads=reads, writes=writes, address_size=3)
    assert_same_values_and_gradients(inputs, reads, slots_last)


def test_with_addresses_the_lookup_matches_a_numpy_computation():
    """Gate 1, no shift, gamma 1: the weightings are the content weights, softmax(beta cos(k, [a_n ; M_n]))."""
    rng = np.random.default_rng(11)
    batch, heads, slots, width, address_size = 2, 3, 6, 4, 2
    memory = rng.normal(size=(batch, slots, width)).astype(np.float32)
    addresses = rng.normal(size=(slots, address_size)).astype(np.float32)
    keys = rng.normal(size=(batch, heads, address_size + width)).astype(np.float32)
    strengths = rng.uniform(0.5, 4, (batch, heads)).astype(np.float32)
    rows = np.concatenate([np.broadcast_to(addresses, (batch, slots, address_size)), memory], axis=-1)
    cosine = np.einsum("bhk,bnk->bhn", keys, rows) / (
        np.linalg.norm(keys, axis=-1)[:, :, None] * np.linalg.norm(rows, axis=-1)[:, None, :])
    want = _softmax(strengths[:, :, None] * cosine)
    no_shift = np.tile(np.float32([0, 1, 0]), (batch, heads, 1))
    ones, previous = np.ones((batch, heads), np.float32), np.full((batch, heads, slots), 1 / slots, np.float32)
    writes = np.zeros((batch, 1, width), np.float32)
    for step in (fused.memory_step, fused.reference_memory_step):
        weights, reads, new = step(memory, previous, keys, strengths, ones, no_shift, ones, writes, writes,
                                   read_heads=2, addresses=addresses)
        np.testing.assert_allclose(weights, want, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(reads, np.einsum("bhn,bnm->bhm", want[:, :2], memory), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(new, memory, atol=1e-6)  # zero erase and add: the content stays


def test_a_key_equal_to_a_slots_address_finds_that_slot_in_a_constant_memory():
    """What addresses are for: the content of every slot alike, the address part alone tells them apart."""
    slots, width = 8, 4
    addresses = jnp.asarray(np.random.default_rng(2).normal(size=(slots, 3)), jnp.float32)
    memory = jnp.full((1, slots, width), 1e-6)
    for target in (0, 5):
        keys = jnp.concatenate([addresses[target], jnp.zeros(width)])[None, None].repeat(2, axis=1)
        weights, _, _ = fused.memory_step(memory, jnp.full((1, 2, slots), 1 / slots), keys, jnp.full((1, 2), 100.0),
                                          jnp.ones((1, 2)), jnp.tile(jnp.asarray([0.0, 1.0, 0.0]), (1, 2, 1)),
                                          jnp.ones((1, 2)), jnp.zeros((1, 1, width)), jnp.zeros((1, 1, width)),
                                          read_heads=1, addresses=addresses)
        assert int(jnp.argmax(weights[0, 0])) == target and float(weights[0, 0, target]) > 0.99


def test_new_memory_is_erase_then_add_by_hand():
    # One slot row fully addressed by a sharp write head: erase half of it, then add.
    memory = jnp.array([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]])
    previous = jnp.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])  # read slot 0, write slot 1
    keys = jnp.zeros((1, 2, 2))
    strengths, gates, gammas = jnp.zeros((1, 2)), jnp.zeros((1, 2)), jnp.full((1, 2), 100.0)
    no_shift = jnp.array([[[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]]])
    erase, add = jnp.array([[[0.5, 1.0]]]), jnp.array([[[10.0, 20.0]]])
    for slots_last in (False, True):
        mem = jnp.swapaxes(memory, 1, 2) if slots_last else memory
        weights, reads, new = fused.memory_step(mem, previous, keys, strengths, gates, no_shift, gammas, erase, add,
                                                read_heads=1, slots_last=slots_last)
        new = jnp.swapaxes(new, 1, 2) if slots_last else new
        np.testing.assert_allclose(weights, previous, atol=1e-6)
        np.testing.assert_allclose(reads, [[[1.0, 2.0]]], atol=1e-5)
        np.testing.assert_allclose(new, [[[1.0, 2.0], [11.5, 20.0], [5.0, 6.0]]], atol=1e-4)


B, R, W, N, M, S = 2, 2, 2, 7, 4, 3
finite = st.floats(-10, 10, allow_nan=False, width=32)


@settings(max_examples=30, deadline=None)
@given(
    memory=arrays(np.float32, (B, N, M), elements=finite),
    keys=arrays(np.float32, (B, R + W, M), elements=finite),
    previous=arrays(np.float32, (B, R + W, N), elements=st.floats(0, 1, width=32)),
    shifts=arrays(np.float32, (B, R + W, S), elements=st.floats(0, 1, width=32)),
    erase=arrays(np.float32, (B, W, M), elements=st.floats(0, 1, width=32)),
    add=arrays(np.float32, (B, W, M), elements=st.floats(-1, 1, width=32)),
    strength=st.floats(0, 1e3, width=32),
    gate=st.floats(0, 1, width=32),
    gamma=st.floats(1, 100, width=32),
    zero_memory=st.booleans(),
    zero_keys=st.booleans(),
    slots_last=st.booleans(),
)
def test_equal_to_the_plain_path_at_extremes(memory, keys, previous, shifts, erase, add, strength, gate, gamma,
                                             zero_memory, zero_keys, slots_last):
    if zero_memory:
        memory = np.zeros_like(memory)
    if zero_keys:
        keys = np.zeros_like(keys)
    simplex = lambda raw: (np.abs(raw) + np.eye(raw.shape[-1], dtype=raw.dtype)[0] * 1e-3) / (
        np.abs(raw) + np.eye(raw.shape[-1], dtype=raw.dtype)[0] * 1e-3).sum(-1, keepdims=True)
    inputs = [jnp.asarray(a) for a in (memory, simplex(previous), keys, np.full((B, R + W), strength, np.float32),
                                       np.full((B, R + W), gate, np.float32), simplex(shifts),
                                       np.full((B, R + W), gamma, np.float32), erase, add)]
    # Sharpening with gamma up to 100 and strengths up to 1e3 amplify float32 rounding: gradients of order 1
    # come out of cancelling terms of order 1e4, so the two float32 paths can differ by several per cent.
    # The fair test is against the float64 truth: the fused path must be as accurate as the plain one.
    assert_as_accurate_as_the_plain_path(inputs, R, slots_last, cancelling=float(strength))


def assert_as_accurate_as_the_plain_path(inputs, read_heads, slots_last, cancelling: float = 1.0):
    """Fused within twice the plain path's float32 error of the float64 truth, plus a floor: float32
    rounding of terms of order `cancelling` (the key strength) that cancel to a gradient near 0."""
    inputs = to_layout(inputs, slots_last)
    weights = output_weights(inputs, read_heads, slots_last)
    results = {}
    for name, step in (("fused", fused.memory_step), ("plain", fused.reference_memory_step)):
        grads, outputs = compiled(step, read_heads, slots_last)(inputs, [jnp.asarray(w) for w in weights])
        results[name] = [np.asarray(x, np.float64) for x in (*outputs, *grads)]
    with jax.enable_x64(True):
        wide = [jnp.asarray(np.asarray(x), jnp.float64) for x in inputs]
        grads, outputs = compiled(fused.reference_memory_step, read_heads, slots_last)(
            wide, [jnp.asarray(w, jnp.float64) for w in weights])
        truth = [np.asarray(x) for x in (*outputs, *grads)]
    # The key gradient's terms are d similarity x (row / |row| - s key / |key|) / |key|: of order
    # |memory| / |key| larger than the similarity's, and |key| is sqrt(NORM_EPSILON) = 1e-6 for a zero
    # key. Where the rows are all equal these terms cancel to a true gradient of ~0, and both float32
    # paths keep the same rounding (measured: fused/plain error ratio median 0.95 over 100 such draws).
    memory, keys = (np.asarray(inputs[i], np.float64) for i in (0, 2))
    key_norms = np.sqrt(np.sum(keys * keys, axis=-1) + addressing.NORM_EPSILON)
    key_conditioning = max(1.0, np.abs(memory).max() / key_norms.min())
    for name, got, plain, want in zip(("weights", "reads", "memory", *(f"gradient of {a}" for a in ARGS)),
                                      results["fused"], results["plain"], truth):
        assert np.isfinite(got).all(), name
        error, plain_error = np.linalg.norm(got - want), np.linalg.norm(plain - want)
        amplified = cancelling * (key_conditioning if name == "gradient of keys" else 1.0)
        floor = 1e-5 * max(1.0, np.linalg.norm(want), amplified / 100)
        assert error <= 2 * plain_error + floor, (name, error, plain_error)


@pytest.mark.parametrize("address_size", [0, 2])
def test_check_grads_in_float64(address_size):
    with jax.enable_x64(True):
        inputs = make_inputs(np.random.default_rng(3), reads=2, writes=2, slots=6, width=3, dtype=np.float64,
                             address_size=address_size)
        for slots_last in (False, True):
            args = to_layout(inputs, slots_last)
            check_grads(jax.jit(lambda *a: call(fused.memory_step, a, 2, slots_last)), args, order=1,
                        modes=("rev",), eps=1e-6, atol=1e-5, rtol=1e-5)


def test_inside_a_jitted_scan_the_gradients_equal_the_plain_path():
    """Many steps, as the cell runs them: memory and weightings carried, gradients through time."""
    rng = np.random.default_rng(5)
    steps, batch, slots, width = 6, 3, 10, 4
    first = make_inputs(rng, batch=batch, slots=slots, width=width)
    per_step = [jnp.asarray(rng.normal(size=(steps,) + a.shape), jnp.float32) for a in first[2:]]

    def run(step, memory, previous, slots_last, *raw):
        def body(carry, xs):
            mem, prev = carry
            k, s, g, sh, gm, e, a = xs
            weights, reads, new = step(mem, prev, k, jax.nn.softplus(s), jax.nn.sigmoid(g), jax.nn.softmax(sh),
                                       1 + jax.nn.softplus(gm), jax.nn.sigmoid(e), jnp.tanh(a), read_heads=1,
                                       slots_last=slots_last)
            return (new, weights), jnp.sum(reads ** 2) + jnp.sum(new[:, 0] ** 2)

        if slots_last:
            memory = jnp.swapaxes(memory, 1, 2)
        _, out = jax.lax.scan(body, (memory, previous), raw)
        return jnp.sum(out)

    for slots_last in (False, True):
        grad = lambda step: jax.jit(jax.grad(lambda *a: run(step, *a[:2], slots_last, *a[2:]),
                                             argnums=tuple(range(2 + len(per_step)))))
        got = grad(fused.memory_step)(first[0], first[1], *per_step)
        want = grad(fused.reference_memory_step)(first[0], first[1], *per_step)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5 * max(1.0, float(jnp.max(jnp.abs(w)))))


def test_bad_shapes_and_head_counts_are_refused():
    inputs = make_inputs(np.random.default_rng(0))
    with pytest.raises(ValueError, match="read_heads"):
        fused.memory_step(*inputs, read_heads=2)
    with pytest.raises(ValueError, match="read_heads"):
        fused.memory_step(*inputs, read_heads=0)
    with pytest.raises(ValueError, match="does not match"):
        fused.memory_step(*inputs, read_heads=1, slots_last=True)
    with pytest.raises(ValueError, match="erase/add"):
        fused.memory_step(*inputs[:7], inputs[7][:, :, :3], inputs[8], read_heads=1)
    with pytest.raises(ValueError, match="does not match"):  # keys without room for the addresses
        fused.memory_step(*inputs, read_heads=1, addresses=jnp.ones((12, 2)))
    with pytest.raises(ValueError, match=r"addresses must have shape \[N=12, A>=1\]"):
        fused.memory_step(*inputs, read_heads=1, addresses=jnp.ones((11, 2)))


def _twin_models(**options):
    """The same NTM (same parameters) with the fused and the plain memory step."""
    from flax import nnx

    from ntm import NTM, NTMConfig

    made = {}
    for step in ("fused", "plain"):
        config = NTMConfig(input_size=5, output_size=4, memory_slots=12, memory_width=6, controller_units=16,
                           memory_step=step, **options)
        made[step] = NTM(config, rngs=nnx.Rngs(7))
    return made["fused"], made["plain"]


@pytest.mark.parametrize("options", [{}, {"read_heads": 2, "write_heads": 2, "learn_initial_reads": True,
                                          "memory_init": "learned", "learn_initial_weights": True},
                                     {"address_size": 3, "read_heads": 2, "write_heads": 3}])
def test_the_ntm_trains_the_same_with_either_memory_step(options):
    """The loss and every parameter's gradient, the carry, logits and trace, and a call continued from that
    carry agree. Each model's whole check is one jitted program (one compile, not one per eager call)."""
    from flax import nnx

    from ntm import metrics

    fused_model, plain_model = _twin_models(**options)
    rng = np.random.default_rng(0)
    inputs = jnp.asarray(rng.normal(size=(3, 9, 5)), jnp.float32)
    targets = jnp.asarray(rng.integers(0, 2, (3, 9, 4)), jnp.float32)
    lengths = jnp.array([9, 4, 7])
    mask = jnp.arange(9)[None, :] < lengths[:, None]

    def run(model):
        graphdef, params = nnx.split(model, nnx.Param)

        def loss(params):
            model = nnx.merge(graphdef, params)
            traced = model(inputs, lengths=lengths, return_carry=True, trace=True)  # (carry, logits, trace)
            continued = model(inputs, initial_carry=traced[0])
            return metrics.loss(traced[1], targets, mask), (traced, continued)

        return jax.jit(jax.value_and_grad(loss, has_aux=True))(params)

    (fused_loss, (fused_traced, fused_continued)), fused_grads = run(fused_model)
    (plain_loss, (plain_traced, plain_continued)), plain_grads = run(plain_model)
    np.testing.assert_allclose(fused_loss, plain_loss, rtol=1e-5)
    for g, w in zip(jax.tree.leaves(fused_grads), jax.tree.leaves(plain_grads)):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5 * max(1.0, float(jnp.max(jnp.abs(w)))))
    # The carry given and returned is [B,N,M] with either step, and so is the trace's memory.
    assert fused_traced[0].memory.shape == (3, 12, 6) and fused_traced[2].memory.shape == (3, 9, 12, 6)
    for g, w in zip(jax.tree.leaves(fused_traced), jax.tree.leaves(plain_traced)):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fused_continued, plain_continued, rtol=1e-5, atol=1e-5)


def test_the_cell_alone_takes_the_fused_step_on_a_slots_first_carry():
    from flax import nnx

    fused_model, plain_model = _twin_models()
    rnn_fused, rnn_plain = nnx.RNN(fused_model.cell), nnx.RNN(plain_model.cell)
    inputs = jnp.asarray(np.random.default_rng(1).normal(size=(2, 5, 5)), jnp.float32)
    np.testing.assert_allclose(rnn_fused(inputs), rnn_plain(inputs), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rnn_fused(inputs), fused_model(inputs), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="slots-last"):
        carry = plain_model.initial_state(2)
        plain_model.cell.step_in_layout(carry, inputs[:, 0], slots_last=True)


def test_fused_step_bounds_the_gradient_into_the_previous_weighting_like_the_plain_path():
    """A head lingering near uniform (gamma 3, gate 0.1) for 100 steps: finite gradients on both paths."""
    import ntm.turing.fused as fused_module

    n, width = 16, 4
    memory = jnp.full((1, n, width), 1e-6)
    keys, strengths = jnp.ones((1, 2, width)), jnp.zeros((1, 2))
    gates, gammas = jnp.full((1, 2), 0.1), jnp.full((1, 2), 3.0)
    shifts = jnp.tile(jnp.asarray([0.0, 1.0, 0.0]), (1, 2, 1))
    erase, add = jnp.zeros((1, 1, width)), jnp.zeros((1, 1, width))
    probe = jnp.linspace(-1.0, 1.0, n)[None, None, :]

    def final(start, step):
        def body(carry, _):
            mem, weights = carry
            weights, _, mem = step(mem, weights, keys, strengths, gates, shifts, gammas, erase, add, read_heads=1)
            return (mem, weights), None

        (_, weights), _ = jax.lax.scan(body, (memory, start), length=100)  # 100 steps, compiled once
        return jnp.sum(weights * probe)

    start = jnp.full((1, 2, n), 1.0 / n)
    fused = jax.jit(jax.grad(final), static_argnums=1)(start, fused_module.memory_step)
    plain = jax.jit(jax.grad(final), static_argnums=1)(start, fused_module.reference_memory_step)
    assert np.isfinite(fused).all() and np.isfinite(plain).all()
    np.testing.assert_allclose(fused, plain, rtol=1e-4, atol=1e-5)
