"""The Neural Turing Machine as a Flax NNX recurrent cell (`NTMCell`) and a sequence layer (`NTM`).

One step: the controller sees the input and the previous reads; the heads emit addressing
parameters; every head addresses the previous memory; reads come from the previous memory;
then all writes (erase, then add) produce the new memory; the output layer sees the controller
output and the new reads. `NTM` runs the cell over a batch-first sequence as one `lax.scan`,
with masks for padded batches and an optional per-step trace for pictures.

With `NTMConfig.address_size = A > 0` the memory is addressable (Dynamic NTM, Gulcehre et al.
2016): the cell holds a trainable address per slot, `addresses` [N,A], keys are [B,H,A+M], and
content lookups match them against the rows [a_n ; M_n] (see `ntm.fused` for the maths); reads,
erases and adds see the content M [B,N,M] only, so the addresses change by training alone.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from ntm.sequence import SequenceModel, check_dtype_available
from ntm.turing import addressing, fused, memory as memory_ops
from ntm.turing.config import USER_CONTROLLER_PREFIX, NTMConfig
from ntm.turing.controllers import build_controller, check_controller
from ntm.turing.heads import NTMHeads

# Truncated-normal scale of `memory_init="random"`, as in Collier & Beel's random scheme.
RANDOM_MEMORY_STDDEV = 0.5
# Learned initial weightings start as a near one-hot on slot 0 (softmax of these logits).
LEARNED_WEIGHT_LOGIT = 10.0
# Normal scale of the slots' addresses at initialisation (`address_size > 0`): distinct random
# addresses let lookups tell slots apart from the first step, at about the size of the tanh-squashed
# values that adds write into the content.
ADDRESS_INIT_STDDEV = 0.5


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
    `ntm.turing.controllers.Controller`: it receives [B, config.controller_input_size] (the input and
    the previous reads) and returns outputs [B, controller.output_size]. It is checked on shapes
    when the cell is built, and the cell's `config.controller` records its class
    ("user:<module>.<class>") so that a saved config does not claim a built-in controller.
    With `memory_init="random"` the cell keeps its own random stream (`memory_rngs`, an
    `nnx.Rngs` forked from `rngs`) and draws from it when `initialize_carry` gets no `rngs`.
    """

    def __init__(self, config: NTMConfig, *, rngs: nnx.Rngs, controller: nnx.Module | None = None):
        if not isinstance(config, NTMConfig):
            raise ValueError(f"config must be an NTMConfig, got {type(config).__name__}")
        check_dtype_available(config)
        dtype, param_dtype = jnp.dtype(config.dtype), jnp.dtype(config.param_dtype)
        if controller is None:
            if config.user_controller:
                raise ValueError(
                    f"config.controller is {config.controller!r}: a user controller; pass that module as "
                    "controller= (or set controller to 'lstm' or 'feedforward')"
                )
            controller = build_controller(config, rngs=rngs)
        else:
            check_controller(controller, config.controller_input_size, dtype)
            kind = type(controller)
            config = config.replace(controller=f"{USER_CONTROLLER_PREFIX}{kind.__module__}.{kind.__qualname__}")
        self.config = config
        self.dtype = dtype
        self.controller = controller
        controller_size = int(controller.output_size)
        self.heads = NTMHeads(controller_size, config, rngs=rngs)
        reads_size = config.read_heads * config.memory_width
        self.output = nnx.Linear(
            controller_size + reads_size, config.output_size, dtype=dtype, param_dtype=param_dtype, rngs=rngs
        )
        n, m = config.memory_slots, config.memory_width
        if config.memory_init == "learned":
            self.initial_memory = nnx.Param(jnp.full((n, m), config.memory_init_value, param_dtype))
        if config.memory_init == "random":
            self.memory_rngs = rngs.fork()
        if config.learn_initial_weights:
            logits = jnp.zeros((config.read_heads + config.write_heads, n), param_dtype).at[:, 0].set(
                LEARNED_WEIGHT_LOGIT
            )
            self.initial_weight_logits = nnx.Param(logits)
        if config.learn_initial_reads:
            self.initial_reads = nnx.Param(jnp.full((config.read_heads, m), config.memory_init_value, param_dtype))
        if config.address_size:
            # Drawn last, so a model without addresses initialises exactly as before they existed.
            self.addresses = nnx.Param(ADDRESS_INIT_STDDEV * jax.random.normal(
                rngs.params(), (n, config.address_size), param_dtype))

    @property
    def num_feature_axes(self) -> int:
        return 1

    def initialize_carry(self, input_shape: tuple[int, ...], rngs: nnx.Rngs | None = None, carry_init=None) -> NTMState:
        """The state before the first step, for inputs of shape `(B, input_size)`, in `config.dtype`.

        `rngs` (an nnx.Rngs or a key) is used only by `memory_init="random"`, which draws a fresh
        memory each time; without it the cell's own stream `memory_rngs` is drawn from. (Inside a
        pure function that merges the model anew on every call, that stream starts from the same
        state each time, so pass `rngs` there for fresh draws.)
        """
        if len(input_shape) != 2:
            raise ValueError(f"input_shape must be (batch, input_size), got {tuple(input_shape)}")
        cfg = self.config
        batch = input_shape[0]
        if batch < 1:
            raise ValueError(f"NTMCell needs a batch of at least one sequence, got input shape {tuple(input_shape)}")
        n, m = cfg.memory_slots, cfg.memory_width
        dtype = self.dtype
        if cfg.memory_init == "constant":
            mem = jnp.full((batch, n, m), cfg.memory_init_value, dtype)
        elif cfg.memory_init == "learned":
            mem = jnp.broadcast_to(self.initial_memory[...].astype(dtype), (batch, n, m))
        else:
            if rngs is None:
                rngs = self.memory_rngs
            key = rngs() if isinstance(rngs, (nnx.Rngs, nnx.RngStream)) else rngs
            mem = RANDOM_MEMORY_STDDEV * jax.random.truncated_normal(key, -2.0, 2.0, (batch, n, m), dtype)
        heads = cfg.read_heads + cfg.write_heads
        if cfg.learn_initial_weights:
            weights = jax.nn.softmax(self.initial_weight_logits[...].astype(dtype), axis=-1)
            weights = jnp.broadcast_to(weights, (batch, heads, n))
        else:
            weights = memory_ops.one_hot_weights(batch, heads, n, dtype)
        read_weights, write_weights = weights[:, : cfg.read_heads], weights[:, cfg.read_heads :]
        if cfg.learn_initial_reads:
            reads = jnp.broadcast_to(self.initial_reads[...].astype(dtype), (batch, cfg.read_heads, m))
        else:
            reads = memory_ops.read(mem, read_weights)
        return NTMState(mem, read_weights, write_weights, reads, self.controller.initialize_state(batch))

    def check_step(self, carry: NTMState, inputs: jax.Array) -> None:
        """ValueError, before any JAX op, for inputs or a carry that do not fit this cell."""
        shape = tuple(getattr(inputs, "shape", ()))
        if len(shape) != 2 or shape[1] != self.config.input_size:
            raise ValueError(f"NTMCell inputs must have shape [batch, {self.config.input_size}], got {shape}")
        if shape[0] < 1:
            raise ValueError(f"NTMCell needs a batch of at least one sequence, got inputs of shape {shape}")
        if not isinstance(carry, NTMState):
            raise ValueError(f"NTMCell carry must be an NTMState (from initialize_carry), got {type(carry).__name__}")
        if carry.memory.shape[0] != shape[0]:
            raise ValueError(
                f"the carry holds {carry.memory.shape[0]} sequences but the inputs {shape[0]}; "
                "make the carry with initialize_carry for this batch size"
            )

    def step(self, carry: NTMState, inputs: jax.Array) -> tuple[NTMState, jax.Array, NTMStepTrace]:
        """One step with its trace: (carry, x[B,D]) -> (carry, logits[B,out], NTMStepTrace)."""
        return self.step_in_layout(carry, inputs, slots_last=False)

    def step_in_layout(self, carry: NTMState, inputs: jax.Array, slots_last: bool):
        """`step` on a carry whose memory is [B,M,N] if `slots_last` (the fused memory step only).

        `NTM` keeps the memory slots-last inside its scan: the fused step's lookups and reads then
        run along contiguous slots (training steps about 1.3x faster than slots first on a CPU).
        The trace's memory is [B,N,M] either way.
        """
        self.check_step(carry, inputs)
        cfg = self.config
        if slots_last and cfg.memory_step != "fused":
            raise ValueError('a slots-last memory needs memory_step="fused"')
        batch = inputs.shape[0]
        inputs = inputs.astype(self.dtype)
        controller_input = jnp.concatenate([inputs, carry.reads.reshape(batch, -1)], axis=-1)
        controller_state, hidden = self.controller(carry.controller, controller_input)
        if cfg.clip_value is not None:
            hidden = jnp.clip(hidden, -cfg.clip_value, cfg.clip_value)
        params, vectors = self.heads(hidden)
        previous = jnp.concatenate([carry.read_weights, carry.write_weights], axis=1)
        addresses = self.addresses[...].astype(self.dtype) if cfg.address_size else None
        if cfg.memory_step == "fused":
            weights, reads, new_memory = fused.memory_step(carry.memory, previous, *params, vectors.erase, vectors.add,
                                                           read_heads=cfg.read_heads, slots_last=slots_last,
                                                           addresses=addresses)
            read_weights, write_weights = weights[:, : cfg.read_heads], weights[:, cfg.read_heads :]
        else:
            with jax.named_scope("memory_step"):  # as the fused step's, for profiles
                weights = addressing.address(fused.lookup_rows(carry.memory, addresses), previous, *params)
                read_weights, write_weights = weights[:, : cfg.read_heads], weights[:, cfg.read_heads :]
                reads = memory_ops.read(carry.memory, read_weights)
                new_memory = memory_ops.write(carry.memory, write_weights, vectors.erase, vectors.add)
        logits = self.output(jnp.concatenate([hidden, reads.reshape(batch, -1)], axis=-1))
        if cfg.clip_value is not None:
            logits = jnp.clip(logits, -cfg.clip_value, cfg.clip_value)
        state = NTMState(new_memory, read_weights, write_weights, reads, controller_state)
        trace_memory = jnp.swapaxes(new_memory, 1, 2) if slots_last else new_memory  # dead code unless traced
        trace = NTMStepTrace(read_weights, write_weights, reads, vectors.erase, vectors.add, trace_memory)
        return state, logits, trace

    def __call__(self, carry: NTMState, inputs: jax.Array) -> tuple[NTMState, jax.Array]:
        carry, logits, _ = self.step(carry, inputs)
        return carry, logits


