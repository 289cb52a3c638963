"""The Differentiable Neural Computer as a Flax NNX recurrent cell (`DNCCell`) and a sequence layer (`DNC`).

One step, in the paper's order (Graves et al. 2016, Methods): the LSTM controller sees the input
and the previous reads and emits the interface vector; usage is updated from the previous write
and read weightings and the free gates; the write weighting mixes allocation (from the sorted
usage) and content lookup on the previous memory; memory is erased then added to; the temporal
link matrix and precedence are updated; each read head mixes backward, content (on the new
memory) and forward weightings by its read modes and reads the new memory; the output layer
sees the controller output and the new reads. `DNC` runs the cell over a batch-first sequence
through `ntm.sequence.SequenceModel`, with the same masking, carry and trace options as `ntm.NTM`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from ntm.dnc import addressing as dnc_addressing
from ntm.dnc.config import DNCConfig
from ntm.sequence import SequenceModel, check_dtype_available
from ntm.turing import addressing, memory as memory_ops
from ntm.turing.controllers import LSTMController


class DNCState(NamedTuple):
    """The carry of a DNC between steps."""

    memory: jax.Array  # [B,N,M]
    usage: jax.Array  # [B,N]
    link: jax.Array  # [B,W,N,N]
    precedence: jax.Array  # [B,W,N]
    read_weights: jax.Array  # [B,R,N]
    write_weights: jax.Array  # [B,W,N]
    reads: jax.Array  # [B,R,M]
    controller: Any  # the LSTM controller's state pytree


class DNCStepTrace(NamedTuple):
    """What one step did, for pictures; stacked over time by `DNC(trace=True)` as [B,T,...].

    The first six fields have the names and shapes of `ntm.NTMStepTrace`, so the same plots
    draw both models.
    """

    read_weights: jax.Array  # [B,R,N]
    write_weights: jax.Array  # [B,W,N]
    reads: jax.Array  # [B,R,M]
    erase: jax.Array  # [B,W,M]
    add: jax.Array  # [B,W,M]
    memory: jax.Array  # [B,N,M], after this step's write
    usage: jax.Array  # [B,N], the usage this step allocated from
    allocation: jax.Array  # [B,N]
    read_modes: jax.Array  # [B,R,3]: backward, content, forward
    free_gates: jax.Array  # [B,R]
    allocation_gates: jax.Array  # [B,W]
    write_gates: jax.Array  # [B,W]
    link: jax.Array  # [B,W,N,N], after this step's write


class DNCInterface(NamedTuple):
    """The interface vector of one step, split and squashed into range as in the paper."""

    read_keys: jax.Array  # [B,R,M]
    read_strengths: jax.Array  # [B,R], >= 1
    write_keys: jax.Array  # [B,W,M]
    write_strengths: jax.Array  # [B,W], >= 1
    erase: jax.Array  # [B,W,M], in (0, 1)
    add: jax.Array  # [B,W,M], the write vector
    free_gates: jax.Array  # [B,R], in (0, 1)
    allocation_gates: jax.Array  # [B,W], in (0, 1)
    write_gates: jax.Array  # [B,W], in (0, 1)
    read_modes: jax.Array  # [B,R,2W+1], rows sum to 1


def oneplus(x: jax.Array) -> jax.Array:
    """1 + softplus(x): the paper's map of key strengths into [1, inf)."""
    return 1.0 + jax.nn.softplus(x)


