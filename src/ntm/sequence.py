"""What every sequence model shares: `SequenceModel` (the batch-first call), `scan_cell`, masks, `count_params`.

The NTM, the DNC and the LSTM baseline each define one step; `SequenceModel` turns it into a
layer over [B,T,D] inputs with padding masks, an initial or returned carry, a per-step trace and
rematerialisation, all as one `lax.scan`. Padded steps are handled by selection (`jnp.where`), so
whatever they hold (NaN included) reaches neither the outputs, the carry nor any gradient.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


def is_traced(value: Any) -> bool:
    """Whether `value` is a JAX tracer (inside jit, grad, vmap, scan), so its values are unknown."""
    return isinstance(value, jax.core.Tracer)


def check_lengths(lengths: Any, batch: int, steps: int) -> jax.Array:
    """`lengths[B]` as an array; ValueError for the wrong shape and, when concrete, values that are
    not whole numbers in [0, steps]. Traced lengths (under jit) are not checked: there a length
    below 0 acts as 0 and one above T as T."""
    lengths = lengths if is_traced(lengths) else jnp.asarray(lengths)
    if lengths.shape != (batch,):
        raise ValueError(f"lengths must have shape ({batch},), got {tuple(lengths.shape)}")
    if not is_traced(lengths):
        values = np.asarray(lengths)
        if values.dtype == bool or not np.issubdtype(values.dtype, np.number):
            raise ValueError(f"lengths must be integers, got dtype {values.dtype}")
        if not np.all(values == np.round(values)):
            raise ValueError(f"lengths must be whole numbers, got {values.tolist()}")
        if values.size and (values.min() < 0 or values.max() > steps):
            raise ValueError(f"lengths must lie in [0, {steps}] (the inputs' time steps), got {values.tolist()}")
    return lengths


def check_mask(mask: Any, batch: int, steps: int) -> jax.Array:
    """`mask[B,T]` as an array; ValueError for the wrong shape and, when concrete, entries other
    than 0 and 1. A traced mask (under jit) is not checked: there any nonzero entry counts as 1."""
    mask = mask if is_traced(mask) else jnp.asarray(mask)
    if mask.shape != (batch, steps):
        raise ValueError(f"mask must have shape ({batch}, {steps}), got {tuple(mask.shape)}")
    if not is_traced(mask):
        values = np.asarray(mask)
        if not np.all((values == 0) | (values == 1)):
            bad = values[(values != 0) & (values != 1)]
            raise ValueError(f"mask entries must be 0 or 1, got {bad.ravel()[:5].tolist()}")
    return mask


def sequence_mask(batch: int, steps: int, lengths=None, mask=None) -> jax.Array:
    """A [B,T] boolean mask, True at real steps, from `lengths[B]` or a given `mask[B,T]` (all True
    if neither). Concrete lengths and masks are validated (see `check_lengths`, `check_mask`)."""
    if lengths is not None and mask is not None:
        raise ValueError("give either lengths or mask, not both")
    if lengths is not None:
        lengths = check_lengths(lengths, batch, steps)
        return jnp.arange(steps)[None, :] < lengths[:, None]
    if mask is not None:
        return check_mask(mask, batch, steps) != 0
    return jnp.ones((batch, steps), bool)


def _select(keep: jax.Array, new: Any, old: Any) -> Any:
    """`new` where `keep[B]` is True, else `old`, leaf by leaf (batch-first leaves)."""

    def pick(a, b):
        return jnp.where(keep.reshape((-1,) + (1,) * (a.ndim - 1)), a, b)

    return jax.tree.map(pick, new, old)


def scan_cell(step_fn, carry, inputs: jax.Array, mask: jax.Array, freeze_carry: bool = True, remat: bool = False):
    """Run `step_fn(carry, x) -> (carry, y, extra)` over batch-first `inputs[B,T,D]` as one scan.

    Where the boolean `mask[B,T]` is False the step sees zeros instead of the input, its output
    and its `extra` (the trace) are zero and, with `freeze_carry`, the carry is left unchanged.
    Both are selections, not multiplications by 0/1, so a NaN or inf in a padded step touches
    neither outputs, carry nor gradients. Without `freeze_carry` the carry runs on through masked
    steps (on zero inputs): correct for real outputs whenever padding only trails each sequence
    (`lengths`) and the final carry is not wanted, and it saves passes over the memory in every
    step and its gradient. With `remat`, each step's activations are recomputed in the backward
    pass instead of stored (`jax.checkpoint`), so gradient memory grows with T by the carry only.
    Returns (final carry, outputs [B,T,...], extras [B,T,...]).
    """

    def body(state, step_inputs):
        x_t, m_t = step_inputs
        x_t = _select(m_t, x_t, jnp.zeros_like(x_t))
        new_state, y_t, extra = step_fn(state, x_t)
        if freeze_carry:
            new_state = _select(m_t, new_state, state)
        y_t = _select(m_t, y_t, jnp.zeros_like(y_t))
        extra = jax.tree.map(lambda e: _select(m_t, e, jnp.zeros_like(e)), extra)
        return new_state, (y_t, extra)

    time_major = (jnp.swapaxes(inputs, 0, 1), jnp.swapaxes(mask, 0, 1))
    if remat:
        body = jax.checkpoint(body)
    carry, (outputs, extras) = jax.lax.scan(body, carry, time_major)
    to_batch_first = lambda a: jnp.swapaxes(a, 0, 1)
    return carry, to_batch_first(outputs), jax.tree.map(to_batch_first, extras)


def check_dtype_available(config) -> None:
    """ValueError at build time for float64 without `jax_enable_x64` (JAX would silently use float32)."""
    wanted = {config.dtype, config.param_dtype}
    if "float64" in wanted and not jax.config.read("jax_enable_x64"):
        raise ValueError(
            'dtype float64 needs 64-bit JAX: call jax.config.update("jax_enable_x64", True) first '
            "(or set JAX_ENABLE_X64=1)"
        )


class SequenceModel(nnx.Module):
    """The batch-first sequence interface shared by the NTM, the DNC and the LSTM baseline.

    A subclass sets `self.config` (with `input_size` and `dtype`) and `display_name`, and
    implements `initial_state(batch, rngs)` and `step(carry, x[B,D]) -> (carry, logits[B,out],
    step trace)`. Calling the model is described in `__call__`.
    """

    display_name = "model"

    def initial_state(self, batch: int, rngs=None):
        """The carry before the first step for `batch` sequences (subclasses define it)."""
        raise NotImplementedError(f"{type(self).__name__} must define initial_state")

    def step(self, carry, inputs):
        """One step: (carry, x[B,D]) -> (carry, logits[B,out], step trace) (subclasses define it)."""
        raise NotImplementedError(f"{type(self).__name__} must define step")

    # Inside its scan a model may hold the carry in a layout of its own (the NTM's fused memory
    # step keeps the memory slots-last): `to_scan_carry` before the scan, `scan_step` in it,
    # `from_scan_carry` after it. By default, the carry and `step` as they are.
    def to_scan_carry(self, carry):
        return carry

    def scan_step(self, carry, inputs):
        return self.step(carry, inputs)

    def from_scan_carry(self, carry):
        return carry

    def check_inputs(self, inputs: jax.Array) -> None:
        """ValueError unless inputs are [batch >= 1, time >= 1, config.input_size]."""
        shape = tuple(getattr(inputs, "shape", ()))
        if len(shape) != 3 or shape[-1] != self.config.input_size:
            raise ValueError(
                f"{self.display_name} inputs must have shape [batch, time, {self.config.input_size}], got {shape}"
            )
        if shape[0] < 1 or shape[1] < 1:
            raise ValueError(f"{self.display_name} inputs need at least one sequence and one step, got {shape}")

    def check_carry(self, carry, batch: int) -> None:
        """ValueError unless every array of a given carry has `batch` rows, like the inputs
        (scalars, which a user controller's state may hold, have no batch axis to check)."""
        for path, leaf in jax.tree_util.tree_flatten_with_path(carry)[0]:
            shape = tuple(getattr(leaf, "shape", ()))
            if shape and shape[0] != batch:
                raise ValueError(
                    f"initial_carry{jax.tree_util.keystr(path)} has shape {shape}, but the inputs have "
                    f"batch size {batch}; the carry needs one row per sequence"
                )

    def __call__(
        self,
        inputs: jax.Array,
        *,
        initial_carry=None,
        lengths: jax.Array | None = None,
        mask: jax.Array | None = None,
        return_carry: bool = False,
        trace: bool = False,
        rngs=None,
        remat: bool = False,
    ):
        """Run the model over a batch of sequences: inputs [B,T,input_size] -> logits [B,T,output_size].

        Options (keyword only):
          initial_carry: start from this carry (e.g. the carry a previous call returned, to continue
            a split sequence) instead of the model's initial state; one row per sequence.
          lengths [B] (whole numbers in [0, T]) or mask [B,T] (0/1): the real steps. Padded steps
            change neither real outputs nor the final carry, whatever they hold (NaN included), and
            give no gradient; their outputs and trace entries are zero. Concrete lengths and masks
            are checked; under `jit` (tracers) they are not: a length below 0 acts as 0, above T
            as T, and any nonzero mask entry as 1.
          return_carry: also return the final carry, as `(carry, logits)` like `nnx.RNN`.
          trace: also return the per-step traces stacked over time ([B,T,...]) as the last element:
            `(logits, trace)` or `(carry, logits, trace)`.
          rngs: a key or nnx.Rngs for a random initial state (the NTM's `memory_init="random"`); if
            not given, the model's own stream is used.
          remat: recompute each step in the backward pass rather than store it (long sequences).
        Inputs are cast to `config.dtype`, the dtype of the carry and the logits.
        """
        self.check_inputs(inputs)
        batch, steps, _ = inputs.shape
        dtype = getattr(self.config, "dtype", None)
        inputs = jnp.asarray(inputs, None if dtype is None else jnp.dtype(dtype))
        step_mask = sequence_mask(batch, steps, lengths, mask)
        if initial_carry is None:
            initial_carry = self.initial_state(batch, rngs)
        else:
            self.check_carry(initial_carry, batch)
        if trace:
            step_fn = self.scan_step
        else:  # the unused trace is dead code in the scan body, so nothing is stacked for nothing
            step_fn = lambda c, x: self.scan_step(c, x)[:2] + ((),)
        freeze = return_carry or mask is not None
        carry, logits, step_traces = scan_cell(step_fn, self.to_scan_carry(initial_carry), inputs, step_mask, freeze,
                                               remat)
        carry = self.from_scan_carry(carry)
        result = (carry, logits) if return_carry else (logits,)
        if trace:
            result = result + (step_traces,)
        return result[0] if len(result) == 1 else result


def count_params(model: nnx.Module) -> int:
    """Number of trainable scalars (nnx.Param) in a model."""
    state = nnx.state(model, nnx.Param)
    return int(sum(leaf.size for leaf in jax.tree.leaves(state)))
