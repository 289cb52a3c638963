"""NTM addressing as pure functions: content lookup, interpolation, circular shift and sharpening.

These are the equations of Graves et al. 2014, section 3.3, on batched arrays. Shapes use
B batch, H heads, N memory slots, M slot width, S shift-kernel size (odd, centred).
Every function is finite (values and gradients) for zero memory, zero keys, strengths up
to 1e3, sharpening exponents up to 100 and weightings with exact zeros.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

# Added under the square roots of the norms: keeps cosine similarity and its gradient finite
# for all-zero keys or memory rows (the 1e-6 constant memory of Collier & Beel is far above it).
NORM_EPSILON = 1e-12
# Added before the logarithm in sharpening so exact zeros stay finite.
SHARPEN_EPSILON = 1e-20
# Bound on each element of the gradient that flows back into the previous step's weighting.
# Interpolating with the previous weighting and then sharpening multiplies a small change of a
# near-uniform weighting by gamma * (1 - g) per step (up to ~21). A head that lingers near uniform
# for many steps makes the exact gradient grow by that factor per step backwards: on N-grams a
# write head at gamma ~3, g ~0.1 for 100 steps gave 2.7^100 > float32's range, so the backward
# pass overflowed to inf and inf - inf = NaN. Stable training sees at most a few hundred here.
PREVIOUS_WEIGHT_GRADIENT_CLIP = 100.0


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def clip_gradient(x: jax.Array, bound: float) -> jax.Array:
    """The identity, whose gradient is clipped element-wise to [-bound, bound]."""
    return x


def _clip_gradient_fwd(x, bound):
    return x, None


def _clip_gradient_bwd(bound, _, cotangent):
    return (jnp.clip(cotangent, -bound, bound),)


clip_gradient.defvjp(_clip_gradient_fwd, _clip_gradient_bwd)


def cosine_similarity(memory: jax.Array, keys: jax.Array) -> jax.Array:
    """Cosine similarity of every key with every memory row.

    memory [B,N,M], keys [B,H,M] -> [B,H,N].
    """
    dots = jnp.einsum("bhm,bnm->bhn", keys, memory)
    key_norms = jnp.sqrt(jnp.sum(keys * keys, axis=-1) + NORM_EPSILON)  # [B,H]
    row_norms = jnp.sqrt(jnp.sum(memory * memory, axis=-1) + NORM_EPSILON)  # [B,N]
    return dots / (key_norms[:, :, None] * row_norms[:, None, :])


def content_weights(memory: jax.Array, keys: jax.Array, strengths: jax.Array) -> jax.Array:
    """Content addressing: softmax over slots of strength x cosine(key, row).

    memory [B,N,M], keys [B,H,M], strengths [B,H] (>= 0) -> weightings [B,H,N].
    """
    similarity = cosine_similarity(memory, keys)
    return jax.nn.softmax(strengths[:, :, None] * similarity, axis=-1)


def interpolate(content: jax.Array, previous: jax.Array, gates: jax.Array) -> jax.Array:
    """Interpolation gate: g * content + (1 - g) * previous.

    content [B,H,N], previous [B,H,N], gates [B,H] in [0, 1] -> [B,H,N].
    """
    g = gates[:, :, None]
    return g * content + (1.0 - g) * previous


def shift(weights: jax.Array, shift_weights: jax.Array) -> jax.Array:
    """Circular convolution of each weighting with its shift kernel.

    weights [B,H,N], shift_weights [B,H,S] (S odd, entry j means an offset of j - S//2)
    -> [B,H,N]. Entry j moves weight from slot i to slot (i + j - S//2) mod N.
    """
    size = shift_weights.shape[-1]
    if size % 2 != 1:
        raise ValueError(f"shift kernel size must be odd, got S={size}")
    centre = size // 2
    # S is small and static, so a sum of S rolled copies is cheaper than an FFT or a gather.
    shifted = [
        jnp.roll(weights, j - centre, axis=-1) * shift_weights[:, :, j : j + 1] for j in range(size)
    ]
    return sum(shifted[1:], shifted[0])


def sharpen(weights: jax.Array, gammas: jax.Array) -> jax.Array:
    """Sharpening: w^gamma / sum(w^gamma), computed as a softmax of gamma * log w.

    weights [B,H,N] (>= 0), gammas [B,H] (>= 1) -> [B,H,N]. The log form cannot underflow
    to 0/0 for large gamma, and keeps the gradient finite where a weight is exactly zero.
    """
    logits = gammas[:, :, None] * jnp.log(weights + SHARPEN_EPSILON)
    return jax.nn.softmax(logits, axis=-1)


def address(
    memory: jax.Array,
    previous: jax.Array,
    keys: jax.Array,
    strengths: jax.Array,
    gates: jax.Array,
    shift_weights: jax.Array,
    gammas: jax.Array,
) -> jax.Array:
    """The full NTM addressing pipeline: content, interpolation, shift, sharpening.

    memory [B,N,M], previous [B,H,N], keys [B,H,M], strengths [B,H], gates [B,H],
    shift_weights [B,H,S], gammas [B,H] -> new weightings [B,H,N].
    """
    content = content_weights(memory, keys, strengths)
    previous = clip_gradient(previous, PREVIOUS_WEIGHT_GRADIENT_CLIP)
    gated = interpolate(content, previous, gates)
    return sharpen(shift(gated, shift_weights), gammas)
