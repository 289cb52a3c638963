"""NTMConfig: every size and choice of a Neural Turing Machine in one validated, frozen dataclass.

Defaults are the paper's copy-task machine (memory 128 x 20, one LSTM controller layer of 100
units, one read and one write head, shifts of -1, 0, +1) with the stabilising choices of
Collier & Beel 2018 (constant memory init of 1e-6, controller outputs clipped to +-20, fixed
initial weightings and reads).
"""

from __future__ import annotations

import dataclasses
from typing import Any

CONTROLLERS = ("lstm", "feedforward")
MEMORY_INITS = ("constant", "random", "learned")
ACTIVATIONS = ("tanh", "relu", "sigmoid", "gelu", "identity")


def _check_positive_int(name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")


def check_clip_value(value: Any) -> None:
    """A clip value is a positive finite number, or None for no clipping."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise ValueError(f"clip_value must be a positive number or None, got {value!r}")


class DictConfig:
    """`to_dict` / `from_dict` / `replace` for frozen config dataclasses; unknown fields are an error."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]):
        unknown = sorted(set(values) - {field.name for field in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields: {', '.join(unknown)}")
        return cls(**values)

    def replace(self, **changes: Any):
        return dataclasses.replace(self, **changes)

    def check_positive_ints(self, *names: str, minimum: int = 1) -> None:
        """ValueError naming the first of these fields that is not an integer >= minimum."""
        for name in names:
            _check_positive_int(name, getattr(self, name), minimum)


@dataclasses.dataclass(frozen=True)
class NTMConfig(DictConfig):
    """Sizes and choices of an NTM. Bad values raise ValueError naming the field."""

    input_size: int
    output_size: int
    memory_slots: int = 128
    memory_width: int = 20
    read_heads: int = 1
    write_heads: int = 1
    shift_range: int = 3
    controller: str = "lstm"
    controller_layers: int = 1
    controller_units: int = 100
    controller_activation: str = "tanh"
    memory_init: str = "constant"
    memory_init_value: float = 1e-6
    learn_initial_weights: bool = False
    learn_initial_reads: bool = False
    clip_value: float | None = 20.0

    def __post_init__(self) -> None:
        self.check_positive_ints("input_size", "output_size", "memory_slots", "memory_width", "read_heads",
                                 "write_heads", "shift_range")
        if self.shift_range % 2 != 1:
            raise ValueError(f"shift_range must be odd (centred shifts), got {self.shift_range}")
        if self.shift_range > self.memory_slots:
            raise ValueError(
                f"shift_range must be at most memory_slots ({self.memory_slots}), "
                f"got {self.shift_range}"
            )
        _check_choice("controller", self.controller, CONTROLLERS)
        self.check_positive_ints("controller_layers", "controller_units")
        _check_choice("controller_activation", self.controller_activation, ACTIVATIONS)
        _check_choice("memory_init", self.memory_init, MEMORY_INITS)
        if isinstance(self.memory_init_value, bool) or not isinstance(
            self.memory_init_value, (int, float)
        ):
            raise ValueError(f"memory_init_value must be a number, got {self.memory_init_value!r}")
        if not abs(self.memory_init_value) < float("inf"):
            raise ValueError(f"memory_init_value must be finite, got {self.memory_init_value!r}")
        _check_bool("learn_initial_weights", self.learn_initial_weights)
        _check_bool("learn_initial_reads", self.learn_initial_reads)
        check_clip_value(self.clip_value)

    @property
    def head_parameter_size(self) -> int:
        """Per step: keys, strengths, gates, shifts, gammas for all heads; erase and add for writers."""
        per_head = self.memory_width + 1 + 1 + self.shift_range + 1
        return (self.read_heads + self.write_heads) * per_head + self.write_heads * 2 * self.memory_width
