"""The paper's LSTM baseline: a stacked LSTM with the same sequence interface as `ntm.NTM`.

Graves et al. 2014 compare the NTM with 3 layers of 256 units on copy; those are the defaults.
Masks, `initial_carry`, `return_carry` and `trace=True` behave as for the NTM (the trace holds
the top layer's hidden state per step; the LSTM has no memory to draw).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from ntm.dictconfig import CLIP_HELP, DTYPE_HELP, DTYPES, PARAM_DTYPE_HELP, DictConfig, option
from ntm.sequence import SequenceModel, check_dtype_available
from ntm.turing.controllers import LSTMController


@dataclasses.dataclass(frozen=True)
class LSTMConfig(DictConfig):
    """Sizes of the LSTM baseline. Bad values raise ValueError naming the field.

    `dtype` is the dtype of the computation, carry and outputs; `param_dtype` that of the parameters.
    """

    input_size: int
    output_size: int
    layers: int = option(3, "LSTM layers")
    units: int = option(256, "units per LSTM layer")
    clip_value: float | None = option(20.0, CLIP_HELP)
    dtype: str = option("float32", DTYPE_HELP, DTYPES)
    param_dtype: str = option("float32", PARAM_DTYPE_HELP, DTYPES)

    def __post_init__(self) -> None:
        self.check_positive_ints("input_size", "output_size", "layers", "units")
        self.normalize_clip_value()
        self.normalize_dtypes()


class LSTMStepTrace(NamedTuple):
    hidden: jax.Array  # [B,units], the top layer's output


class LSTMModel(SequenceModel):
    """Stacked LSTM: inputs [B,T,input_size] -> logits [B,T,output_size], one `lax.scan`.

    `model(inputs, *, initial_carry=None, lengths=None, mask=None, return_carry=False, trace=False,
    rngs=None, remat=False)`, as for `ntm.NTM` (see `SequenceModel.__call__`): the carry is a tuple
    of (cell, hidden) per layer, the trace an `LSTMStepTrace` (zero at padded steps); `rngs` is
    accepted for the common interface and unused.
    """

    display_name = "LSTM"

    def __init__(self, config: LSTMConfig, *, rngs: nnx.Rngs):
        if not isinstance(config, LSTMConfig):
            raise ValueError(f"config must be an LSTMConfig, got {type(config).__name__}")
        check_dtype_available(config)
        self.config = config
        dtypes = dict(dtype=jnp.dtype(config.dtype), param_dtype=jnp.dtype(config.param_dtype))
        self.lstm = LSTMController(config.input_size, config.units, config.layers, rngs=rngs, **dtypes)
        self.output = nnx.Linear(config.units, config.output_size, rngs=rngs, **dtypes)

    def initial_state(self, batch: int, rngs=None):
        """Zero (cell, hidden) of every layer for `batch` sequences."""
        return self.lstm.initialize_state(batch)

    def step(self, carry, inputs):
        """One step: (carry, x[B,input_size]) -> (carry, logits[B,output_size], LSTMStepTrace)."""
        carry, hidden = self.lstm(carry, inputs.astype(jnp.dtype(self.config.dtype)))
        logits = self.output(hidden)
        if self.config.clip_value is not None:
            logits = jnp.clip(logits, -self.config.clip_value, self.config.clip_value)
        return carry, logits, LSTMStepTrace(hidden)
