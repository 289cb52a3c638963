"""The model registry: every sequence model that `ntm train` and `ntm eval` can build, by name.

A model joins by calling `register(name, config_class, model_class)`. The training code only
ever goes through this registry, so a new model needs no change there. The contract:
  - `config_class` is a frozen dataclass with `input_size` and `output_size` fields,
    `to_dict()` / `from_dict()`, and a ValueError naming the field for bad values; its other
    fields become `ntm train` flags automatically.
  - `model_class(config, rngs=nnx.Rngs)` is an nnx.Module whose
    `__call__(inputs[B,T,D], *, lengths=None, mask=None, initial_carry=None, return_carry=False,
    trace=False, rngs=None, remat=False)` returns logits [B,T,output_size] (plus carry / trace as
    `ntm.NTM`; `remat` recomputes steps in the backward pass to save memory).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ntm.cell import NTM
from ntm.config import NTMConfig


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    config_class: type
    model_class: type
    description: str = ""


_MODELS: dict[str, ModelSpec] = {}


def register(name: str, config_class: type, model_class: type, description: str = "") -> None:
    _MODELS[name] = ModelSpec(name, config_class, model_class, description)


def names() -> list[str]:
    return sorted(_MODELS)


def get(name: str) -> ModelSpec:
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(names())}")
    return _MODELS[name]


def name_of(model: Any) -> str:
    """The registry name of a model instance (its class, or the nearest registered base class)."""
    for kind in type(model).__mro__:
        for spec in _MODELS.values():
            if spec.model_class is kind:
                return spec.name
    raise ValueError(
        f"{type(model).__name__} is not a registered model; registered: "
        + ", ".join(f"{spec.name} ({spec.model_class.__name__})" for spec in _MODELS.values())
    )


def build_config(name: str, values: dict[str, Any]):
    """The named model's config from a dict of field values (unknown fields are an error)."""
    return get(name).config_class.from_dict(values)


register("ntm", NTMConfig, NTM, "Neural Turing Machine (Graves et al. 2014)")

from ntm.baselines.lstm import LSTMConfig, LSTMModel  # noqa: E402  (registered after the NTM)

register("lstm", LSTMConfig, LSTMModel, "stacked LSTM baseline (the paper's comparison)")

from ntm.dnc import DNC, DNCConfig  # noqa: E402  (registered after the NTM)

register("dnc", DNCConfig, DNC, "Differentiable Neural Computer (Graves et al. 2016)")
