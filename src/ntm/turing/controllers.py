"""Controllers of the NTM: a stacked LSTM, a feedforward network, and the contract a user's own meets.

A controller is any `flax.nnx.Module` with
  - `output_size: int`, the width of its output,
  - `initialize_state(batch_size) -> state` (any pytree; `()` for a stateless controller),
  - `__call__(state, inputs[B, input_size]) -> (state, outputs[B, output_size])`.
The NTM feeds it the external input concatenated with the previous read vectors, so its
input size is `NTMConfig.controller_input_size` (`input_size + read_heads * memory_width`); its
output may have any width, since the heads and the output layer are sized from `output_size`.
The state it returns must have the structure, shapes and dtypes of the state it was given (the
NTM runs it inside `lax.scan`). `check_controller` tests all of this on shapes only, when the NTM
is built, so a wrong controller fails there and not at the first call.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

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

    def __init__(self, input_size: int, units: int, *, rngs: nnx.Rngs, dtype=jnp.float32,
                 param_dtype=jnp.float32):
        self.units = units
        self.input_size = input_size
        self.dtype = dtype

        def bias_init(key, shape, dtype):  # gates: i, f, g, o
            return jnp.zeros(shape, dtype).at[units : 2 * units].set(1.0)

        self.gates = nnx.Linear(
            input_size + units,
            4 * units,
            kernel_init=nnx.initializers.glorot_uniform(),
            bias_init=bias_init,
            dtype=dtype,
            param_dtype=param_dtype,
            rngs=rngs,
        )

    def initialize_state(self, batch_size: int) -> tuple[jax.Array, jax.Array]:
        zeros = jnp.zeros((batch_size, self.units), self.dtype)
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

    def __init__(self, input_size: int, units: int, layers: int = 1, *, rngs: nnx.Rngs, dtype=jnp.float32,
                 param_dtype=jnp.float32):
        sizes = [input_size] + [units] * (layers - 1)
        self.layers = nnx.List(
            [LSTMLayer(size, units, rngs=rngs, dtype=dtype, param_dtype=param_dtype) for size in sizes]
        )
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
        self, input_size: int, units: int, layers: int = 1, activation: str = "tanh", *, rngs: nnx.Rngs,
        dtype=jnp.float32, param_dtype=jnp.float32,
    ):
        sizes = [input_size] + [units] * layers
        self.layers = nnx.List(
            [nnx.Linear(a, b, dtype=dtype, param_dtype=param_dtype, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])]
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
    dtypes = dict(dtype=jnp.dtype(config.dtype), param_dtype=jnp.dtype(config.param_dtype))
    if config.controller == "lstm":
        return LSTMController(
            config.controller_input_size, config.controller_units, config.controller_layers, rngs=rngs, **dtypes
        )
    return FeedforwardController(
        config.controller_input_size,
        config.controller_units,
        config.controller_layers,
        config.controller_activation,
        rngs=rngs,
        **dtypes,
    )


def describe_shapes(tree: Any) -> str:
    """'((2, 16) float32, (2, 16) float32)': a pytree of arrays or shape structs, for messages."""
    text = jax.tree.map(lambda leaf: f"{tuple(leaf.shape)} {np.dtype(leaf.dtype).name}", tree)
    return str(text).replace("'", "")


def check_controller(controller: nnx.Module, input_size: int, dtype=jnp.float32) -> None:
    """ValueError unless `controller` meets the contract above for inputs [B, input_size].

    Runs `initialize_state` and one call under `jax.eval_shape` (shapes only, no arithmetic), on a
    copy of the module (`nnx.split`/`nnx.merge`), so nothing in the controller changes.
    """
    output_size = getattr(controller, "output_size", None)
    if not isinstance(controller, Controller) or isinstance(output_size, bool) or not isinstance(
        output_size, (int, np.integer)
    ):
        raise ValueError(
            "controller must be an nnx.Module with an int `output_size`, "
            "`initialize_state(batch_size)` and `__call__(state, inputs) -> (state, outputs)`"
        )
    name = type(controller).__name__
    batch = 2  # two, so a controller that drops or mixes up the batch axis is caught
    graphdef, module_state = nnx.split(controller)

    def one_step(module_state, inputs):
        module = nnx.merge(graphdef, module_state)
        state = module.initialize_state(batch)
        return state, module(state, inputs)

    inputs = jax.ShapeDtypeStruct((batch, input_size), jnp.dtype(dtype))
    try:
        state, result = jax.eval_shape(one_step, module_state, inputs)
    except Exception as error:  # whatever the user's code raises, say where it came from
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        raise ValueError(
            f"controller {name} failed on inputs of shape {(batch, input_size)} (the NTM's input plus "
            f"its previous reads: NTMConfig.controller_input_size): {type(error).__name__}: {first_line}"
        ) from error
    if not isinstance(result, tuple) or len(result) != 2:
        raise ValueError(f"controller {name} must return (state, outputs), got {describe_shapes(result)}")
    new_state, outputs = result
    if getattr(outputs, "shape", None) != (batch, output_size):
        raise ValueError(
            f"controller {name} must return outputs of shape (batch, output_size) = {(batch, int(output_size))} "
            f"for inputs {(batch, input_size)}, got {describe_shapes(outputs)}"
        )
    same_structure = jax.tree.structure(new_state) == jax.tree.structure(state)
    if not same_structure or any(
        (a.shape, a.dtype) != (b.shape, b.dtype) for a, b in zip(jax.tree.leaves(new_state), jax.tree.leaves(state))
    ):
        raise ValueError(
            f"controller {name} must return a state like the one initialize_state gives "
            f"({describe_shapes(state)}), got {describe_shapes(new_state)}"
        )
