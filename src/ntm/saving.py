"""Saving and loading trained models: `ntm.save`, `ntm.load` and the pretrained models shipped in the package.

    ntm.save(model, "copy-model")           # a directory: model.json + Orbax parameters, no optimizer
    model = ntm.load("copy-model")          # or a run directory written by `ntm train`
    model = ntm.load(path, controller=c)    # a model built with a user's controller needs it back
    model = ntm.pretrained("copy")          # a model shipped in the package, ready to use

A saved model is a directory holding `model.json` ({"format": "ntm-model", "model": registry name,
"config": config dict, ...}) and `params/`, the `nnx.Param` state as a pure dict written by Orbax.
Saving writes a sibling temporary directory and renames it into place, so a reader never sees half
a model; it replaces an earlier saved model but refuses any other existing directory.

A run directory (one seed of `ntm train`, see `ntm.rundir`) holds `config.json` ({"model",
"model_config", ...}) and `checkpoints/<step>/` Orbax composites; `load` restores only the `params`
item of the newest step that reads back, through the one loader of a run's model
(`ntm.training.runs.RunDirectory.load_model`).

Pretrained models live under `PRETRAINED_ROOT` (package data): one saved model per name, and
`index.json` with each one's figures (task, training sequences, wall time, evaluation rows);
`add_pretrained` writes both.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
from flax import nnx

from ntm import models, rundir
from ntm.sequence import count_params
from ntm.training.runs import RunDirectory, SeedGroup

MODEL_FILE = "model.json"
PARAMS_DIR = "params"
FORMAT = "ntm-model"
FORMAT_VERSION = 1
# The shipped models; a module constant so tests (and the lead's shipping script) can point elsewhere.
PRETRAINED_ROOT = Path(__file__).resolve().parent / "pretrained_models"
INDEX_FILE = "index.json"
PRETRAINED_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")


# ----------------------------------------------------------------------------- save


def saved_model_description(path: Path) -> dict[str, Any] | None:
    """The model.json of a directory written by `save`, or None if it is not one."""
    try:
        description = json.loads((Path(path) / MODEL_FILE).read_text())
    except (OSError, ValueError):
        return None
    return description if isinstance(description, dict) and description.get("format") == FORMAT else None


def save(model: nnx.Module, path: str | os.PathLike) -> Path:
    """Save a model (NTM, DNC, LSTM, or any model in `ntm.models`) to the directory `path`.

    Writes `model.json` (registry name and config) and `params/` (Orbax; parameters only, no
    optimizer state). An existing directory at `path` is replaced only if it is itself a saved
    model or empty; anything else is a ValueError. Returns the directory's absolute path.
    """
    name = models.name_of(model)
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "to_dict"):
        raise ValueError(f"{type(model).__name__} has no config with to_dict(); it cannot be saved")
    path = Path(path).absolute()
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"cannot save to {str(path)!r}: it is a file, not a directory")
        if any(path.iterdir()) and saved_model_description(path) is None:
            raise ValueError(
                f"cannot save to {str(path)!r}: the directory exists and is not a model saved by ntm.save "
                f"(it has no {MODEL_FILE}); choose a new path or remove it"
            )
    description = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": name,
        "config": config.to_dict(),
        "parameters": count_params(model),
    }
    params = nnx.state(model, nnx.Param).to_pure_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.saving-", dir=path.parent))
    try:
        with ocp.StandardCheckpointer() as checkpointer:
            checkpointer.save(staging / PARAMS_DIR, params)
            checkpointer.wait_until_finished()
        (staging / MODEL_FILE).write_text(json.dumps(description, indent=2, sort_keys=True) + "\n")
        replace_directory(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


def replace_directory(new: Path, path: Path) -> None:
    """Move the complete directory `new` to `path`, replacing what is there with two renames."""
    if not path.exists():
        os.replace(new, path)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
    os.replace(path, old / "previous")
    os.replace(new, path)
    shutil.rmtree(old, ignore_errors=True)


# ----------------------------------------------------------------------------- load


def load(path: str | os.PathLike, controller: nnx.Module | None = None) -> nnx.Module:
    """The model saved at `path` by `save`, or the trained model of a run directory of `ntm train`.

    `controller` is for an NTM saved with a user's controller module: pass a new instance built as
    the saved one was (its parameters are restored). ValueError for a path that is neither, a
    corrupt or mismatched directory, or a missing or unneeded controller.
    """
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"{str(path)!r} does not exist or is not a directory")
    description = saved_model_description(path)
    if description is not None:
        model = models.build_saved(description.get("model"), description.get("config"), controller, path / MODEL_FILE)
        restore_saved_params(model, path / PARAMS_DIR)
        return model
    if (path / MODEL_FILE).exists():
        raise ValueError(f"{path / MODEL_FILE} is corrupt or not written by ntm.save")
    if RunDirectory(path).exists:
        return RunDirectory(path).load_model(controller)[1]
    if SeedGroup.is_group(path):
        raise ValueError(f"{str(path)!r} is a group of seeds; load one of its seed-S run directories")
    raise ValueError(
        f"{str(path)!r} is neither a saved model ({MODEL_FILE}) nor a run directory of ntm train "
        f"({rundir.CONFIG_FILE})"
    )


def abstract_params(model: nnx.Module) -> Any:
    """Shapes and dtypes of the model's parameters as a pure dict, the target Orbax restores into."""
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, nnx.state(model, nnx.Param).to_pure_dict())