def split_interface(raw: jax.Array, config: DNCConfig) -> DNCInterface:
    """Slice a raw interface vector [B, config.interface_size] and squash each part into range."""
    batch = raw.shape[0]
    r, w, m = config.read_heads, config.write_heads, config.memory_width
    sizes = [r * m, r, w * m, w, w * m, w * m, r, w, w, r * (2 * w + 1)]
    offsets = [0]
    for size in sizes:
        offsets.append(offsets[-1] + size)
    parts = [raw[:, start:end] for start, end in zip(offsets[:-1], offsets[1:])]
    read_keys, read_strengths, write_keys, write_strengths, erase, add, free, alloc, gate, modes = parts
    return DNCInterface(
        read_keys=read_keys.reshape(batch, r, m),
        read_strengths=oneplus(read_strengths),
        write_keys=write_keys.reshape(batch, w, m),
        write_strengths=oneplus(write_strengths),
        erase=jax.nn.sigmoid(erase.reshape(batch, w, m)),
        add=add.reshape(batch, w, m),
        free_gates=jax.nn.sigmoid(free),
        allocation_gates=jax.nn.sigmoid(alloc),
        write_gates=jax.nn.sigmoid(gate),
        read_modes=jax.nn.softmax(modes.reshape(batch, r, 2 * w + 1), axis=-1),
    )


class DNCCell(nnx.RNNCellBase):
    """One DNC step: `(carry, x[B, input_size]) -> (carry, logits[B, output_size])`.

    The controller is `ntm.turing.controllers.LSTMController` on [x, previous reads]; one linear layer
    emits the interface vector; the output layer sees [controller output, new reads]. The
    controller output and the raw interface vector are clipped to +-clip_value, like the NTM.
    """

    def __init__(self, config: DNCConfig, *, rngs: nnx.Rngs):
        if not isinstance(config, DNCConfig):
            raise ValueError(f"config must be a DNCConfig, got {type(config).__name__}")
        check_dtype_available(config)
        self.config = config
        self.dtype = jnp.dtype(config.dtype)
        dtypes = dict(dtype=self.dtype, param_dtype=jnp.dtype(config.param_dtype))
        reads_size = config.read_heads * config.memory_width
        self.controller = LSTMController(
            config.input_size + reads_size, config.controller_units, config.controller_layers, rngs=rngs, **dtypes
        )
        self.interface = nnx.Linear(config.controller_units, config.interface_size, rngs=rngs, **dtypes)
        self.output = nnx.Linear(config.controller_units + reads_size, config.output_size, rngs=rngs, **dtypes)

    @property
    def num_feature_axes(self) -> int:
        return 1

    def initialize_carry(
        self, input_shape: tuple[int, ...], rngs: nnx.Rngs | None = None, carry_init=None
    ) -> DNCState:
        """The state before the first step, for inputs of shape `(B, input_size)`: all zeros in
        `config.dtype`, as in the paper (empty memory, nothing used, no links, no reads). `rngs` is unused."""
        if len(input_shape) != 2:
            raise ValueError(f"input_shape must be (batch, input_size), got {tuple(input_shape)}")
        cfg = self.config
        batch = input_shape[0]
        if batch < 1:
            raise ValueError(f"DNCCell needs a batch of at least one sequence, got input shape {tuple(input_shape)}")
        n, m, r, w = cfg.memory_slots, cfg.memory_width, cfg.read_heads, cfg.write_heads
        zeros = lambda *shape: jnp.zeros((batch,) + shape, self.dtype)
        return DNCState(
            memory=zeros(n, m),
            usage=zeros(n),
            link=zeros(w, n, n),
            precedence=zeros(w, n),
            read_weights=zeros(r, n),
            write_weights=zeros(w, n),
            reads=zeros(r, m),
            controller=self.controller.initialize_state(batch),
        )

    def step(self, carry: DNCState, inputs: jax.Array) -> tuple[DNCState, jax.Array, DNCStepTrace]:
        """One step with its trace: (carry, x[B,D]) -> (carry, logits[B,out], DNCStepTrace)."""
        self.check_step(carry, inputs)
        cfg = self.config
        batch = inputs.shape[0]
        inputs = inputs.astype(self.dtype)
        controller_input = jnp.concatenate([inputs, carry.reads.reshape(batch, -1)], axis=-1)
        controller_state, hidden = self.controller(carry.controller, controller_input)
        hidden = self.clip(hidden)
        iface = split_interface(self.clip(self.interface(hidden)), cfg)

        usage = dnc_addressing.update_usage(
            carry.usage, carry.write_weights, iface.free_gates, carry.read_weights
        )
        allocation = dnc_addressing.allocation_weights(usage)
        write_content = addressing.content_weights(carry.memory, iface.write_keys, iface.write_strengths)
        write_weights = dnc_addressing.write_weights(
            write_content, allocation[:, None, :], iface.allocation_gates, iface.write_gates
        )
        memory = memory_ops.write(carry.memory, write_weights, iface.erase, iface.add)
        link = dnc_addressing.update_link(carry.link, carry.precedence, write_weights)
        precedence = dnc_addressing.update_precedence(carry.precedence, write_weights)

        read_content = addressing.content_weights(memory, iface.read_keys, iface.read_strengths)
        forward = dnc_addressing.forward_weights(link, carry.read_weights)
        backward = dnc_addressing.backward_weights(link, carry.read_weights)
        read_weights = dnc_addressing.read_weights(read_content, forward, backward, iface.read_modes)
        reads = memory_ops.read(memory, read_weights)

        logits = self.clip(self.output(jnp.concatenate([hidden, reads.reshape(batch, -1)], axis=-1)))
        state = DNCState(
            memory, usage, link, precedence, read_weights, write_weights, reads, controller_state
        )
        trace = DNCStepTrace(
            read_weights, write_weights, reads, iface.erase, iface.add, memory, usage, allocation,
            iface.read_modes, iface.free_gates, iface.allocation_gates, iface.write_gates, link,
        )
        return state, logits, trace

    def check_step(self, carry: DNCState, inputs: jax.Array) -> None:
        """ValueError, before any JAX op, for inputs or a carry that do not fit this cell."""
        shape = tuple(getattr(inputs, "shape", ()))
        if len(shape) != 2 or shape[1] != self.config.input_size:
            raise ValueError(f"DNCCell inputs must have shape [batch, {self.config.input_size}], got {shape}")
        if shape[0] < 1:
            raise ValueError(f"DNCCell needs a batch of at least one sequence, got inputs of shape {shape}")
        if not isinstance(carry, DNCState):
            raise ValueError(f"DNCCell carry must be a DNCState (from initialize_carry), got {type(carry).__name__}")
        if carry.memory.shape[0] != shape[0]:
            raise ValueError(
                f"the carry holds {carry.memory.shape[0]} sequences but the inputs {shape[0]}; "
                "make the carry with initialize_carry for this batch size"
            )

    def clip(self, values: jax.Array) -> jax.Array:
        if self.config.clip_value is None:
            return values
        return jnp.clip(values, -self.config.clip_value, self.config.clip_value)

    def __call__(self, carry: DNCState, inputs: jax.Array) -> tuple[DNCState, jax.Array]:
        carry, logits, _ = self.step(carry, inputs)
        return carry, logits


