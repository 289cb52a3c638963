"""Controllers of the NTM: a stacked LSTM, a feedforward network, and the contract a user's own meets.

A controller is any `flax.nnx.Module` with
  - `output_size: int`, the width of its output,
  - `initialize_state(batch_size) -> state` (any pytree; `()` for a stateless controller),
  - `__call__(state, inputs[B, input_size]) -> (state, outputs[B, output_size])`.
The NTM feeds it the external input concatenated with the previous read vectors, so its
input size is `config.input_size + config.read_heads * config.memory_width`.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
from flax import nnx

ACTIVATION_FUNCTIONS = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "sigmoid": jax.nn.sigmoid,
    "gelu": jax.nn.gelu,
    "identity": lambda x: x,
}


@runtime_checkable
class Controller(Protocol):
    """What NTMCell needs of a controller (see the module docstring)."""

    output_size: int

    def initialize_state(self, batch_size: int) -> Any: ...

    def __call__(self, state: Any, inputs: jax.Array) -> tuple[Any, jax.Array]: ...


class LSTMLayer(nnx.Module):
    """One LSTM layer with a single fused matmul for the four gates.

    The forget-gate bias starts at 1 so early training remembers rather than forgets.
    state: (cell [B,U], hidden [B,U]).
    """

    def __init__(self, input_size: int, units: int, *, rngs: nnx.Rngs):
        self.units = units
        self.input_size = input_size
        bias = jnp.zeros((4 * units,)).at[units : 2 * units].set(1.0)  # gates: i, f, g, o
        self.gates = nnx.Linear(
            input_size + units,
            4 * units,
            kernel_init=nnx.initializers.glorot_uniform(),
            bias_init=lambda *_: bias,
            rngs=rngs,
        )

    def initialize_state(self, batch_size: int) -> tuple[jax.Array, jax.Array]:
        zeros = jnp.zeros((batch_size, self.units))
        return zeros, zeros

    def __call__(self, state, inputs):
        cell, hidden = state
        z = self.gates(jnp.concatenate([inputs, hidden], axis=-1))
        i, f, g, o = jnp.split(z, 4, axis=-1)
        cell = jax.nn.sigmoid(f) * cell + jax.nn.sigmoid(i) * jnp.tanh(g)
        hidden = jax.nn.sigmoid(o) * jnp.tanh(cell)
        return (cell, hidden), hidden


class LSTMController(nnx.Module):
    """A stack of LSTM layers; the output is the top layer's hidden state. state: tuple per layer."""

    def __init__(self, input_size: int, units: int, layers: int = 1, *, rngs: nnx.Rngs):
        sizes = [input_size] + [units] * (layers - 1)
        self.layers = nnx.List([LSTMLayer(size, units, rngs=rngs) for size in sizes])
        self.output_size = units

    def initialize_state(self, batch_size: int):
        return tuple(layer.initialize_state(batch_size) for layer in self.layers)

    def __call__(self, state, inputs):
        new_state = []
        h = inputs
        for layer, layer_state in zip(self.layers, state):
            layer_state, h = layer(layer_state, h)
            new_state.append(layer_state)
        return tuple(new_state), h


class FeedforwardController(nnx.Module):
    """A stack of dense layers with one activation; stateless (state is `()`)."""

    def __init__(
        self, input_size: int, units: int, layers: int = 1, activation: str = "tanh", *, rngs: nnx.Rngs
    ):
        sizes = [input_size] + [units] * layers
        self.layers = nnx.List(
            [nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])]
        )
        self.activation = activation
        self.output_size = units

    def initialize_state(self, batch_size: int):
        return ()

    def __call__(self, state, inputs):
        act = ACTIVATION_FUNCTIONS[self.activation]
        h = inputs
        for layer in self.layers:
            h = act(layer(h))
        return state, h


def build_controller(config, *, rngs: nnx.Rngs) -> nnx.Module:
    """The built-in controller named by `config.controller`, sized for the NTM's inputs and reads."""
    input_size = config.input_size + config.read_heads * config.memory_width
    if config.controller == "lstm":
        return LSTMController(input_size, config.controller_units, config.controller_layers, rngs=rngs)
    return FeedforwardController(
        input_size,
        config.controller_units,
        config.controller_layers,
        config.controller_activation,
        rngs=rngs,
    )
