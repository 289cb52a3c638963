"""DNCConfig: every size of a Differentiable Neural Computer in one validated, frozen dataclass.

Defaults sit near `NTMConfig`'s copy machine so the two models compare at a similar size:
32 slots of width 20 (enough for a length-20 copy), one read and one write head, one LSTM
layer of 100 units, controller output and interface clipped to +-20. The paper's DNC has one
write head, and so does this one.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ntm.config import _check_positive_int

# Read modes per read head with one write head: backward, content, forward.
READ_MODES = 3


@dataclasses.dataclass(frozen=True)
class DNCConfig:
    """Sizes of a DNC. Bad values raise ValueError naming the field."""

    input_size: int
    output_size: int
    memory_slots: int = 32
    memory_width: int = 20
    read_heads: int = 1
    write_heads: int = 1
    controller_units: int = 100
    controller_layers: int = 1
    clip_value: float | None = 20.0

    def __post_init__(self) -> None:
        _check_positive_int("input_size", self.input_size)
        _check_positive_int("output_size", self.output_size)
        _check_positive_int("memory_slots", self.memory_slots)
        _check_positive_int("memory_width", self.memory_width)
        _check_positive_int("read_heads", self.read_heads)
        _check_positive_int("write_heads", self.write_heads)
        if self.write_heads != 1:
            raise ValueError(
                f"write_heads must be 1 (the DNC of Graves et al. 2016 has one write head), "
                f"got {self.write_heads!r}"
            )
        _check_positive_int("controller_units", self.controller_units)
        _check_positive_int("controller_layers", self.controller_layers)
        if self.clip_value is not None:
            if isinstance(self.clip_value, bool) or not isinstance(self.clip_value, (int, float)):
                raise ValueError(f"clip_value must be a positive number or None, got {self.clip_value!r}")
            if not 0 < self.clip_value < float("inf"):
                raise ValueError(f"clip_value must be a positive number or None, got {self.clip_value!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "DNCConfig":
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown DNCConfig fields: {', '.join(unknown)}")
        return cls(**values)

    def replace(self, **changes: Any) -> "DNCConfig":
        return dataclasses.replace(self, **changes)

    @property
    def interface_size(self) -> int:
        """Per step: read keys and strengths, write key and strength, erase and write vectors,
        free gates, allocation and write gates, read modes."""
        r, w, m = self.read_heads, self.write_heads, self.memory_width
        return r * (m + 1) + w * (m + 1) + 2 * w * m + r + 2 * w + r * (2 * w + 1)
