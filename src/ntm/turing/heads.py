"""NTM heads: turn the controller's output into every head's addressing parameters and write vectors.

One linear layer emits the parameters of all heads at once (one matmul per step instead of one
per head). Raw values are clipped to +-clip_value (Collier & Beel) and then squashed into range:
key tanh, strength softplus, gate sigmoid, shift softmax, gamma 1 + softplus, erase sigmoid,
add tanh. Read heads come first along the head axis, write heads after them.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from ntm.turing.config import NTMConfig


class HeadParameters(NamedTuple):
    """Addressing parameters of H heads (read heads first, then write heads)."""

    keys: jax.Array  # [B,H,A+M]: address part (A = config.address_size, may be 0), then content part
    strengths: jax.Array  # [B,H], >= 0
    gates: jax.Array  # [B,H], in (0, 1)
    shift_weights: jax.Array  # [B,H,S], rows sum to 1
    gammas: jax.Array  # [B,H], >= 1


class WriteVectors(NamedTuple):
    erase: jax.Array  # [B,W,M], in (0, 1)
    add: jax.Array  # [B,W,M], in (-1, 1)


def split_head_parameters(raw: jax.Array, config: NTMConfig) -> tuple[HeadParameters, WriteVectors]:
    """Slice a raw parameter vector [B, config.head_parameter_size] and squash each part into range."""
    batch = raw.shape[0]
    heads = config.read_heads + config.write_heads
    key, shifts = config.key_size, config.shift_range
    per_head = key + 3 + shifts
    addressing = raw[:, : heads * per_head].reshape(batch, heads, per_head)
    writes = raw[:, heads * per_head :].reshape(batch, config.write_heads, 2, config.memory_width)
    params = HeadParameters(
        keys=jnp.tanh(addressing[..., :key]),
        strengths=jax.nn.softplus(addressing[..., key]),
        gates=jax.nn.sigmoid(addressing[..., key + 1]),
        shift_weights=jax.nn.softmax(addressing[..., key + 2 : key + 2 + shifts], axis=-1),
        gammas=1.0 + jax.nn.softplus(addressing[..., key + 2 + shifts]),
    )
    vectors = WriteVectors(erase=jax.nn.sigmoid(writes[:, :, 0]), add=jnp.tanh(writes[:, :, 1]))
    return params, vectors


def erase_logit_indices(config: NTMConfig) -> jax.Array:
    """Where the write heads' erase logits sit in the raw parameter vector (layout of `split_head_parameters`)."""
    heads = config.read_heads + config.write_heads
    start = heads * (config.key_size + 3 + config.shift_range)
    per_head = jnp.arange(config.memory_width)
    return jnp.concatenate([start + 2 * config.memory_width * w + per_head for w in range(config.write_heads)])


class NTMHeads(nnx.Module):
    """controller output [B,C] -> (HeadParameters for R+W heads, WriteVectors for W heads)."""

    def __init__(self, controller_size: int, config: NTMConfig, *, rngs: nnx.Rngs):
        self.config = config
        self.projection = nnx.Linear(
            controller_size,
            config.head_parameter_size,
            dtype=jnp.dtype(config.dtype),
            param_dtype=jnp.dtype(config.param_dtype),
            rngs=rngs,
        )
        if config.erase_bias:
            self.projection.bias[...] = self.projection.bias[...].at[erase_logit_indices(config)].set(config.erase_bias)

    def __call__(self, controller_output: jax.Array) -> tuple[HeadParameters, WriteVectors]:
        raw = self.projection(controller_output)
        if self.config.clip_value is not None:
            raw = jnp.clip(raw, -self.config.clip_value, self.config.clip_value)
        return split_head_parameters(raw, self.config)