def first_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0][:200]}"


def restore_saved_params(model: nnx.Module, params_dir: Path) -> None:
    if not params_dir.is_dir():
        raise ValueError(f"{params_dir} is missing: the saved model has no parameters")
    target = abstract_params(model)
    try:
        with ocp.StandardCheckpointer() as checkpointer:
            saved = checkpointer.metadata(params_dir.absolute()).item_metadata.tree
            mismatch = rundir.shape_mismatch(target, saved)  # before restoring: names the parameter
            if mismatch is None:
                params = checkpointer.restore(params_dir.absolute(), target)
    except Exception as error:  # Orbax raises many kinds for a corrupt or foreign checkpoint
        raise ValueError(f"{params_dir} could not be restored ({first_line(error)})") from None
    if mismatch:
        raise ValueError(f"{params_dir}: {mismatch}")
    models.put_params(model, params)


# ----------------------------------------------------------------------------- pretrained


def read_index(root: Path | None = None) -> dict[str, dict[str, Any]]:
    """Name -> figures of every shipped model (empty if none are shipped)."""
    path = Path(root or PRETRAINED_ROOT) / INDEX_FILE
    if not path.is_file():
        return {}
    try:
        index = json.loads(path.read_text())
    except ValueError as error:
        raise ValueError(f"{path} is corrupt: {error}") from None
    entries = index.get("models") if isinstance(index, dict) else None
    if not isinstance(entries, dict):
        raise ValueError(f"{path} is corrupt: it lacks a 'models' object")
    return entries


def pretrained_entry(name: str) -> dict[str, Any]:
    """The index entry of a shipped model; ValueError listing the available names otherwise."""
    index = read_index()
    if name not in index:
        available = ", ".join(sorted(index)) or "none are shipped in this installation"
        raise ValueError(f"unknown pretrained model {name!r}; available: {available}")
    return index[name]


def pretrained(name: str) -> nnx.Module:
    """A model shipped with ntm, trained on a task of the paper (e.g. `ntm.pretrained("copy")`).

    `ntm pretrained` lists them with their figures; `pretrained_entry(name)` gives those figures
    (task, task options, training sequences, wall time, evaluation rows) in Python.
    """
    pretrained_entry(name)
    return load(Path(PRETRAINED_ROOT) / name)


def add_pretrained(
    name: str,
    model: nnx.Module,
    *,
    task: str,
    task_options: dict[str, Any] | None = None,
    training_sequences: int,
    training_steps: int | None = None,
    wall_time: float,
    eval_key: str,
    eval_rows: list[dict[str, Any]],
    notes: str = "",
    root: Path | None = None,
) -> Path:
    """Ship `model` as pretrained `name`: save it under the root and record its figures in index.json.

    `wall_time` is the training time in seconds; `eval_rows` are rows of `ntm eval` (each with
    `eval_key`, "cost" and "bit_errors"). The model must fit the task's input and output sizes.
    """
    from ntm import tasks

    if not isinstance(name, str) or not PRETRAINED_NAME.match(name):
        raise ValueError(f"pretrained name must be lower-case letters, digits, '_' or '-', got {name!r}")
    built = tasks.get(task, **(task_options or {}))
    config = model.config
    if (config.input_size, config.output_size) != (built.input_size, built.output_size):
        raise ValueError(
            f"the model's sizes ({config.input_size} in, {config.output_size} out) do not fit task {task} "
            f"({built.input_size} in, {built.output_size} out)"
        )
    for row in eval_rows:
        if not {eval_key, "cost", "bit_errors"} <= set(row):
            raise ValueError(f"every eval row needs {eval_key!r}, 'cost' and 'bit_errors'; got {sorted(row)}")
    root = Path(root or PRETRAINED_ROOT)
    index = read_index(root)
    save(model, root / name)
    index[name] = {
        "task": task,
        "task_options": dict(task_options or {}),
        "model": models.name_of(model),
        "parameters": count_params(model),
        "training_sequences": int(training_sequences),
        "training_steps": None if training_steps is None else int(training_steps),
        "wall_time": float(wall_time),
        "eval_key": eval_key,
        "eval_rows": [dict(row) for row in eval_rows],
        "notes": notes,
    }
    index_path = root / INDEX_FILE
    staging = index_path.with_name(index_path.name + ".tmp")
    staging.write_text(json.dumps({"format_version": FORMAT_VERSION, "models": index}, indent=2, sort_keys=True) + "\n")
    os.replace(staging, index_path)
    return root / name
