"""The run directory on disk: its config, metrics log and Orbax checkpoints.

Layout of a run directory:
  config.json       training settings and the model's config; all `ntm eval` needs
  metrics.jsonl     one JSON object per logged step or event
  checkpoints/      Orbax checkpoints (params, optimizer state, and a JSON of loop state)
  tb/               TensorBoard event files
Orbax writes each checkpoint into a temporary folder and renames it when complete, so a run
killed at any moment leaves the earlier checkpoints intact; an unreadable newest checkpoint is
skipped in favour of the one before it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_DIR = "checkpoints"


def write_json_atomically(path: Path, payload: Any) -> None:
    """Write JSON to a temporary file, then rename it over `path`, so readers never see half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def read_run_config(run_dir: Path) -> dict[str, Any]:
    """The run's config.json, or a ValueError saying what is wrong with the directory."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"run directory {str(run_dir)!r} does not exist")
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise ValueError(f"{str(run_dir)!r} is not an ntm run directory: it has no {CONFIG_FILE}")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is corrupt: {error}") from None
    if not isinstance(config, dict) or not {"settings", "model_config"} <= set(config):
        raise ValueError(f"{path} is corrupt: it lacks 'settings' or 'model_config'")
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
    """Drop rows logged after `last_step` (they belong to work lost with an unsaved tail)."""
    rows = [row for row in read_metrics(run_dir) if row.get("step", 0) <= last_step]
    path = Path(run_dir) / METRICS_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(row) + "\n" for row in rows))
    os.replace(tmp, path)


def shape_mismatch(expected: Any, restored: Any) -> str | None:
    """What differs between two pytrees' structures or leaf shapes, or None if nothing does.

    Orbax may restore arrays of the saved shape whatever the target says, so this is checked here.
    """
    if jax.tree.structure(expected) != jax.tree.structure(restored):
        return "its parameter structure differs from this config's model"
    paths = jax.tree_util.tree_flatten_with_path(expected)[0]
    for (path, want), got in zip(paths, jax.tree.leaves(restored)):
        if tuple(want.shape) != tuple(got.shape):
            name = jax.tree_util.keystr(path)
            return f"{name} has shape {tuple(got.shape)} in the checkpoint but {tuple(want.shape)} in this config's model"
    return None


class Checkpoints:
    """Saving and restoring training state with Orbax, keeping the newest `keep`."""

    def __init__(self, run_dir: Path, keep: int = 3, identity: dict[str, Any] | None = None):
        """`identity` (e.g. the model's name and config) is stored in every checkpoint, and a
        checkpoint whose identity differs is refused on restore."""
        self.identity = identity
        self.directory = (Path(run_dir) / CHECKPOINT_DIR).resolve()
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=False
        )
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def save(self, step: int, state: Any, meta: dict[str, Any]) -> None:
        if step in self.manager.all_steps():  # the final save can land on a periodic one's step
            self.manager.delete(step)
        if self.identity is not None:
            meta = {**meta, "identity": self.identity}
        args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
        self.manager.save(step, args=args, force=True)
        self.manager.wait_until_finished()

    def restore(self, like: Any, step: int | None = None) -> tuple[int, Any, dict[str, Any]]:
        """Restore the newest readable checkpoint (or `step`) into the structure of `like`.

        Returns (step, state, meta). ValueError if none is readable or none matches `like`.
        """
        candidates = [step] if step is not None else sorted(self.steps(), reverse=True)
        if not candidates:
            raise ValueError(f"no checkpoint in {self.directory}")
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        errors = []
        for candidate in candidates:
            args = ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()
            )
            try:
                restored = self.manager.restore(candidate, args=args)
            except Exception as error:  # Orbax raises many types for a bad or foreign checkpoint
                errors.append(f"step {candidate}: {type(error).__name__}: {str(error).splitlines()[0][:200]}")
                continue
            saved_identity = restored.meta.get("identity")
            if self.identity is not None and saved_identity is not None and saved_identity != self.identity:
                differences = sorted(
                    key for key in set(self.identity) | set(saved_identity)
                    if self.identity.get(key) != saved_identity.get(key)
                )
                errors.append(f"step {candidate}: it was saved for a different model ({', '.join(differences)} differ)")
                continue
            mismatch = shape_mismatch(like, restored.state)
            if mismatch:
                errors.append(f"step {candidate}: {mismatch}")
                continue
            meta = {key: value for key, value in restored.meta.items() if key != "identity"}
            return candidate, restored.state, meta
        raise ValueError(
            f"no checkpoint in {self.directory} could be restored for this run's config "
            f"(corrupt or mismatched): {'; '.join(errors)}"
        )

    def close(self) -> None:
        self.manager.close()
