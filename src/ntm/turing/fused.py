"""The NTM memory step fused into one function with a hand-written backward pass.

`memory_step` does, for every head at once, what `addressing.address`, `memory.read` and `memory.write`
(its siblings in `ntm.turing`) do one after another: content lookup, interpolation, circular shift and
sharpening; the reads of the read heads from the previous memory; then the erase-then-add write of
the write heads. Its values are those of the plain functions (`reference_memory_step`).

Why: in a training step nearly all time goes to passes over the [B,N,M] memory, and automatic
differentiation of the plain functions makes many of them (each elementwise op and each small
batched matrix product of the lookup, the read and the write, forward and backward), and keeps
the write's [B,N,M] `keep` factor as well as the memory for the backward pass. The custom VJP keeps
only the previous memory and [B,H,N]-sized values, and its backward pass reads the memory and the
incoming memory gradient in two passes:
  1. the gradients of the write (erase, add, write weightings) and of the reads (read weightings);
  2. after the small [B,H,N] backward pass of the addressing, the memory's and the keys' gradients,
     all terms of the memory's gradient in one elementwise sum.
The small addressing tail (softmax, interpolation, shift, sharpening) is differentiated by JAX: its
arrays are [B,H,N], a few per cent of the memory's size.

With `slots_last=True` the memory is stored as [B,M,N] (slots on the last axis), which the caller
keeps from step to step. With M = 20 on the last axis the CPU vectorises poorly; with N = 128 there
it does well, and the lookup's and the read's reductions run along contiguous rows.

Addressable memory (`addresses`, the Dynamic NTM of Gulcehre et al. 2016): every slot n also has a
trainable address a_n (addresses [N,A], shared by the batch) that content lookups match but writes
never change. Keys are then [B,H,A+M], k = [k^a ; k^c], and match the rows [a_n ; M_n]:
  dots[b,h,n]   = k^a[b,h] . a_n + k^c[b,h] . M[b,n]                [B,H,N]
  |row|[b,n]    = sqrt(|a_n|^2 + |M[b,n]|^2 + eps)                  [B,N]
  |k|[b,h]      = sqrt(|k^a[b,h]|^2 + |k^c[b,h]|^2 + eps)           [B,H]
  similarity    = dots / (|k| |row|)                                [B,H,N]
Reads return the content M only, and erase and add touch only M. The backward pass adds
  d a_n = sum_{b,h} d dots[b,h,n] k^a[b,h] + a_n sum_b d|row|[b,n] / |row|[b,n]          [N,A]
  d k^a = sum_n d dots[b,h,n] a_n (plus the key-norm term of the whole key)              [B,H,A]
with d dots = d similarity / (|k| |row|) as without addresses.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from ntm.turing import addressing, memory as memory_ops


def _check(memory, previous, keys, erase, read_heads: int, slots_last: bool, addresses=None) -> None:
    """Shapes agree and there is at least one read and one write head (as NTMConfig requires)."""
    if memory.ndim != 3 or previous.ndim != 3 or keys.ndim != 3:
        raise ValueError("memory, previous and keys must be rank 3 ([B,N,M] or [B,M,N], [B,H,N], [B,H,A+M])")
    batch, slots, width = (memory.shape[0], memory.shape[2], memory.shape[1]) if slots_last else memory.shape
    address_size = 0
    if addresses is not None:
        if addresses.ndim != 2 or addresses.shape[0] != slots or addresses.shape[1] < 1:
            raise ValueError(f"addresses must have shape [N={slots}, A>=1], got {tuple(addresses.shape)}")
        address_size = addresses.shape[1]
    heads = previous.shape[1]
    if previous.shape != (batch, heads, slots) or keys.shape != (batch, heads, address_size + width):
        layout = "[B,M,N]" if slots_last else "[B,N,M]"
        raise ValueError(
            f"memory {layout} {tuple(memory.shape)} does not match previous weightings {tuple(previous.shape)} "
            f"and keys {tuple(keys.shape)}"
        )
    if isinstance(read_heads, bool) or not isinstance(read_heads, int) or not 1 <= read_heads < heads:
        raise ValueError(f"read_heads must be an integer in [1, {heads - 1}] for {heads} heads, got {read_heads!r}")
    if erase.shape != (batch, heads - read_heads, width):
        raise ValueError(f"erase/add must have shape {(batch, heads - read_heads, width)}, got {tuple(erase.shape)}")


def memory_step(
    memory: jax.Array,
    previous: jax.Array,
    keys: jax.Array,
    strengths: jax.Array,
    gates: jax.Array,
    shift_weights: jax.Array,
    gammas: jax.Array,
    erase: jax.Array,
    add: jax.Array,
    *,
    read_heads: int,
    slots_last: bool = False,
    addresses: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Address every head, read, then write: one NTM memory step with a custom VJP.

    memory [B,N,M] ([B,M,N] with `slots_last`), previous weightings [B,H,N] (read heads first),
    keys [B,H,A+M] (A = 0 without addresses), strengths, gates, gammas [B,H], shift_weights
    [B,H,S], erase and add [B,W,M] with W = H - read_heads write heads, addresses [N,A] or None.
    Returns (weightings [B,H,N], reads [B,R,M] from the previous memory, new memory in the
    memory's layout).
    """
    _check(memory, previous, keys, erase, read_heads, slots_last, addresses)
    if addresses is not None:
        addresses = addresses.astype(memory.dtype)  # outside the custom VJP, so its gradient casts back
    return _memory_step(memory, previous, keys, strengths, gates, shift_weights, gammas, erase, add, addresses,
                        read_heads, slots_last)


