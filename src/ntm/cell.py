"""The Neural Turing Machine as a Flax NNX recurrent cell (`NTMCell`) and a sequence layer (`NTM`).

One step: the controller sees the input and the previous reads; the heads emit addressing
parameters; every head addresses the previous memory; reads come from the previous memory;
then all writes (erase, then add) produce the new memory; the output layer sees the controller
output and the new reads. `NTM` runs the cell over a batch-first sequence as one `lax.scan`,
with masks for padded batches and an optional per-step trace for pictures.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from ntm import addressing, memory as memory_ops
from ntm.config import NTMConfig
from ntm.controllers import Controller, build_controller
from ntm.heads import NTMHeads

# Truncated-normal scale of `memory_init="random"`, as in Collier & Beel's random scheme.
RANDOM_MEMORY_STDDEV = 0.5
# Learned initial weightings start as a near one-hot on slot 0 (softmax of these logits).
LEARNED_WEIGHT_LOGIT = 10.0


class NTMState(NamedTuple):
    """The carry of an NTM between steps."""

    memory: jax.Array  # [B,N,M]
    read_weights: jax.Array  # [B,R,N]
    write_weights: jax.Array  # [B,W,N]
    reads: jax.Array  # [B,R,M]
    controller: Any  # the controller's own state pytree


class NTMStepTrace(NamedTuple):
    """What one step did, for pictures; stacked over time by `NTM(trace=True)` as [B,T,...]."""

    read_weights: jax.Array  # [B,R,N]
    write_weights: jax.Array  # [B,W,N]
    reads: jax.Array  # [B,R,M]
    erase: jax.Array  # [B,W,M]
    add: jax.Array  # [B,W,M]
    memory: jax.Array  # [B,N,M], after this step's write


class NTMCell(nnx.RNNCellBase):
    """One NTM step: `(carry, x[B, input_size]) -> (carry, logits[B, output_size])`.

    `controller` replaces the built-in LSTM or feedforward controller with any module that meets
    `ntm.controllers.Controller`; its input size must be
    `config.input_size + config.read_heads * config.memory_width`.
    """

    def __init__(self, config: NTMConfig, *, rngs: nnx.Rngs, controller: nnx.Module | None = None):
        if not isinstance(config, NTMConfig):
            raise ValueError(f"config must be an NTMConfig, got {type(config).__name__}")
        self.config = config
        if controller is None:
            controller = build_controller(config, rngs=rngs)
        elif not isinstance(controller, Controller) or not isinstance(
            getattr(controller, "output_size", None), int
        ):
            raise ValueError(
                "controller must be an nnx.Module with an int `output_size`, "
                "`initialize_state(batch_size)` and `__call__(state, inputs) -> (state, outputs)`"
            )
        self.controller = controller
        self.heads = NTMHeads(controller.output_size, config, rngs=rngs)
        reads_size = config.read_heads * config.memory_width
        self.output = nnx.Linear(controller.output_size + reads_size, config.output_size, rngs=rngs)
        n, m = config.memory_slots, config.memory_width
        if config.memory_init == "learned":
            self.initial_memory = nnx.Param(jnp.full((n, m), config.memory_init_value, jnp.float32))
        if config.learn_initial_weights:
            logits = jnp.zeros((config.read_heads + config.write_heads, n)).at[:, 0].set(
                LEARNED_WEIGHT_LOGIT
            )
            self.initial_weight_logits = nnx.Param(logits)
        if config.learn_initial_reads:
            self.initial_reads = nnx.Param(
                jnp.full((config.read_heads, m), config.memory_init_value, jnp.float32)
            )

    @property
    def num_feature_axes(self) -> int:
        return 1

    def initialize_carry(self, input_shape: tuple[int, ...], rngs: nnx.Rngs | None = None, carry_init=None) -> NTMState:
        """The state before the first step, for inputs of shape `(B, input_size)`.

        `rngs` is needed only for `memory_init="random"`, which draws a fresh memory each time.
        """
        if len(input_shape) != 2:
            raise ValueError(f"input_shape must be (batch, input_size), got {tuple(input_shape)}")
        cfg = self.config
        batch = input_shape[0]
        n, m = cfg.memory_slots, cfg.memory_width
        if cfg.memory_init == "constant":
            mem = jnp.full((batch, n, m), cfg.memory_init_value, jnp.float32)
        elif cfg.memory_init == "learned":
            mem = jnp.broadcast_to(self.initial_memory[...], (batch, n, m))
        else:
            if rngs is None:
                raise ValueError('memory_init="random" needs rngs to draw the initial memory')
            key = rngs() if isinstance(rngs, (nnx.Rngs, nnx.RngStream)) else rngs
            mem = RANDOM_MEMORY_STDDEV * jax.random.truncated_normal(key, -2.0, 2.0, (batch, n, m))
        heads = cfg.read_heads + cfg.write_heads
        if cfg.learn_initial_weights:
            weights = jax.nn.softmax(self.initial_weight_logits[...], axis=-1)
            weights = jnp.broadcast_to(weights, (batch, heads, n))
        else:
            weights = memory_ops.one_hot_weights(batch, heads, n)
        read_weights, write_weights = weights[:, : cfg.read_heads], weights[:, cfg.read_heads :]
        if cfg.learn_initial_reads:
            reads = jnp.broadcast_to(self.initial_reads[...], (batch, cfg.read_heads, m))
        else:
            reads = memory_ops.read(mem, read_weights)
        return NTMState(mem, read_weights, write_weights, reads, self.controller.initialize_state(batch))

    def step(self, carry: NTMState, inputs: jax.Array) -> tuple[NTMState, jax.Array, NTMStepTrace]:
        """One step with its trace: (carry, x[B,D]) -> (carry, logits[B,out], NTMStepTrace)."""
        cfg = self.config
        batch = inputs.shape[0]
        controller_input = jnp.concatenate([inputs, carry.reads.reshape(batch, -1)], axis=-1)
        controller_state, hidden = self.controller(carry.controller, controller_input)
        if cfg.clip_value is not None:
            hidden = jnp.clip(hidden, -cfg.clip_value, cfg.clip_value)
        params, vectors = self.heads(hidden)
        previous = jnp.concatenate([carry.read_weights, carry.write_weights], axis=1)
        weights = addressing.address(carry.memory, previous, *params)
        read_weights, write_weights = weights[:, : cfg.read_heads], weights[:, cfg.read_heads :]
        reads = memory_ops.read(carry.memory, read_weights)
        new_memory = memory_ops.write(carry.memory, write_weights, vectors.erase, vectors.add)
        logits = self.output(jnp.concatenate([hidden, reads.reshape(batch, -1)], axis=-1))
        if cfg.clip_value is not None:
            logits = jnp.clip(logits, -cfg.clip_value, cfg.clip_value)
        state = NTMState(new_memory, read_weights, write_weights, reads, controller_state)
        trace = NTMStepTrace(read_weights, write_weights, reads, vectors.erase, vectors.add, new_memory)
        return state, logits, trace

    def __call__(self, carry: NTMState, inputs: jax.Array) -> tuple[NTMState, jax.Array]:
        carry, logits, _ = self.step(carry, inputs)
        return carry, logits


def sequence_mask(batch: int, steps: int, lengths=None, mask=None) -> jax.Array:
    """A [B,T] float mask from `lengths[B]` or a given `mask[B,T]` (all ones if neither)."""
    if lengths is not None and mask is not None:
        raise ValueError("give either lengths or mask, not both")
    if lengths is not None:
        lengths = jnp.asarray(lengths)
        if lengths.shape != (batch,):
            raise ValueError(f"lengths must have shape ({batch},), got {tuple(lengths.shape)}")
        return (jnp.arange(steps)[None, :] < lengths[:, None]).astype(jnp.float32)
    if mask is not None:
        mask = jnp.asarray(mask)
        if mask.shape != (batch, steps):
            raise ValueError(f"mask must have shape ({batch}, {steps}), got {tuple(mask.shape)}")
        return mask.astype(jnp.float32)
    return jnp.ones((batch, steps), jnp.float32)


def scan_cell(step_fn, carry, inputs: jax.Array, mask: jax.Array, freeze_carry: bool = True, remat: bool = False):
    """Run `step_fn(carry, x) -> (carry, y, extra)` over batch-first `inputs[B,T,D]` as one scan.

    Where `mask[B,T]` is 0 the output is zero and, with `freeze_carry`, the carry is left
    unchanged, so padded steps affect nothing. Without it the carry runs on through masked
    steps: correct for real outputs whenever padding only trails each sequence (`lengths`) and the
    final carry is not wanted, and it saves passes over the memory in every step and its gradient.
    With `remat`, each step's activations are recomputed in the backward pass instead of stored
    (`jax.checkpoint`), so gradient memory grows with T by the carry only.
    Returns (final carry, outputs [B,T,...], extras [B,T,...]).
    """

    def body(state, step_inputs):
        x_t, m_t = step_inputs
        new_state, y_t, extra = step_fn(state, x_t)

        def keep_real(new, old):
            m = m_t.reshape((-1,) + (1,) * (new.ndim - 1)).astype(new.dtype)
            return m * new + (1 - m) * old

        if freeze_carry:
            new_state = jax.tree.map(keep_real, new_state, state)
        y_t = y_t * m_t[:, None].astype(y_t.dtype)
        return new_state, (y_t, extra)

    time_major = (jnp.swapaxes(inputs, 0, 1), jnp.swapaxes(mask, 0, 1))
    if remat:
        body = jax.checkpoint(body)
    carry, (outputs, extras) = jax.lax.scan(body, carry, time_major)
    to_batch_first = lambda a: jnp.swapaxes(a, 0, 1)
    return carry, to_batch_first(outputs), jax.tree.map(to_batch_first, extras)


class SequenceModel(nnx.Module):
    """The batch-first sequence interface shared by the NTM, the DNC and the LSTM baseline.

    A subclass sets `self.config` (with `input_size`) and `display_name`, and implements
    `initial_state(batch, rngs)` and `step(carry, x[B,D]) -> (carry, logits[B,out], step trace)`.
    Calling the model: inputs [B,T,input_size] -> logits [B,T,output_size], with options
      initial_carry: start from this carry instead of `initial_state`.
      lengths [B] or mask [B,T]: padded steps change neither real outputs nor the final carry;
        their outputs are zero.
      return_carry: also return the final carry, as `(carry, logits)` like `nnx.RNN`.
      trace: also return the step traces stacked over time ([B,T,...]) as the last element.
      rngs: a key or nnx.Rngs for a random initial state (the NTM's `memory_init="random"`).
      remat: recompute each step in the backward pass rather than store it (long sequences).
    """

    display_name = "model"

    def initial_state(self, batch: int, rngs=None):
        raise NotImplementedError

    def step(self, carry, inputs):
        raise NotImplementedError

    def check_inputs(self, inputs: jax.Array) -> None:
        shape = tuple(getattr(inputs, "shape", ()))
        if len(shape) != 3 or shape[-1] != self.config.input_size:
            raise ValueError(
                f"{self.display_name} inputs must have shape [batch, time, {self.config.input_size}], got {shape}"
            )
        if shape[0] < 1 or shape[1] < 1:
            raise ValueError(f"{self.display_name} inputs need at least one sequence and one step, got {shape}")

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
        self.check_inputs(inputs)
        batch, steps, _ = inputs.shape
        step_mask = sequence_mask(batch, steps, lengths, mask)
        if initial_carry is None:
            initial_carry = self.initial_state(batch, rngs)
        if trace:
            step_fn = self.step
        else:  # the unused trace is dead code in the scan body, so nothing is stacked for nothing
            step_fn = lambda c, x: self.step(c, x)[:2] + ((),)
        freeze = return_carry or mask is not None
        carry, logits, step_traces = scan_cell(step_fn, initial_carry, inputs, step_mask, freeze, remat)
        result = (carry, logits) if return_carry else (logits,)
        if trace:
            result = result + (step_traces,)
        return result[0] if len(result) == 1 else result


class NTM(SequenceModel):
    """The NTM sequence layer: inputs [B,T,input_size] -> logits [B,T,output_size].

    Call options are those of `SequenceModel`; the carry is an `NTMState` and the trace an
    `NTMStepTrace`.
    """

    display_name = "NTM"

    def __init__(self, config: NTMConfig, *, rngs: nnx.Rngs, controller: nnx.Module | None = None):
        self.config = config
        self.cell = NTMCell(config, rngs=rngs, controller=controller)

    def initial_state(self, batch: int, rngs=None) -> NTMState:
        return self.cell.initialize_carry((batch, self.config.input_size), rngs)

    def step(self, carry: NTMState, inputs: jax.Array):
        return self.cell.step(carry, inputs)


def count_params(model: nnx.Module) -> int:
    """Number of trainable scalars (nnx.Param) in a model."""
    state = nnx.state(model, nnx.Param)
    return int(sum(leaf.size for leaf in jax.tree.leaves(state)))
