"""What every model config shares: `DictConfig` (dict round-trip, replace, field checks) and the checks.

The NTM, DNC and LSTM configs are frozen dataclasses built on `DictConfig`; `option` gives a field
its command-line help and choices (field metadata, read by `ntm.commands.cli`). Each check raises a
ValueError naming the field, and `DictConfig.normalize_*` turn NumPy scalars (`np.int64(4)`,
`np.float32(0.5)`) into Python numbers, so a config built from NumPy values still saves as JSON.
`DictConfig.refuse_without_effect` refuses a field set away from its default where another field's
value means it cannot take effect, naming both (e.g. an activation for an LSTM controller).
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any

import numpy as np

# Compute and parameter dtypes a model accepts. float16 is left out: the addressing epsilons
# (1e-12, 1e-20) underflow to zero in it; bfloat16 has float32's exponent range and keeps them.
DTYPES = ("float32", "float64", "bfloat16")
CLIP_HELP = "clip the controller's outputs (and heads' or interface parameters) and the logits to +-this"
DTYPE_HELP = "dtype of the computation, the carry and the outputs"
PARAM_DTYPE_HELP = "dtype of the parameters (float64 needs jax_enable_x64)"


def check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    """`value` as a Python int >= minimum (NumPy integers accepted), else ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_number(name: str, value: Any) -> float:
    """`value` as a finite Python float (NumPy numbers accepted), else ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not abs(float(value)) < float("inf"):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")


def check_clip_value(value: Any) -> float | None:
    """A clip value is a positive finite number, or None for no clipping."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < float(value) < float("inf"):
        raise ValueError(f"clip_value must be a positive number or None, got {value!r}")
    return float(value)


def option(default: Any, help: str, choices: tuple[str, ...] | None = None):
    """A config field whose metadata holds its help text and choices, which `ntm train --help` shows."""
    metadata = {"help": help} if choices is None else {"help": help, "choices": choices}
    return dataclasses.field(default=default, metadata=metadata)


class DictConfig:
    """`to_dict` / `from_dict` / `replace` for frozen config dataclasses; unknown fields are an error.

    Subclasses call the `normalize_*` methods in `__post_init__`: each checks fields and stores
    them back as plain Python values.
    """

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]):
        if not isinstance(values, dict):
            raise ValueError(f"{cls.__name__}.from_dict needs a dict, got {type(values).__name__}")
        unknown = sorted(set(values) - {field.name for field in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields: {', '.join(unknown)}")
        return cls(**values)

    def replace(self, **changes: Any):
        return dataclasses.replace(self, **changes)

    def refuse_without_effect(self, name: str, takes_effect: bool, because: str) -> None:
        """ValueError if field `name` differs from its default although it `takes_effect` not; `because`
        names the other field and why, e.g. "with controller='lstm' (only ... takes an activation)"."""
        default = next(field.default for field in dataclasses.fields(self) if field.name == name)
        value = getattr(self, name)
        if not takes_effect and value != default:
            raise ValueError(f"{name}={value!r} has no effect {because}")

    def _store(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)  # the dataclass is frozen; this runs only in __post_init__

    def check_positive_ints(self, *names: str, minimum: int = 1) -> None:
        """ValueError naming the first of these fields that is not an integer >= minimum;
        NumPy integers are stored back as Python ints."""
        for name in names:
            self._store(name, check_positive_int(name, getattr(self, name), minimum))

    def normalize_clip_value(self) -> None:
        self._store("clip_value", check_clip_value(getattr(self, "clip_value")))

    def normalize_dtypes(self) -> None:
        """`dtype` and `param_dtype` must name one of DTYPES; NumPy/JAX dtypes are stored by name."""
        for name in ("dtype", "param_dtype"):
            value = getattr(self, name)
            if isinstance(value, (type, np.dtype)):  # jnp.bfloat16, np.float64, np.dtype("float32")
                try:
                    value = np.dtype(value).name
                except TypeError:
                    pass
            check_choice(name, value, DTYPES)
            self._store(name, value)
