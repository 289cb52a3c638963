"""Reading and writing the NTM memory matrix, and building its initial contents.

Pure functions on batched arrays (B batch, H heads, N slots, M slot width), Graves et al.
2014 section 3.1-3.2. Writes apply every head's erase first, then every head's add, so the
result does not depend on the order of the write heads.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def read(memory: jax.Array, weights: jax.Array) -> jax.Array:
    """Read vectors r_h = sum_i w_h(i) M(i).

    memory [B,N,M], weights [B,H,N] -> [B,H,M].
    """
    return jnp.einsum("bhn,bnm->bhm", weights, memory)


def write(memory: jax.Array, weights: jax.Array, erase: jax.Array, add: jax.Array) -> jax.Array:
    """Erase then add: M * prod_h(1 - w_h e_h^T) + sum_h w_h a_h^T.

    memory [B,N,M], weights [B,H,N], erase [B,H,M] in [0, 1], add [B,H,M] -> [B,N,M].
    """
    if weights.shape[1] == 1:
        keep = 1.0 - weights[:, 0, :, None] * erase[:, 0, None, :]
    else:
        keep = jnp.prod(1.0 - weights[:, :, :, None] * erase[:, :, None, :], axis=1)
    return memory * keep + jnp.einsum("bhn,bhm->bnm", weights, add)


def one_hot_weights(batch_size: int, heads: int, slots: int, dtype=jnp.float32) -> jax.Array:
    """Fixed initial weighting: every head points at slot 0. [B,H,N].

    A uniform start cannot break the symmetry of a constant memory (content lookup and
    shifts of a uniform weighting stay uniform), so the fixed start is a one-hot.
    """
    row = jnp.zeros((slots,), dtype).at[0].set(1.0)
    return jnp.broadcast_to(row, (batch_size, heads, slots))
