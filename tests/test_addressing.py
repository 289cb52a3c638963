"""Tests of the NTM addressing functions: hand-computed cases, invariants under hypothesis, gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays
from jax.test_util import check_grads

from ntm import addressing



def test_content_weights_key_equal_to_row_with_large_strength_points_there():
    memory = jnp.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]]])
    keys = jnp.array([[[0.0, 1.0, 0.0]]])
    w = addressing.content_weights(memory, keys, jnp.array([[100.0]]))
    assert w.shape == (1, 1, 4)
    assert float(w[0, 0, 1]) > 0.999


def test_content_weights_matches_hand_computed_softmax():
    memory = jnp.array([[[1.0, 0.0], [0.0, 2.0]]])
    keys = jnp.array([[[1.0, 1.0]]])
    beta = 2.0
    cos = np.array([1 / np.sqrt(2), 1 / np.sqrt(2)])
    expected = np.exp(beta * cos) / np.exp(beta * cos).sum()
    w = addressing.content_weights(memory, keys, jnp.array([[beta]]))
    np.testing.assert_allclose(w[0, 0], expected, atol=1e-6)
    memory = jnp.array([[[1.0, 0.0], [-1.0, 0.0]]])
    keys = jnp.array([[[3.0, 0.0]]])
    expected = np.exp([1.0, -1.0]) / np.exp([1.0, -1.0]).sum()
    np.testing.assert_allclose(addressing.content_weights(memory, keys, jnp.array([[1.0]]))[0, 0], expected, atol=1e-6)


def test_interpolate_gate_zero_returns_previous_and_one_returns_content():
    content = jnp.array([[[0.1, 0.7, 0.2]]])
    previous = jnp.array([[[0.5, 0.25, 0.25]]])
    np.testing.assert_allclose(addressing.interpolate(content, previous, jnp.array([[0.0]])), previous)
    np.testing.assert_allclose(addressing.interpolate(content, previous, jnp.array([[1.0]])), content)
    np.testing.assert_allclose(
        addressing.interpolate(content, previous, jnp.array([[0.25]])),
        0.25 * content + 0.75 * previous,
        atol=1e-7,
    )


def test_shift_plus_one_moves_every_weight_one_slot():
    w = jnp.array([[[0.1, 0.2, 0.3, 0.4, 0.0]]])
    plus_one = jnp.array([[[0.0, 0.0, 1.0]]])
    np.testing.assert_allclose(addressing.shift(w, plus_one), [[[0.0, 0.1, 0.2, 0.3, 0.4]]], atol=1e-7)
    minus_one = jnp.array([[[1.0, 0.0, 0.0]]])
    np.testing.assert_allclose(addressing.shift(w, minus_one), [[[0.2, 0.3, 0.4, 0.0, 0.1]]], atol=1e-7)
    identity = jnp.array([[[0.0, 1.0, 0.0]]])
    np.testing.assert_allclose(addressing.shift(w, identity), w)


def test_shift_spreads_weight_as_circular_convolution():
    w = jnp.array([[[1.0, 0.0, 0.0, 0.0]]])
    kernel = jnp.array([[[0.2, 0.5, 0.3]]])
    # slot 0's weight goes to slot -1 (=3) with 0.2, stays with 0.5, moves to slot 1 with 0.3
    np.testing.assert_allclose(addressing.shift(w, kernel), [[[0.5, 0.3, 0.0, 0.2]]], atol=1e-7)
    wide = jnp.array([[[0.0, 0.0, 0.0, 0.0, 1.0]]])  # S=5: +2
    np.testing.assert_allclose(addressing.shift(w, wide), [[[0.0, 0.0, 1.0, 0.0]]], atol=1e-7)


def test_shift_rejects_even_kernel():
    with pytest.raises(ValueError, match="odd"):
        addressing.shift(jnp.ones((1, 1, 4)) / 4, jnp.ones((1, 1, 2)) / 2)


def test_sharpen_gamma_one_is_identity_and_larger_gamma_sharpens():
    w = jnp.array([[[0.1, 0.2, 0.3, 0.4]]])
    np.testing.assert_allclose(addressing.sharpen(w, jnp.array([[1.0]])), w, atol=1e-6)
    sharp = addressing.sharpen(w, jnp.array([[2.0]]))
    expected = np.array([0.01, 0.04, 0.09, 0.16]) / 0.30
    np.testing.assert_allclose(sharp[0, 0], expected, atol=1e-6)


def test_sharpen_with_exact_zeros_and_huge_gamma_stays_finite():
    w = jnp.array([[[0.0, 0.0, 0.3, 0.7]]])
    out = addressing.sharpen(w, jnp.array([[100.0]]))
    assert np.isfinite(np.asarray(out)).all()
    np.testing.assert_allclose(out[0, 0], [0.0, 0.0, 0.0, 1.0], atol=1e-6)
    tiny = jnp.array([[[1e-30, 2e-30, 0.0]]])
    assert np.isfinite(np.asarray(addressing.sharpen(tiny, jnp.array([[100.0]])))).all()


def test_address_with_gate_zero_and_identity_shift_keeps_previous():
    memory = jnp.ones((1, 4, 3))
    previous = jnp.array([[[0.0, 1.0, 0.0, 0.0]]])
    out = addressing.address(
        memory, previous, jnp.ones((1, 1, 3)), jnp.array([[5.0]]), jnp.array([[0.0]]),
        jnp.array([[[0.0, 1.0, 0.0]]]), jnp.array([[1.0]]),
    )
    np.testing.assert_allclose(out, previous, atol=1e-6)


B, H, N, M, S = 2, 3, 6, 4, 3
finite = st.floats(-10, 10, allow_nan=False, width=32)


def _simplex(raw):
    raw = np.abs(raw)
    raw[..., 0] += 1e-3
    return raw / raw.sum(-1, keepdims=True)


@settings(max_examples=40, deadline=None)
@given(
    memory=arrays(np.float32, (B, N, M), elements=finite),
    keys=arrays(np.float32, (B, H, M), elements=finite),
    previous=arrays(np.float32, (B, H, N), elements=st.floats(0, 1, width=32)),
    shifts=arrays(np.float32, (B, H, S), elements=st.floats(0, 1, width=32)),
    strength=st.floats(0, 1e3, width=32),
    gate=st.floats(0, 1, width=32),
    gamma=st.floats(1, 100, width=32),
    zero_memory=st.booleans(),
    zero_keys=st.booleans(),
)
def test_address_invariants_and_finite_gradients(memory, keys, previous, shifts, strength, gate, gamma, zero_memory, zero_keys):
    if zero_memory:
        memory = np.zeros_like(memory)
    if zero_keys:
        keys = np.zeros_like(keys)
    previous, shifts = _simplex(previous), _simplex(shifts)
    strengths = jnp.full((B, H), strength)
    gates = jnp.full((B, H), gate)
    gammas = jnp.full((B, H), gamma)
    w = addressing.address(memory, previous, keys, strengths, gates, shifts, gammas)
    w = np.asarray(w)
    assert np.isfinite(w).all()
    assert (w >= 0).all()
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-5)

    def loss(memory, keys, strengths, gates, gammas):
        out = addressing.address(memory, previous, keys, strengths, gates, shifts, gammas)
        return jnp.sum(out * jnp.arange(N))

    grads = jax.grad(loss, argnums=(0, 1, 2, 3, 4))(jnp.asarray(memory), jnp.asarray(keys), strengths, gates, gammas)
    for g in grads:
        assert np.isfinite(np.asarray(g)).all()


def test_check_grads_on_addressing_functions():
    rng = np.random.default_rng(0)
    memory = jnp.asarray(rng.normal(size=(B, N, M)))
    keys = jnp.asarray(rng.normal(size=(B, H, M)))
    strengths = jnp.asarray(rng.uniform(0.5, 3, size=(B, H)))
    previous = jnp.asarray(_simplex(rng.uniform(size=(B, H, N))))
    shifts = jnp.asarray(_simplex(rng.uniform(size=(B, H, S))))
    gates = jnp.asarray(rng.uniform(size=(B, H)))
    gammas = jnp.asarray(rng.uniform(1, 3, size=(B, H)))
    kw = dict(order=1, modes=["rev"], atol=2e-2, rtol=2e-2)
    check_grads(addressing.content_weights, (memory, keys, strengths), **kw)
    check_grads(addressing.interpolate, (previous, previous[::-1], gates), **kw)
    check_grads(addressing.shift, (previous, shifts), **kw)
    check_grads(addressing.sharpen, (previous, gammas), **kw)
    check_grads(lambda *a: addressing.address(*a), (memory, previous, keys, strengths, gates, shifts, gammas), **kw)


def lingering_head_gradient(steps: int, bound: float | None) -> np.ndarray:
    """Gradient of a weighting after `steps` steps with respect to the first one, for a head that sits
    near uniform with gamma 3 and gate 0.1 (the N-gram write head that overflowed float32)."""
    n = 16
    memory = jnp.full((1, n, 4), 1e-6)
    keys, strengths = jnp.ones((1, 1, 4)), jnp.zeros((1, 1))
    gates, gammas = jnp.full((1, 1), 0.1), jnp.full((1, 1), 3.0)
    shifts = jnp.asarray([[[0.0, 1.0, 0.0]]])
    start = jnp.full((1, 1, n), 1.0 / n)
    probe = jnp.linspace(-1.0, 1.0, n)[None, None, :]

    def final(weights):
        for _ in range(steps):
            weights = addressing.address(memory, weights, keys, strengths, gates, shifts, gammas)
        return jnp.sum(weights * probe)

    saved = addressing.PREVIOUS_WEIGHT_GRADIENT_CLIP
    addressing.PREVIOUS_WEIGHT_GRADIENT_CLIP = float("inf") if bound is None else bound
    try:
        return np.asarray(jax.grad(final)(start))
    finally:
        addressing.PREVIOUS_WEIGHT_GRADIENT_CLIP = saved


def test_gradient_through_a_head_lingering_near_uniform_stays_finite():
    # Each step multiplies a change of the uniform weighting by gamma * (1 - g) = 2.7, so over 100
    # steps the exact gradient (2.7^100 ~ 1e43) is beyond float32: unclipped it is not finite.
    assert not np.isfinite(lingering_head_gradient(100, None)).all()
    clipped = lingering_head_gradient(100, addressing.PREVIOUS_WEIGHT_GRADIENT_CLIP)
    assert np.isfinite(clipped).all()
    assert np.abs(clipped).max() <= 2.7 * addressing.PREVIOUS_WEIGHT_GRADIENT_CLIP


def test_gradient_clip_leaves_small_gradients_exact():
    # Over 3 steps the gradient is ~2.7^3 ~ 20, under the bound: clipping must not change it.
    np.testing.assert_allclose(lingering_head_gradient(3, addressing.PREVIOUS_WEIGHT_GRADIENT_CLIP),
                               lingering_head_gradient(3, None), rtol=1e-6)
    grown = np.abs(lingering_head_gradient(3, None)).max()
    assert 5 < grown < addressing.PREVIOUS_WEIGHT_GRADIENT_CLIP


def test_clip_gradient_is_the_identity_forward_and_clips_backward():
    x = jnp.asarray([1.0, -2.0, 3.0])
    np.testing.assert_array_equal(addressing.clip_gradient(x, 1.5), x)
    grad = jax.grad(lambda v: jnp.sum(addressing.clip_gradient(v, 1.5) * jnp.asarray([1.0, -4.0, 0.5])))(x)
    np.testing.assert_array_equal(grad, [1.0, -1.5, 0.5])