def reference_memory_step(memory, previous, keys, strengths, gates, shift_weights, gammas, erase, add, *,
                          read_heads: int, slots_last: bool = False, addresses=None):
    """The same step from the plain functions (`addressing.address`, `memory.read`, `memory.write`);
    with addresses, the lookup runs on the rows [a_n ; M_n] (`lookup_rows`)."""
    _check(memory, previous, keys, erase, read_heads, slots_last, addresses)
    if slots_last:
        memory = jnp.swapaxes(memory, 1, 2)
    weights = addressing.address(lookup_rows(memory, addresses), previous, keys, strengths, gates, shift_weights,
                                 gammas)
    reads = memory_ops.read(memory, weights[:, :read_heads])
    new_memory = memory_ops.write(memory, weights[:, read_heads:], erase, add)
    if slots_last:
        new_memory = jnp.swapaxes(new_memory, 1, 2)
    return weights, reads, new_memory


def lookup_rows(memory: jax.Array, addresses: jax.Array | None) -> jax.Array:
    """What content lookups match: memory [B,N,M], addresses [N,A] -> rows [a_n ; M_n], [B,N,A+M]."""
    if addresses is None:
        return memory
    addresses = jnp.broadcast_to(addresses.astype(memory.dtype), (memory.shape[0], *addresses.shape))
    return jnp.concatenate([addresses, memory], axis=-1)


# ----------------------------------------------------------------------------- layout helpers
# `memory` below is [B,N,M], or [B,M,N] when `slots_last`; "slot vectors" are [B,K,N] and
# "width vectors" [B,K,M].


def _width_axis(slots_last: bool) -> int:
    return 1 if slots_last else 2


def _dots(memory, width_vectors, slots_last: bool):
    """sum_m v[b,k,m] memory[b,n,m] -> [B,K,N]."""
    return jnp.einsum("bkm,bmn->bkn" if slots_last else "bkm,bnm->bkn", width_vectors, memory)


def _weighted_rows(memory, slot_vectors, slots_last: bool):
    """sum_n w[b,k,n] memory[b,n,m] -> [B,K,M]."""
    return jnp.einsum("bkn,bmn->bkm" if slots_last else "bkn,bnm->bkm", slot_vectors, memory)


def _outer_sum(slot_vectors, width_vectors, slots_last: bool):
    """sum_k w[b,k,n] v[b,k,m] -> memory layout."""
    return jnp.einsum("bkn,bkm->bmn" if slots_last else "bkn,bkm->bnm", slot_vectors, width_vectors)


def _per_head_dots(per_head_memories, width_vectors, slots_last: bool):
    """sum_m v[b,k,m] x[b,k,n,m] for one memory-sized x per k: [B,K,(memory layout)], [B,K,M] -> [B,K,N]."""
    return jnp.einsum("bkmn,bkm->bkn" if slots_last else "bknm,bkm->bkn", per_head_memories, width_vectors)


def _per_head_weighted_rows(per_head_memories, slot_vectors, slots_last: bool):
    """sum_n w[b,k,n] x[b,k,n,m] for one memory-sized x per k: [B,K,(memory layout)], [B,K,N] -> [B,K,M]."""
    return jnp.einsum("bkmn,bkn->bkm" if slots_last else "bknm,bkn->bkm", per_head_memories, slot_vectors)


