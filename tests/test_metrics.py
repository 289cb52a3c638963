"""Tests of ntm.metrics: hand-computed costs and bit errors, masking, stability, gradients and jit."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import ntm.tasks as tasks
from ntm import metrics

TARGETS = np.array(
    [
        [[1, 0], [1, 1], [0, 0]],
        [[0, 1], [1, 1], [1, 1]],
    ],
    np.float32,
)
MASK = np.array([[1, 1, 0], [1, 0, 0]], np.float32)


def test_zero_logits_cost_one_bit_per_scored_bit_and_predict_zero():
    logits = np.zeros_like(TARGETS)
    np.testing.assert_allclose(metrics.bit_cross_entropy(logits, TARGETS, MASK), [4.0, 2.0], rtol=1e-6)
    # sigmoid(0) = 0.5 is not above the threshold, so every scored 1 is an error.
    np.testing.assert_array_equal(metrics.bit_errors(logits, TARGETS, MASK), [3.0, 1.0])
    assert float(metrics.cost_per_sequence(logits, TARGETS, MASK)) == pytest.approx(3.0)
    assert float(metrics.bit_errors_per_sequence(logits, TARGETS, MASK)) == pytest.approx(2.0)


def test_cost_of_a_three_to_one_prediction():
    # logit ln 3 is P(1) = 3/4: a 1 costs log2(4/3) bits, a 0 costs 2 bits.
    logits = np.full((1, 1, 2), math.log(3.0), np.float32)
    targets = np.array([[[1, 0]]], np.float32)
    cost = metrics.bit_cross_entropy(logits, targets, np.ones((1, 1), np.float32))
    assert float(cost[0]) == pytest.approx(math.log2(4 / 3) + 2.0, rel=1e-6)
    assert float(metrics.bit_errors(logits, targets, np.ones((1, 1)))[0]) == 1.0


def test_masked_steps_count_for_nothing():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=TARGETS.shape).astype(np.float32) * 3
    changed_logits, changed_targets = logits.copy(), TARGETS.copy()
    changed_logits[MASK == 0] = -logits[MASK == 0] + 7
    changed_targets[MASK == 0] = 1 - TARGETS[MASK == 0]
    for metric in (metrics.bit_cross_entropy, metrics.bit_errors):
        np.testing.assert_array_equal(
            metric(logits, TARGETS, MASK), metric(changed_logits, changed_targets, MASK)
        )
    assert float(metrics.bit_cross_entropy(logits, TARGETS, np.zeros_like(MASK)).sum()) == 0.0


def test_a_per_bit_mask_scores_single_channels():
    logits = np.zeros_like(TARGETS)
    per_bit = np.zeros_like(TARGETS)
    per_bit[0, 1, 1] = 1  # one bit of one step of the first sequence
    np.testing.assert_allclose(metrics.bit_cross_entropy(logits, TARGETS, per_bit), [1.0, 0.0], rtol=1e-6)
    np.testing.assert_array_equal(metrics.bit_errors(logits, TARGETS, per_bit), [1.0, 0.0])


def test_extreme_logits_stay_finite():
    logits = np.array([[[1000.0, -1000.0]]], np.float32)
    ones = np.ones((1, 1))
    wrong = metrics.bit_cross_entropy(logits, np.array([[[0.0, 1.0]]], np.float32), ones)
    right = metrics.bit_cross_entropy(logits, np.array([[[1.0, 0.0]]], np.float32), ones)
    assert float(wrong[0]) == pytest.approx(2000.0 / math.log(2.0), rel=1e-6)
    assert float(right[0]) == pytest.approx(0.0, abs=1e-6)
    gradient = jax.grad(metrics.loss)(jnp.asarray(logits), jnp.array([[[0.0, 1.0]]]), jnp.asarray(ones))
    assert bool(jnp.isfinite(gradient).all())


def test_loss_is_the_cost_in_bits_and_its_gradient_is_the_scored_residual():
    rng = np.random.default_rng(1)
    logits = jnp.asarray(rng.normal(size=TARGETS.shape), jnp.float32)
    assert float(metrics.loss(logits, TARGETS, MASK)) == pytest.approx(
        float(metrics.cost_per_sequence(logits, TARGETS, MASK))
    )
    gradient = jax.grad(metrics.loss)(logits, TARGETS, MASK)
    expected = (jax.nn.sigmoid(logits) - TARGETS) * MASK[..., None] / (math.log(2.0) * len(TARGETS))
    np.testing.assert_allclose(gradient, expected, rtol=1e-5, atol=1e-7)


def test_summarize_under_jit_matches_the_eager_metrics():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=TARGETS.shape).astype(np.float32)
    summary = jax.jit(metrics.summarize)(logits, TARGETS, MASK)
    assert set(summary) == {"cost", "bit_errors"}
    assert summary["cost"].shape == summary["bit_errors"].shape == ()
    assert float(summary["cost"]) == pytest.approx(float(metrics.cost_per_sequence(logits, TARGETS, MASK)), rel=1e-6)
    assert float(summary["bit_errors"]) == float(metrics.bit_errors_per_sequence(logits, TARGETS, MASK))


def reference_cost_and_errors(logits, targets, mask):
    """Float64 NumPy: -log2 of the probability given to each scored target bit, and wrong bits.

    With signed = logit for a target 1 and -logit for a 0, that probability is 1 / (1 + e^-signed).
    """
    signed = np.where(targets > 0.5, 1.0, -1.0) * logits.astype(np.float64)
    scored = np.broadcast_to(mask[..., None], logits.shape)
    cost = (np.logaddexp(0.0, -signed) / np.log(2.0) * scored).sum(axis=(1, 2))
    wrong = np.where(targets > 0.5, logits <= 0, logits > 0)  # sigmoid(logit) = 0.5 counts as a 0
    errors = (wrong * scored).sum(axis=(1, 2))
    return cost, errors


@jax.jit
def all_metrics(logits, targets, mask):
    return (
        metrics.bit_cross_entropy(logits, targets, mask),
        metrics.bit_errors(logits, targets, mask),
        metrics.summarize(logits, targets, mask),
    )


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10**6), st.floats(0.1, 30.0))
def test_metrics_agree_with_a_numpy_reference(seed, scale):
    # One shape, so the jitted metrics compile once; random values, masks and scales vary.
    rng = np.random.default_rng(seed)
    logits = (rng.normal(size=(3, 5, 4)) * scale).astype(np.float32)
    targets = rng.integers(0, 2, size=(3, 5, 4)).astype(np.float32)
    mask = rng.integers(0, 2, size=(3, 5)).astype(np.float32)
    cost, errors = reference_cost_and_errors(logits, targets, mask)
    got_cost, got_errors, summary = all_metrics(logits, targets, mask)
    np.testing.assert_allclose(got_cost, cost, rtol=1e-4, atol=1e-3)
    np.testing.assert_array_equal(got_errors, errors)
    assert float(summary["cost"]) == pytest.approx(cost.mean(), rel=1e-4, abs=1e-3)
    assert float(summary["bit_errors"]) == pytest.approx(errors.mean())


def test_on_a_copy_batch_only_the_answer_phase_is_scored():
    batch = tasks.get("copy").sample(np.random.default_rng(3), 4)
    perfect = 20.0 * (2 * batch.targets - 1)  # confident and right wherever a target is given
    assert float(metrics.bit_errors_per_sequence(perfect, batch.targets, batch.mask)) == 0.0
    assert float(metrics.cost_per_sequence(perfect, batch.targets, batch.mask)) < 1e-5
    flipped = perfect.copy()
    first_answer = int(np.flatnonzero(batch.mask[0])[0])
    flipped[0, first_answer, 0] *= -1
    flipped[0, 0, :] = 20.0  # an input step: any output there is free
    np.testing.assert_array_equal(metrics.bit_errors(flipped, batch.targets, batch.mask), [1, 0, 0, 0])
    cost = metrics.bit_cross_entropy(flipped, batch.targets, batch.mask)
    assert float(cost[0]) == pytest.approx(20.0 / math.log(2.0), rel=1e-4)
