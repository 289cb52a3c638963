"""Tests of NTM memory reads and erase-then-add writes."""

import itertools

import jax.numpy as jnp
import numpy as np
from jax.test_util import check_grads

from ntm.turing import memory


def test_read_is_weighted_sum_of_rows():
    mem = jnp.array([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]])
    w = jnp.array([[[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]])
    np.testing.assert_allclose(memory.read(mem, w), [[[2.0, 3.0], [5.0, 6.0]]])


def test_single_head_write_erases_then_adds():
    mem = jnp.array([[[1.0, 1.0], [2.0, 2.0]]])
    w = jnp.array([[[1.0, 0.5]]])
    erase = jnp.array([[[1.0, 0.0]]])
    add = jnp.array([[[0.5, -1.0]]])
    # slot 0: [1*(1-1), 1*(1-0)] + [0.5, -1] = [0.5, 0]; slot 1: [2*(1-0.5), 2] + 0.5*[0.5, -1] = [1.25, 1.5]
    np.testing.assert_allclose(memory.write(mem, w, erase, add), [[[0.5, 0.0], [1.25, 1.5]]])


def _reference_write(mem, w, e, a):
    mem = np.asarray(mem, np.float64).copy()
    keep = np.ones_like(mem)
    for h in range(w.shape[1]):
        keep *= 1.0 - np.einsum("bn,bm->bnm", w[:, h], e[:, h])
    added = sum(np.einsum("bn,bm->bnm", w[:, h], a[:, h]) for h in range(w.shape[1]))
    return mem * keep + added


def test_two_head_write_equals_formula_and_ignores_head_order():
    rng = np.random.default_rng(1)
    mem = rng.normal(size=(2, 5, 3)).astype(np.float32)
    w = rng.dirichlet(np.ones(5), size=(2, 3)).astype(np.float32)
    e = rng.uniform(size=(2, 3, 3)).astype(np.float32)
    a = rng.normal(size=(2, 3, 3)).astype(np.float32)
    expected = _reference_write(mem, w, e, a)
    for order in itertools.permutations(range(3)):
        order = list(order)
        got = memory.write(mem, w[:, order], e[:, order], a[:, order])
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_one_hot_weights():
    w = memory.one_hot_weights(2, 3, 4)
    assert w.shape == (2, 3, 4)
    np.testing.assert_array_equal(w[..., 0], 1.0)
    np.testing.assert_array_equal(w[..., 1:], 0.0)


def test_check_grads_on_read_and_write():
    rng = np.random.default_rng(2)
    mem = jnp.asarray(rng.normal(size=(2, 4, 3)))
    w = jnp.asarray(rng.dirichlet(np.ones(4), size=(2, 2)))
    e = jnp.asarray(rng.uniform(size=(2, 2, 3)))
    a = jnp.asarray(rng.normal(size=(2, 2, 3)))
    kw = dict(order=1, modes=["rev"], atol=2e-2, rtol=2e-2)
    check_grads(memory.read, (mem, w), **kw)
    check_grads(memory.write, (mem, w, e, a), **kw)
    check_grads(memory.write, (mem, w[:, :1], e[:, :1], a[:, :1]), **kw)
