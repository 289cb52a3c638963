"""The run directory on disk: the formats of its config, metrics log, Orbax checkpoints and one-writer lock.

`ntm.training.runs.RunDirectory` and `SeedGroup` are the typed owners that read and write these files.

Layout of a run directory (one seed; a `--seeds K` group is `seeds.json` plus `seed-S/` run directories):
  config.json       training settings, the model's name and config; all `ntm eval` and `ntm.load` need
  metrics.jsonl     one JSON object per logged step or event
  checkpoints/N/    Orbax checkpoint of step N with three items: `params` (the model's parameters as a
                    pure dict, enough to load the model), `opt_state`, and `progress` (JSON loop state)
  tb/               TensorBoard event files
  .lock             held (flock) by the process training in this directory
Orbax writes each checkpoint into a temporary folder and renames it when complete, so a run killed at
any moment leaves the earlier checkpoints intact; an unreadable newest checkpoint is skipped in favour
of the one before it. The lock is an advisory `flock`, which the kernel drops when its process dies,
so a killed run never leaves its directory locked.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_DIR = "checkpoints"
LOCK_FILE = ".lock"
GROUP_FILE = "seeds.json"


class RunDirectoryError(ValueError):
    """A run directory that cannot be used as asked: missing, corrupt, locked or unwritable."""


def write_json_atomically(path: Path, payload: Any) -> None:
    """Write JSON to a temporary file, then rename it over `path`, so readers never see half a file."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)
    except OSError as error:
        raise RunDirectoryError(f"cannot write {path}: {error.strerror or error}") from None


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RunDirectoryError(f"{path} is corrupt: {error}") from None


def read_run_config(run_dir: Path) -> dict[str, Any]:
    """The run's config.json, or a RunDirectoryError saying what is wrong with the directory."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        raise RunDirectoryError(f"{str(run_dir)!r} is a file, not a run directory")
    if not run_dir.is_dir():
        raise RunDirectoryError(f"run directory {str(run_dir)!r} does not exist")
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise RunDirectoryError(f"{str(run_dir)!r} is not an ntm run directory: it has no {CONFIG_FILE}")
    config = read_json(path)
    if not isinstance(config, dict) or not {"settings", "model_config", "model"} <= set(config):
        raise RunDirectoryError(f"{path} is corrupt: it lacks 'settings', 'model' or 'model_config'")
    return config


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """Every row of metrics.jsonl; a torn last line (a kill mid-write) is ignored."""
    path = Path(run_dir) / METRICS_FILE
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def truncate_metrics(run_dir: Path, last_step: int) -> None:
    """Drop rows logged after `last_step` (they belong to work lost with an unsaved tail) and torn lines."""
    rows = [row for row in read_metrics(run_dir) if row.get("step", 0) <= last_step]
    path = Path(run_dir) / METRICS_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(row) + "\n" for row in rows))
    os.replace(tmp, path)


class RunLock:
    """One writer per run directory: an exclusive, non-blocking flock on RUN/.lock."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_FILE
        try:
            self.handle = open(self.path, "a+")
        except OSError as error:
            raise RunDirectoryError(f"cannot write in {run_dir}: {error.strerror or error}") from None
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            self.handle.close()
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise RunDirectoryError(f"{run_dir} is in use by another ntm process; wait for it to finish "
                                        f"or stop it first") from None
            raise

    def release(self) -> None:
        if not self.handle.closed:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()


def leaf_shapes(tree: Any) -> dict[str, tuple[int, ...]]:
    """{'cell/output/kernel': shape, ...}: a tree's leaves by path, whatever its container types."""
    def name(entry) -> str:
        return str(getattr(entry, "key", getattr(entry, "idx", getattr(entry, "name", entry))))

    flat = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda leaf: hasattr(leaf, "shape"))[0]
    return {"/".join(name(entry) for entry in path): tuple(getattr(leaf, "shape", ())) for path, leaf in flat}


def shape_mismatch(expected: Any, restored: Any) -> str | None:
    """What differs between two pytrees' leaves or leaf shapes, or None if nothing does.

    Orbax may restore arrays of the saved shape whatever the target says, so this is checked here.
    """
    want, got = leaf_shapes(expected), leaf_shapes(restored)
    if set(want) != set(got):
        return "its parameter structure differs from this config's model"
    for name, shape in want.items():
        if got[name] != shape:
            return f"{name} has shape {got[name]} in the checkpoint but {shape} in this model"
    return None


