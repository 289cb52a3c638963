"""Warm start: a new run begins from the parameters of a model trained on another task (`--init-from`).

The source is a model saved by `ntm.save`, a run directory of `ntm train`, or the name of a pretrained
model (`ntm pretrained` lists them). It must be the same model with parameters of the same shapes (an
NTM's memory slots may differ unless they are learned or addressed: no parameter depends on them),
except for the task's input and output channels, which may grow: a copy model (9 inputs, 8 outputs)
starts repeat copy (10 inputs: + the repeat count; 9 outputs: + the end marker). New channels start at
zero, so at step 0 the model computes what the source computed, ignoring the new inputs and emitting
logit 0 on the new outputs.

Where the channels sit, for every registered model: a first layer reads `concat([inputs, ...])`, so
inputs are the leading rows (axis 0) of its kernel [inputs + rest, units], and new input rows are
inserted after the source's; outputs are the last axis of the output layer ([units, outputs] and
[outputs]), and new outputs are appended.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx

from ntm import models, saving


def source_model(source: str) -> nnx.Module:
    """The model named by `--init-from`: a saved model or run directory, else a pretrained model's name."""
    if Path(source).exists():
        return saving.load(source)
    shipped = saving.read_index()
    if source in shipped:
        return saving.pretrained(source)
    raise ValueError(f"init_from {source!r} is neither a saved model or run directory nor a pretrained model "
                     f"(pretrained: {', '.join(sorted(shipped)) or 'none shipped'})")


def widened(target: Any, source: Any, source_io: tuple[int, int], target_io: tuple[int, int]) -> Any:
    """The source's parameters in the target's shapes: new input rows and output columns at zero.

    target, source: pure dicts of nnx.Param values of the same model; *_io: (input_size, output_size).
    ValueError naming the first parameter that is missing or whose shape the channels do not explain.
    """
    (inputs_from, outputs_from), (inputs_to, outputs_to) = source_io, target_io
    if inputs_to < inputs_from or outputs_to < outputs_from:
        raise ValueError(f"init_from: the source model has {inputs_from} inputs and {outputs_from} outputs, more "
                         f"than this task's {inputs_to} and {outputs_to}; channels can be added, not removed")
    source_leaves = {jax.tree_util.keystr(path): value
                     for path, value in jax.tree_util.tree_flatten_with_path(source)[0]}

    def fit(path, like):
        name = jax.tree_util.keystr(path)
        if name not in source_leaves:
            raise ValueError(f"init_from: the source model has no parameter {name}")
        value = np.asarray(source_leaves[name])
        if value.shape == like.shape:
            return value.astype(like.dtype)
        grown = [axis for axis, (a, b) in enumerate(zip(value.shape, like.shape)) if a != b]
        if value.ndim == like.ndim and len(grown) == 1:
            axis = grown[0]
            extra = like.shape[axis] - value.shape[axis]
            if axis == value.ndim - 1 and extra == outputs_to - outputs_from:
                return np.concatenate([value, np.zeros_like(value, shape=_with(value.shape, axis, extra))],
                                      axis).astype(like.dtype)
            if axis == 0 and value.ndim == 2 and extra == inputs_to - inputs_from:
                rows = np.zeros_like(value, shape=_with(value.shape, 0, extra))
                return np.concatenate([value[:inputs_from], rows, value[inputs_from:]], 0).astype(like.dtype)
        raise ValueError(f"init_from: parameter {name} has shape {value.shape} in the source model and "
                         f"{like.shape} here, which the task's channels do not explain")

    return jax.tree_util.tree_map_with_path(fit, target)


def _with(shape: tuple[int, ...], axis: int, size: int) -> tuple[int, ...]:
    return shape[:axis] + (size,) + shape[axis + 1:]


def warm_start(model: nnx.Module, source: nnx.Module) -> None:
    """Put `source`'s parameters (widened to the task's channels) into `model`, a new model of the same kind.

    ValueError if they are different models, or if sizes other than the channels differ (naming them).
    """
    kind, source_kind = models.name_of(model), models.name_of(source)
    if kind != source_kind:
        raise ValueError(f"init_from: the source is a {source_kind} model, this run trains a {kind}")
    config, source_config = model.config.to_dict(), source.config.to_dict()
    target_params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    source_params = nnx.to_pure_dict(nnx.state(source, nnx.Param))
    try:
        params = widened(target_params, source_params,
                         (source_config["input_size"], source_config["output_size"]),
                         (config["input_size"], config["output_size"]))
    except ValueError as error:
        differ = [f"{key}={source_config.get(key)!r} there, {value!r} here" for key, value in config.items()
                  if key not in ("input_size", "output_size") and source_config.get(key) != value]
        raise ValueError(f"{error}" + (f" (the models differ: {'; '.join(differ)})" if differ else "")) from None
    models.put_params(model, params)
