"""Evaluation of a trained run: cost and bit errors per sequence at each test length (or item count).

`load_run` rebuilds the task and model of a run directory from its config.json and restores the
newest readable checkpoint's parameters; `evaluate_model` measures them on fresh batches;
`evaluate_run` does both and writes eval.json.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx
from rich.table import Table

from ntm.checkpoints import Checkpoints, read_run_config, write_json_atomically
from ntm.train import TrainSettings, build_model, build_task, make_eval_step, make_optimizer, model_identity

EVAL_FILE = "eval.json"
# Evaluation batches are drawn from this seed plus the tested value: fresh, never trained on.
EVAL_SEED = 7_000_001


@dataclasses.dataclass
class LoadedRun:
    run_dir: Path
    settings: TrainSettings
    task: Any
    model: nnx.Module
    step: int
    meta: dict[str, Any]


def load_run(run_dir: Path | str) -> LoadedRun:
    """The task and the trained model of a run directory; ValueError if it is missing or corrupt."""
    run_dir = Path(run_dir)
    saved = read_run_config(run_dir)
    try:
        settings = TrainSettings.from_dict(saved["settings"])
        task = build_task(settings)
        model, model_config = build_model(settings, task)
    except (TypeError, KeyError) as error:
        raise ValueError(f"{run_dir / 'config.json'} is corrupt: {error}") from None
    if saved["model_config"] != model_config.to_dict():
        raise ValueError(f"the model config in {run_dir / 'config.json'} does not match its settings")
    graphdef, params = nnx.split(model, nnx.Param)
    opt_state = make_optimizer(settings).init(params)
    checkpoints = Checkpoints(run_dir, keep=settings.keep, identity=model_identity(settings, model_config))
    try:
        step, state, meta = checkpoints.restore({"params": params, "opt_state": opt_state})
    finally:
        checkpoints.close()
    model = nnx.merge(graphdef, state["params"])
    return LoadedRun(run_dir, settings, task, model, step, meta)


def parse_values(text: str) -> list[int]:
    """'10,20,30' -> [10, 20, 30]; ValueError naming the bad entry."""
    values = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or int(part) < 1:
            raise ValueError(f"--lengths must be positive integers separated by commas, got {part!r} in {text!r}")
        values.append(int(part))
    return values


def evaluate_model(model: nnx.Module, task, values: list[int], batch_size: int = 64, seed: int = EVAL_SEED) -> list[dict]:
    """Cost and bit errors per sequence at each value of the task's generalisation quantity."""
    graphdef, params = nnx.split(model, nnx.Param)
    eval_step = make_eval_step(graphdef)
    difficulties = [task.eval_difficulty(value) for value in values]  # ValueError for an impossible value
    # One padded length for all values: one compile instead of one per value.
    steps = max(task.max_steps(**difficulty) for difficulty in difficulties)
    rows = []
    for value, difficulty in zip(values, difficulties):
        batch = task.sample(np.random.default_rng(seed + value), batch_size, pad_to=steps, **difficulty)
        started = time.perf_counter()
        stats = jax.device_get(eval_step(params, batch, jax.random.key(seed)))
        rows.append({
            task.generalisation_key: value,
            "cost": float(stats["cost"]),
            "bit_errors": float(stats["bit_errors"]),
            "solved": bool(task.solved(float(stats["bit_errors"]), float(stats["cost"]))),
            "sequences": batch_size,
            "seconds": time.perf_counter() - started,
        })
    return rows


def eval_table(rows: list[dict], key: str, title: str) -> Table:
    table = Table(title=title)
    table.add_column(key, justify="right")
    table.add_column("cost (bits/seq)", justify="right")
    table.add_column("bit errors/seq", justify="right")
    table.add_column("solved", justify="center")
    for row in rows:
        table.add_row(str(row[key]), f"{row['cost']:.3f}", f"{row['bit_errors']:.3f}", "yes" if row["solved"] else "no")
    return table


def evaluate_run(run_dir: Path | str, values: list[int] | None = None, batch_size: int = 64) -> tuple[LoadedRun, list[dict]]:
    """Evaluate a run directory's model and write eval.json beside it."""
    run = load_run(run_dir)
    values = values or run.task.default_eval_values
    for value in values:
        run.task.eval_difficulty(value)  # fail before any compile
    rows = evaluate_model(run.model, run.task, values, batch_size)
    write_json_atomically(Path(run_dir) / EVAL_FILE, {
        "task": run.settings.task, "model": run.settings.model, "step": run.step,
        "key": run.task.generalisation_key, "rows": rows,
    })
    return run, rows
