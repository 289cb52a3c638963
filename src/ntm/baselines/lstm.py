"""The paper's LSTM baseline: a stacked LSTM with the same sequence interface as `ntm.NTM`.

Graves et al. 2014 compare the NTM with 3 layers of 256 units on copy; those are the defaults.
Masks, `initial_carry`, `return_carry` and `trace=True` behave as for the NTM (the trace holds
the top layer's hidden state per step; the LSTM has no memory to draw).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from ntm.cell import scan_cell, sequence_mask
from ntm.config import _check_positive_int
from ntm.controllers import LSTMController


@dataclasses.dataclass(frozen=True)
class LSTMConfig:
    """Sizes of the LSTM baseline. Bad values raise ValueError naming the field."""

    input_size: int
    output_size: int
    layers: int = 3
    units: int = 256
    clip_value: float | None = 20.0

    def __post_init__(self) -> None:
        for name in ("input_size", "output_size", "layers", "units"):
            _check_positive_int(name, getattr(self, name))
        if self.clip_value is not None and (
            isinstance(self.clip_value, bool)
            or not isinstance(self.clip_value, (int, float))
            or not 0 < self.clip_value < float("inf")
        ):
            raise ValueError(f"clip_value must be a positive number or None, got {self.clip_value!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "LSTMConfig":
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown LSTMConfig fields: {', '.join(unknown)}")
        return cls(**values)


class LSTMStepTrace(NamedTuple):
    hidden: jax.Array  # [B,units], the top layer's output


class LSTMModel(nnx.Module):
    """Stacked LSTM: inputs [B,T,input_size] -> logits [B,T,output_size]."""

    def __init__(self, config: LSTMConfig, *, rngs: nnx.Rngs):
        if not isinstance(config, LSTMConfig):
            raise ValueError(f"config must be an LSTMConfig, got {type(config).__name__}")
        self.config = config
        self.lstm = LSTMController(config.input_size, config.units, config.layers, rngs=rngs)
        self.output = nnx.Linear(config.units, config.output_size, rngs=rngs)

    def initialize_carry(self, batch_size: int):
        return self.lstm.initialize_state(batch_size)

    def step(self, carry, inputs):
        carry, hidden = self.lstm(carry, inputs)
        logits = self.output(hidden)
        if self.config.clip_value is not None:
            logits = jnp.clip(logits, -self.config.clip_value, self.config.clip_value)
        return carry, logits, LSTMStepTrace(hidden)

    def __call__(self, inputs, *, initial_carry=None, lengths=None, mask=None, return_carry=False, trace=False, rngs=None, remat=False):
        shape = tuple(getattr(inputs, "shape", ()))
        if len(shape) != 3 or shape[-1] != self.config.input_size or 0 in shape:
            raise ValueError(
                f"LSTM inputs must have shape [batch, time, {self.config.input_size}], got {shape}"
            )
        batch, steps, _ = shape
        step_mask = sequence_mask(batch, steps, lengths, mask)
        if initial_carry is None:
            initial_carry = self.initialize_carry(batch)
        step_fn = self.step if trace else (lambda c, x: self.step(c, x)[:2] + ((),))
        freeze = return_carry or mask is not None
        carry, logits, traces = scan_cell(step_fn, initial_carry, inputs, step_mask, freeze, remat)
        result = (carry, logits) if return_carry else (logits,)
        if trace:
            result = result + (traces,)
        return result[0] if len(result) == 1 else result