class DNC(SequenceModel):
    """The DNC sequence layer: inputs [B,T,input_size] -> logits [B,T,output_size], one `lax.scan`.

    `model(inputs, *, initial_carry=None, lengths=None, mask=None, return_carry=False, trace=False,
    rngs=None, remat=False)`, as for `ntm.NTM` (see `SequenceModel.__call__`): the carry is a
    `DNCState`, the trace a `DNCStepTrace` (zero at padded steps); lengths/mask mark the real
    steps, and padded ones touch neither outputs, carry nor gradients. `rngs` is accepted for the
    common interface; the DNC's initial state is not random. Computation, carry and logits are in
    `config.dtype`; parameters in `config.param_dtype`.
    """

    display_name = "DNC"

    def __init__(self, config: DNCConfig, *, rngs: nnx.Rngs):
        self.config = config
        self.cell = DNCCell(config, rngs=rngs)

    def initial_state(self, batch: int, rngs=None) -> DNCState:
        """The all-zero `DNCState` before the first step for `batch` sequences."""
        return self.cell.initialize_carry((batch, self.config.input_size), rngs)

    def step(self, carry: DNCState, inputs: jax.Array):
        """One step: (DNCState, x[B,input_size]) -> (DNCState, logits[B,output_size], DNCStepTrace)."""
        return self.cell.step(carry, inputs)