def _outer(slot_vectors, width_vectors, slots_last: bool):
    """w[b,k,n] v[b,k,m] per k -> [B,K,(memory layout)]."""
    if slots_last:
        return slot_vectors[:, :, None, :] * width_vectors[:, :, :, None]
    return slot_vectors[:, :, :, None] * width_vectors[:, :, None, :]


def _per_slot(values, slots_last: bool):
    """[B,N] -> broadcastable against the memory."""
    return values[:, None, :] if slots_last else values[:, :, None]


def _split_keys(keys, addresses):
    """Keys [B,H,A+M] -> (address part [B,H,A] or None, content part [B,H,M])."""
    if addresses is None:
        return None, keys
    address_size = addresses.shape[1]
    return keys[..., :address_size], keys[..., address_size:]


def _addressing_tail(similarity, previous, strengths, gates, shift_weights, gammas):
    """From cosine similarity [B,H,N] to the final weightings: the plain functions, unchanged."""
    content = jax.nn.softmax(strengths[:, :, None] * similarity, axis=-1)
    # The same bound on the gradient into the previous weighting as `addressing.address` (see there).
    previous = addressing.clip_gradient(previous, addressing.PREVIOUS_WEIGHT_GRADIENT_CLIP)
    gated = addressing.interpolate(content, previous, gates)
    return addressing.sharpen(addressing.shift(gated, shift_weights), gammas)


def _erase_factors(write_weights, erase, slots_last: bool):
    """1 - w_h e_h^T for every write head: [B,W,(memory layout)]."""
    return 1.0 - _outer(write_weights, erase, slots_last)


def _keep(factors):
    """The product of all write heads' erase factors: [B,W,(layout)] -> memory layout."""
    keep = factors[:, 0]
    for h in range(1, factors.shape[1]):
        keep = keep * factors[:, h]
    return keep


def _erase_gradients(memory, d_new, write_weights, erase, slots_last: bool):
    """Gradients through the erase of new = memory * keep + adds, keep = prod_h factor_h, factor_h = 1 - w_h e_h^T.

    d factor_h = d_new * memory * prod_{j != h} factor_j. The product of the other heads' factors is
    keep / factor_h, except where a factor is exactly 0 (a head erasing fully: w = e = 1 in float32):
    there it is the product of the nonzero factors if factor_h is the only zero, and 0 if another
    factor is zero too. Counting the zeros keeps this exact with one broadcast expression over
    [B,W,(layout)]: running products over the heads, or stacks of them, made XLA recompute chains
    of products inside its reductions (several times slower at 5 write heads).
    Returns (d memory [memory layout] = d_new * keep, d write weights [B,W,N], d erase [B,W,M]).
    """
    factors = _erase_factors(write_weights, erase, slots_last)  # [B,W,(layout)]
    d_keep = d_new * memory
    if factors.shape[1] == 1:
        keep, d_factors = factors[:, 0], d_keep[:, None]
    else:
        zero = factors == 0
        nonzero = jnp.where(zero, 1.0, factors)
        nonzero_product = jnp.prod(nonzero, axis=1)
        zeros = jnp.sum(zero, axis=1, dtype=jnp.int32)  # how many heads erase each cell fully
        keep = jnp.where(zeros > 0, 0.0, nonzero_product)
        d_factors = jnp.where(zeros[:, None] > zero, 0.0, (d_keep * nonzero_product)[:, None] / nonzero)
    d_write_weights = -_per_head_dots(d_factors, erase, slots_last)
    d_erase = -_per_head_weighted_rows(d_factors, write_weights, slots_last)
    return d_new * keep, d_write_weights, d_erase


# ----------------------------------------------------------------------------- the custom VJP