class Checkpoints:
    """Saving and restoring a run's checkpoints (params, opt_state, progress) with Orbax, newest `keep` kept."""

    def __init__(self, run_dir: Path, keep: int = 3, identity: dict[str, Any] | None = None, create: bool = True):
        """`identity` (the model's name and config) is stored in every checkpoint's progress, and a
        checkpoint whose identity differs is refused on restore."""
        self.identity = identity
        self.directory = (Path(run_dir) / CHECKPOINT_DIR).resolve()
        if not create and not self.directory.is_dir():
            raise RunDirectoryError(f"{run_dir} has no {CHECKPOINT_DIR}/ folder")
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=create, enable_async_checkpointing=False)
        try:
            self.manager = ocp.CheckpointManager(self.directory, options=options)
        except OSError as error:
            raise RunDirectoryError(f"cannot write checkpoints in {run_dir}: {error.strerror or error}") from None

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def save(self, step: int, params: Any, opt_state: Any, progress: dict[str, Any]) -> None:
        """Save one seed's state at `step`; RunDirectoryError (earlier checkpoints intact) if it cannot."""
        if self.identity is not None:
            progress = {**progress, "identity": self.identity}
        args = ocp.args.Composite(params=ocp.args.StandardSave(params), opt_state=ocp.args.StandardSave(opt_state),
                                  progress=ocp.args.JsonSave(progress))
        try:
            if step in self.manager.all_steps():  # the final save can land on a periodic one's step
                self.manager.delete(step)
            self.manager.save(step, args=args, force=True)
            self.manager.wait_until_finished()
        except OSError as error:
            kept = [s for s in self.steps() if s != step]
            raise RunDirectoryError(
                f"cannot write the checkpoint of step {step} in {self.directory}: {error.strerror or error}; "
                f"the last good checkpoint ({'step ' + str(kept[-1]) if kept else 'none'}) is intact"
            ) from None

    def restore(self, params: Any, opt_state: Any | None = None, step: int | None = None):
        """The newest readable checkpoint (or `step`) restored into the structures of `params` (and
        `opt_state`, unless None: loading a model needs no optimizer).

        Returns (step, params, opt_state or None, progress). RunDirectoryError if none is readable or
        none matches.
        """
        candidates = [step] if step is not None else sorted(self.steps(), reverse=True)
        if not candidates:
            raise RunDirectoryError(f"no checkpoint in {self.directory}")
        items = {"params": ocp.args.StandardRestore(jax.tree.map(ocp.utils.to_shape_dtype_struct, params)),
                 "progress": ocp.args.JsonRestore()}
        if opt_state is not None:
            items["opt_state"] = ocp.args.StandardRestore(jax.tree.map(ocp.utils.to_shape_dtype_struct, opt_state))
        errors = []
        for candidate in candidates:
            mismatch = self.saved_shape_mismatch(candidate, params)
            if mismatch:  # caught before Orbax, whose failed restores print tracebacks from its threads
                errors.append(f"step {candidate}: {mismatch}")
                continue
            try:
                restored = self.manager.restore(candidate, args=ocp.args.Composite(**items))
            except Exception as error:  # Orbax raises many types for a bad or foreign checkpoint
                errors.append(f"step {candidate}: {type(error).__name__}: {str(error).splitlines()[0][:200]}")
                continue
            progress = dict(restored.progress)
            saved_identity = progress.pop("identity", None)
            if self.identity is not None and saved_identity is not None and saved_identity != self.identity:
                differences = sorted(key for key in set(self.identity) | set(saved_identity)
                                     if self.identity.get(key) != saved_identity.get(key))
                errors.append(f"step {candidate}: it was saved for a different model ({', '.join(differences)} differ)")
                continue
            mismatch = shape_mismatch(params, restored.params) or (
                opt_state is not None and shape_mismatch(opt_state, restored.opt_state))
            if mismatch:
                errors.append(f"step {candidate}: {mismatch}")
                continue
            return candidate, restored.params, restored.opt_state if opt_state is not None else None, progress
        raise RunDirectoryError(f"no checkpoint in {self.directory} could be restored for this run's config "
                                f"(corrupt or mismatched): {'; '.join(errors)}")

    def saved_shape_mismatch(self, step: int, params: Any) -> str | None:
        """How the parameter shapes saved at `step` differ from `params`', None if they agree or are unreadable."""
        quiet = logging.getLogger("absl")
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # Orbax warns that per-item metadata files are absent; they need not be
        try:
            saved = ocp.StandardCheckpointer().metadata(self.directory / str(step) / "params")
            saved = getattr(saved, "item_metadata", saved)
        except Exception:  # unreadable here: the restore below reports it
            return None
        finally:
            quiet.setLevel(level)
        return shape_mismatch(params, saved)

    def close(self) -> None:
        self.manager.close()


def newest_params(run_dir: Path, params: Any) -> tuple[int, Any]:
    """(step, parameters) of a run directory's newest readable checkpoint, restored into the pure-dict
    structure of `params`; no optimizer is built or read."""
    checkpoints = Checkpoints(run_dir, create=False)
    try:
        step, restored, _, _ = checkpoints.restore(params)
    finally:
        checkpoints.close()
    return step, restored
