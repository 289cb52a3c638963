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

from ntm.cell import SequenceModel
from ntm.config import DictConfig, check_clip_value
from ntm.controllers import LSTMController


@dataclasses.dataclass(frozen=True)
class LSTMConfig(DictConfig):
    """Sizes of the LSTM baseline. Bad values raise ValueError naming the field."""

    input_size: int
    output_size: int
    layers: int = 3
    units: int = 256
    clip_value: float | None = 20.0

    def __post_init__(self) -> None:
        self.check_positive_ints("input_size", "output_size", "layers", "units")
        check_clip_value(self.clip_value)


class LSTMStepTrace(NamedTuple):
    hidden: jax.Array  # [B,units], the top layer's output


class LSTMModel(SequenceModel):
    """Stacked LSTM: inputs [B,T,input_size] -> logits [B,T,output_size]; call options as `ntm.NTM`."""

    display_name = "LSTM"

    def __init__(self, config: LSTMConfig, *, rngs: nnx.Rngs):
        if not isinstance(config, LSTMConfig):
            raise ValueError(f"config must be an LSTMConfig, got {type(config).__name__}")
        self.config = config
        self.lstm = LSTMController(config.input_size, config.units, config.layers, rngs=rngs)
        self.output = nnx.Linear(config.units, config.output_size, rngs=rngs)

    def initial_state(self, batch: int, rngs=None):
        return self.lstm.initialize_state(batch)

    def step(self, carry, inputs):
        carry, hidden = self.lstm(carry, inputs)
        logits = self.output(hidden)
        if self.config.clip_value is not None:
            logits = jnp.clip(logits, -self.config.clip_value, self.config.clip_value)
        return carry, logits, LSTMStepTrace(hidden)