# The "memory_step" name scope lets profiles tell this step's ops apart (benchmarks/profile_step.py).
@jax.named_scope("memory_step")
def _forward(memory, previous, keys, strengths, gates, shift_weights, gammas, erase, add, addresses, read_heads,
             slots_last):
    width_axis = _width_axis(slots_last)
    address_keys, content_keys = _split_keys(keys, addresses)
    key_norms = jnp.sqrt(jnp.sum(keys * keys, axis=-1) + addressing.NORM_EPSILON)  # [B,H]
    squared_rows = jnp.sum(memory * memory, axis=width_axis)  # [B,N]
    dots = _dots(memory, content_keys, slots_last)  # [B,H,N]
    if addresses is not None:
        squared_rows = squared_rows + jnp.sum(addresses * addresses, axis=-1)[None, :]
        dots = dots + jnp.einsum("bha,na->bhn", address_keys, addresses)
    row_norms = jnp.sqrt(squared_rows + addressing.NORM_EPSILON)  # [B,N]
    similarity = dots / (key_norms[:, :, None] * row_norms[:, None, :])
    weights, tail_vjp = jax.vjp(_addressing_tail, similarity, previous, strengths, gates, shift_weights, gammas)
    read_weights, write_weights = weights[:, :read_heads], weights[:, read_heads:]
    reads = _weighted_rows(memory, read_weights, slots_last)
    keep = _keep(_erase_factors(write_weights, erase, slots_last))
    new_memory = memory * keep + _outer_sum(write_weights, add, slots_last)
    # Residuals: the previous memory and [B,H,N]-sized values only; `keep` is recomputed.
    residuals = (memory, keys, key_norms, row_norms, similarity, weights, erase, add, addresses, tail_vjp)
    return (weights, reads, new_memory), residuals


@partial(jax.custom_vjp, nondiff_argnums=(10, 11))
def _memory_step(memory, previous, keys, strengths, gates, shift_weights, gammas, erase, add, addresses, read_heads,
                 slots_last):
    return _forward(memory, previous, keys, strengths, gates, shift_weights, gammas, erase, add, addresses,
                    read_heads, slots_last)[0]


def _memory_step_fwd(memory, previous, keys, strengths, gates, shift_weights, gammas, erase, add, addresses,
                     read_heads, slots_last):
    return _forward(memory, previous, keys, strengths, gates, shift_weights, gammas, erase, add, addresses,
                    read_heads, slots_last)


@jax.named_scope("memory_step")
def _memory_step_bwd(read_heads, slots_last, residuals, cotangents):
    memory, keys, key_norms, row_norms, similarity, weights, erase, add, addresses, tail_vjp = residuals
    address_keys, content_keys = _split_keys(keys, addresses)
    d_weights, d_reads, d_new = cotangents
    read_weights, write_weights = weights[:, :read_heads], weights[:, read_heads:]

    # Pass 1: the write (new = memory * keep + sum_h w_h a_h^T) and the reads (r = w M).
    d_memory_through_keep, d_write_weights, d_erase = _erase_gradients(memory, d_new, write_weights, erase,
                                                                       slots_last)
    d_write_weights = d_write_weights + _dots(d_new, add, slots_last)
    d_add = _weighted_rows(d_new, write_weights, slots_last)
    d_read_weights = _dots(memory, d_reads, slots_last)
    d_weights = d_weights + jnp.concatenate([d_read_weights, d_write_weights], axis=1)

    # The addressing tail on [B,H,N], by JAX.
    d_similarity, d_previous, d_strengths, d_gates, d_shifts, d_gammas = tail_vjp(d_weights)

    # Pass 2: cosine similarity s = (k . M_n) / (|k| |M_n|).
    d_dots = d_similarity / (key_norms[:, :, None] * row_norms[:, None, :])
    d_key_norms = -jnp.sum(d_similarity * similarity, axis=-1) / key_norms  # [B,H]
    d_row_norms = -jnp.sum(d_similarity * similarity, axis=1) / row_norms  # [B,N]
    d_keys = _weighted_rows(memory, d_dots, slots_last)
    d_addresses = None
    if addresses is not None:
        d_keys = jnp.concatenate([jnp.einsum("bhn,na->bha", d_dots, addresses), d_keys], axis=-1)
        d_addresses = (jnp.einsum("bhn,bha->na", d_dots, address_keys)
                       + addresses * jnp.sum(d_row_norms / row_norms, axis=0)[:, None])
    d_keys = d_keys + (d_key_norms / key_norms)[:, :, None] * keys
    # All of the memory's gradient in one sum: through keep, the reads and the dot products, and
    # the row norms.
    d_memory = (
        d_memory_through_keep
        + _outer_sum(jnp.concatenate([read_weights, d_dots], axis=1),
                     jnp.concatenate([d_reads, content_keys], axis=1), slots_last)
        + memory * _per_slot(d_row_norms / row_norms, slots_last)
    )
    return d_memory, d_previous, d_keys, d_strengths, d_gates, d_shifts, d_gammas, d_erase, d_add, d_addresses


_memory_step.defvjp(_memory_step_fwd, _memory_step_bwd)
