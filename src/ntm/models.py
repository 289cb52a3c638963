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
from pathlib import Path
from typing import Any

from flax import nnx

from ntm.turing.cell import NTM
from ntm.turing.config import NTMConfig


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


def build_saved(name: Any, config_values: Any, controller: nnx.Module | None, source: Path,
                seed: int = 0) -> nnx.Module:
    """A freshly initialised model of registry `name` from a saved config dict (its parameters are put
    back afterwards with `put_params`); `source` names the file the config came from in errors."""
    if not isinstance(name, str) or not isinstance(config_values, dict):
        raise ValueError(f"{source} is corrupt: it lacks the model name or its config")
    spec = get(name)
    try:
        config = spec.config_class.from_dict(config_values)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{source}: the saved {name} config is not valid here: {error}") from None
    if getattr(config, "user_controller", False):
        if controller is None:
            raise ValueError(
                f"{source} was saved with a user controller ({config.controller.split(':', 1)[1]}); "
                "pass controller= a new instance of it, built as the saved one was"
            )
        return spec.model_class(config, rngs=nnx.Rngs(seed), controller=controller)
    if controller is not None:
        raise ValueError(f"{source} holds a {name} with a built-in controller; controller= is only for "
                         "models saved with a user controller")
    return spec.model_class(config, rngs=nnx.Rngs(seed))


def put_params(model: nnx.Module, params: Any) -> None:
    """Write restored parameters (a pure dict of the model's nnx.Param state) into the model."""
    state = nnx.state(model, nnx.Param)
    nnx.replace_by_pure_dict(state, params)
    nnx.update(model, state)


register("ntm", NTMConfig, NTM, "Neural Turing Machine (Graves et al. 2014)")

from ntm.baselines.lstm import LSTMConfig, LSTMModel  # noqa: E402  (registered after the NTM)

register("lstm", LSTMConfig, LSTMModel, "stacked LSTM baseline (the paper's comparison)")

from ntm.dnc import DNC, DNCConfig  # noqa: E402  (registered after the NTM)

register("dnc", DNCConfig, DNC, "Differentiable Neural Computer (Graves et al. 2016)")