class NTM(SequenceModel):
    """The NTM sequence layer: inputs [B,T,input_size] -> logits [B,T,output_size], one `lax.scan`.

    `NTM(config, rngs=nnx.Rngs(0), controller=None)`; `controller` is a user's own controller
    module (see `NTMCell`), and then `model.config.controller` records its class.

    `model(inputs, *, initial_carry=None, lengths=None, mask=None, return_carry=False, trace=False,
    rngs=None, remat=False)`:
      initial_carry: an `NTMState` to start from (e.g. the carry a previous call returned).
      lengths [B] or mask [B,T]: the real steps; padded steps touch neither the real outputs, the
        carry nor the gradients (NaN included); their outputs and trace entries are zero. Concrete
        values are checked (whole lengths in [0, T], masks of 0/1); under jit they are not.
      return_carry: also return the final `NTMState`, as `(carry, logits)`.
      trace: also return an `NTMStepTrace` stacked over time ([B,T,...]) as the last element.
      rngs: a key or nnx.Rngs for `memory_init="random"`; without it the layer's own stream is used.
      remat: recompute each step in the backward pass instead of storing it (long sequences).
    Computation, carry and logits are in `config.dtype`; parameters in `config.param_dtype`.
    """

    display_name = "NTM"

    def __init__(self, config: NTMConfig, *, rngs: nnx.Rngs, controller: nnx.Module | None = None):
        self.cell = NTMCell(config, rngs=rngs, controller=controller)
        self.config = self.cell.config  # records a user controller, as the cell does

    def initial_state(self, batch: int, rngs=None) -> NTMState:
        """The `NTMState` before the first step for `batch` sequences (see `NTMCell.initialize_carry`)."""
        return self.cell.initialize_carry((batch, self.config.input_size), rngs)

    def step(self, carry: NTMState, inputs: jax.Array):
        """One step: (NTMState, x[B,input_size]) -> (NTMState, logits[B,output_size], NTMStepTrace)."""
        return self.cell.step(carry, inputs)

    # With the fused memory step the scan holds the memory slots-last ([B,M,N]); the carry a caller
    # gives or gets back is [B,N,M] either way.
    def _slots_last(self) -> bool:
        return self.config.memory_step == "fused"

    def to_scan_carry(self, carry: NTMState) -> NTMState:
        return carry._replace(memory=jnp.swapaxes(carry.memory, 1, 2)) if self._slots_last() else carry

    def scan_step(self, carry: NTMState, inputs: jax.Array):
        return self.cell.step_in_layout(carry, inputs, self._slots_last())

    def from_scan_carry(self, carry: NTMState) -> NTMState:
        return self.to_scan_carry(carry)  # the swap is its own inverse
