"""DNCConfig: every size of a Differentiable Neural Computer in one validated, frozen dataclass.

Defaults sit near `NTMConfig`'s copy machine so the two models compare at a similar size:
32 slots of width 20 (enough for a length-20 copy), one read and one write head, one LSTM
layer of 100 units, controller output and interface clipped to +-20. The paper's DNC has one
write head, and so does this one.
"""

from __future__ import annotations

import dataclasses

from ntm.dictconfig import CLIP_HELP, DTYPE_HELP, DTYPES, PARAM_DTYPE_HELP, DictConfig, option

# Read modes per read head with one write head: backward, content, forward.
READ_MODES = 3


@dataclasses.dataclass(frozen=True)
class DNCConfig(DictConfig):
    """Sizes of a DNC. Bad values raise ValueError naming the field.

    `dtype` is the dtype of the computation, carry and outputs; `param_dtype` that of the parameters.
    """

    input_size: int
    output_size: int
    memory_slots: int = option(32, "memory slots N")
    memory_width: int = option(20, "width M of each memory slot")
    read_heads: int = option(1, "read heads")
    write_heads: int = option(1, "write heads")
    controller_units: int = option(100, "units per controller layer")
    controller_layers: int = option(1, "controller layers")
    clip_value: float | None = option(20.0, CLIP_HELP)
    dtype: str = option("float32", DTYPE_HELP, DTYPES)
    param_dtype: str = option("float32", PARAM_DTYPE_HELP, DTYPES)

    def __post_init__(self) -> None:
        self.check_positive_ints("input_size", "output_size", "memory_slots", "memory_width", "read_heads",
                                 "write_heads")
        if self.write_heads != 1:
            raise ValueError(
                f"write_heads must be 1 (the DNC of Graves et al. 2016 has one write head), "
                f"got {self.write_heads!r}"
            )
        self.check_positive_ints("controller_units", "controller_layers")
        self.normalize_clip_value()
        self.normalize_dtypes()

    @property
    def interface_size(self) -> int:
        """Per step: read keys and strengths, write key and strength, erase and write vectors,
        free gates, allocation and write gates, read modes."""
        r, w, m = self.read_heads, self.write_heads, self.memory_width
        return r * (m + 1) + w * (m + 1) + 2 * w * m + r + 2 * w + r * (2 * w + 1)
