"""Cost and bit errors in the NTM paper's units, from logits, in JAX so they run inside a compiled step.

All functions take `logits[B,T,O]`, `targets[B,T,O]` (0/1) and `mask[B,T]` (or `[B,T,O]`), 1 where an
output is scored; unscored entries contribute nothing.
  - cost: binary cross-entropy summed over the scored target bits of a sequence, in bits
    (Graves et al. 2014 report "cost per sequence (bits)");
  - bit errors: scored bits whose thresholded output (sigmoid(logit) > 0.5, i.e. logit > 0) differs
    from the target.
Per-sequence functions return [B]; the `*_per_sequence` functions and `loss` average over sequences.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax

LN2 = math.log(2.0)


def _scored(mask: jax.Array, logits: jax.Array) -> jax.Array:
    """The mask as a float array broadcastable to the logits' shape."""
    mask = jnp.asarray(mask, logits.dtype)
    return mask[..., None] if mask.ndim == logits.ndim - 1 else mask


def bit_cross_entropy(logits: jax.Array, targets: jax.Array, mask: jax.Array) -> jax.Array:
    """Cost of each sequence in bits [B]: scored binary cross-entropy, stable for any logit."""
    logits = jnp.asarray(logits)
    nats = optax.sigmoid_binary_cross_entropy(logits, jnp.asarray(targets, logits.dtype))
    summed = (nats * _scored(mask, logits)).reshape(logits.shape[0], -1).sum(axis=1)
    return summed / LN2


def bit_errors(logits: jax.Array, targets: jax.Array, mask: jax.Array) -> jax.Array:
    """Wrong bits of each sequence [B] after thresholding outputs at 0.5."""
    logits = jnp.asarray(logits)
    wrong = (logits > 0) != (jnp.asarray(targets) > 0.5)
    return (wrong * _scored(mask, logits)).reshape(logits.shape[0], -1).sum(axis=1)


def cost_per_sequence(logits: jax.Array, targets: jax.Array, mask: jax.Array) -> jax.Array:
    """Cost in bits per sequence, averaged over the batch (scalar)."""
    return bit_cross_entropy(logits, targets, mask).mean()


def bit_errors_per_sequence(logits: jax.Array, targets: jax.Array, mask: jax.Array) -> jax.Array:
    """Bit errors per sequence, averaged over the batch (scalar)."""
    return bit_errors(logits, targets, mask).mean()


def loss(logits: jax.Array, targets: jax.Array, mask: jax.Array, per: str = "sequence") -> jax.Array:
    """The training loss in bits: per="sequence", cost per sequence averaged over sequences (long
    sequences weigh more); per="step", the batch's cost divided by its scored steps (every scored
    step weighs the same, whatever sequence it is in).

    In bits rather than nats so the logged loss is the reported cost; the 1/ln 2 factor only
    rescales gradients, which Adam and RMSProp normalise away. Smooth in the logits.
    """
    if per == "sequence":
        return cost_per_sequence(logits, targets, mask)
    if per == "step":
        steps = jnp.asarray(mask, logits.dtype)
        steps = steps if steps.ndim == logits.ndim - 1 else steps.max(axis=-1)
        return bit_cross_entropy(logits, targets, mask).sum() / jnp.maximum(steps.sum(), 1.0)
    raise ValueError(f"per must be 'sequence' or 'step', got {per!r}")


def summarize(logits: jax.Array, targets: jax.Array, mask: jax.Array) -> dict[str, jax.Array]:
    """{"cost": bits per sequence, "bit_errors": bit errors per sequence}, both scalars."""
    return {
        "cost": cost_per_sequence(logits, targets, mask),
        "bit_errors": bit_errors_per_sequence(logits, targets, mask),
    }
