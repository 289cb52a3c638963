"""DNC addressing as pure functions: usage, allocation, write weighting, temporal links, read modes.

The equations of Graves et al. 2016 (Nature, Methods "Dynamic memory allocation" and "Temporal
memory linkage") on batched arrays, in the style of DeepMind's `dnc` code. Content lookup is
`ntm.turing.addressing.content_weights`, the same maths as the NTM's. Shapes use B batch, R read heads,
W write heads, N memory slots. Every function is jit- and scan-safe: the sort in the allocation
is `jnp.argsort` on values, so it runs inside a compiled `lax.scan`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# Usage is mapped into [eps, 1] before sorting, as in DeepMind's `dnc`: an exactly-zero usage
# would make every later slot's product of usages (and so its allocation) exactly zero.
USAGE_EPSILON = 1e-6


def retention(free_gates: jax.Array, previous_read_weights: jax.Array) -> jax.Array:
    """Memory retention psi = prod_r (1 - f_r w_r^read): how much of each slot the reads keep.

    free_gates [B,R] in [0, 1], previous_read_weights [B,R,N] -> [B,N] in [0, 1].
    """
    return jnp.prod(1.0 - free_gates[:, :, None] * previous_read_weights, axis=1)


def update_usage(
    previous_usage: jax.Array,
    previous_write_weights: jax.Array,
    free_gates: jax.Array,
    previous_read_weights: jax.Array,
) -> jax.Array:
    """Usage u_t = (u + w - u * w) * psi: raised by the last write, lowered by freed reads.

    previous_usage [B,N], previous_write_weights [B,W,N], free_gates [B,R],
    previous_read_weights [B,R,N] -> usage [B,N]. Inputs in [0, 1] give usage in [0, 1].
    Several write heads count as one combined write 1 - prod_w (1 - w_w).
    """
    written = 1.0 - jnp.prod(1.0 - previous_write_weights, axis=1)  # [B,N]
    # u + (1 - u) w is u + w - u w written so that it cannot round above 1.
    usage = previous_usage + (1.0 - previous_usage) * written
    return usage * retention(free_gates, previous_read_weights)


def allocation_weights(usage: jax.Array) -> jax.Array:
    """Allocation a[phi_j] = (1 - u[phi_j]) prod_{i<j} u[phi_i], phi the slots by rising usage.

    usage [B,N] in [0, 1] -> allocation [B,N], non-negative with sum <= 1. Gradients flow
    through the usage values; the sort order is piecewise constant and gets none.
    """
    usage = USAGE_EPSILON + (1.0 - USAGE_EPSILON) * usage
    order = jax.lax.stop_gradient(jnp.argsort(usage, axis=-1))  # [B,N], least used first
    sorted_usage = jnp.take_along_axis(usage, order, axis=-1)
    # Exclusive cumulative product: the first (least used) slot multiplies nothing.
    ones = jnp.ones_like(sorted_usage[:, :1])
    product_before = jnp.cumprod(jnp.concatenate([ones, sorted_usage[:, :-1]], axis=-1), axis=-1)
    sorted_allocation = (1.0 - sorted_usage) * product_before
    # Scatter back to slot order: the inverse permutation of `order` is its argsort.
    return jnp.take_along_axis(sorted_allocation, jnp.argsort(order, axis=-1), axis=-1)


def write_weights(
    content: jax.Array, allocation: jax.Array, allocation_gates: jax.Array, write_gates: jax.Array
) -> jax.Array:
    """Write weighting w = g_w (g_a a + (1 - g_a) c): allocation or content, gated on or off.

    content [B,W,N], allocation [B,W,N], allocation_gates [B,W], write_gates [B,W]
    (gates in [0, 1]) -> [B,W,N].
    """
    g_a = allocation_gates[:, :, None]
    return write_gates[:, :, None] * (g_a * allocation + (1.0 - g_a) * content)


def update_precedence(previous_precedence: jax.Array, write_weights: jax.Array) -> jax.Array:
    """Precedence p_t = (1 - sum_i w(i)) p_{t-1} + w: where the last write went, decayed by writing.

    previous_precedence [B,W,N], write_weights [B,W,N] -> [B,W,N], sum <= 1.
    """
    written = jnp.sum(write_weights, axis=-1, keepdims=True)
    return (1.0 - written) * previous_precedence + write_weights


def update_link(
    previous_link: jax.Array, previous_precedence: jax.Array, write_weights: jax.Array
) -> jax.Array:
    """Temporal links L[i,j] = (1 - w(i) - w(j)) L[i,j] + w(i) p_{t-1}(j), L[i,i] = 0.

    L[i,j] is how much slot i was written right after slot j. previous_link [B,W,N,N],
    previous_precedence [B,W,N] (the precedence before this step's write),
    write_weights [B,W,N] -> link [B,W,N,N] with zero diagonal and rows and columns
    summing to at most 1.
    """
    w_i = write_weights[:, :, :, None]
    w_j = write_weights[:, :, None, :]
    link = (1.0 - w_i - w_j) * previous_link + w_i * previous_precedence[:, :, None, :]
    slots = write_weights.shape[-1]
    return link * (1.0 - jnp.eye(slots, dtype=link.dtype))


def forward_weights(link: jax.Array, previous_read_weights: jax.Array) -> jax.Array:
    """Forward weightings f = L w^read: the slots written just after where each head read.

    link [B,W,N,N], previous_read_weights [B,R,N] -> [B,R,W,N].
    """
    return jnp.einsum("bwij,brj->brwi", link, previous_read_weights)


def backward_weights(link: jax.Array, previous_read_weights: jax.Array) -> jax.Array:
    """Backward weightings b = L^T w^read: the slots written just before where each head read.

    link [B,W,N,N], previous_read_weights [B,R,N] -> [B,R,W,N].
    """
    return jnp.einsum("bwji,brj->brwi", link, previous_read_weights)


def read_weights(
    content: jax.Array, forward: jax.Array, backward: jax.Array, read_modes: jax.Array
) -> jax.Array:
    """Read weighting: a mix of backward, content and forward weightings by the read modes.

    content [B,R,N], forward [B,R,W,N], backward [B,R,W,N], read_modes [B,R,2W+1] (rows sum
    to 1; ordered backward for each write head, then content, then forward for each write
    head, which is the paper's pi = (b, c, f) for one write head) -> [B,R,N].
    """
    heads = forward.shape[2]
    backward_modes = read_modes[:, :, :heads, None]
    content_mode = read_modes[:, :, heads, None]
    forward_modes = read_modes[:, :, heads + 1 :, None]
    return (
        jnp.sum(backward_modes * backward, axis=2)
        + content_mode * content
        + jnp.sum(forward_modes * forward, axis=2)
    )
