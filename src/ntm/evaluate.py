"""Evaluation of a trained run: cost and bit errors per sequence at each test length (or item count).

`load_run` rebuilds the task and model of a run directory from its config.json and restores the
newest readable checkpoint's parameters (no optimizer); `evaluate_model` measures a model on at least
1,000 held-out sequences per row, with a 95 % interval beside each figure; `evaluate_run` does both and
merges the rows into eval.json; `verdict_text` is the one-line summary, which never says "solved" when a
row inside the training range says otherwise.

Held-out draws: the row at test value v with evaluation seed s is drawn from
`np.random.default_rng([EVAL_SEED, s, v])`, a stream that no training seed or held-out check uses. The
default seed 0 draws the same sequences every time, so a table is reproducible (the training's final
table and `ntm eval` agree to the last digit); `ntm eval --seed S` draws others.

eval.json keeps every table a run was given: rows are merged by test value, the newest row of a value
wins, and the rows it replaced are kept under "replaced". Each row records the checkpoint step it
measured and its evaluation seed.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx
from rich.table import Table

from ntm import tasks
from ntm.rundir import newest_params, read_run_config, write_json_atomically
from ntm.training.judge import Judge, summarize
from ntm.training.loop import build_model
from ntm.training.settings import TrainSettings

EVAL_FILE = "eval.json"
# Evaluation batches are drawn from [EVAL_SEED, evaluation seed, tested value]: never trained on.
EVAL_SEED = 7_000_001
# The evaluation seed of `ntm eval` and of the training's final table unless --seed says otherwise.
DEFAULT_EVAL_SEED = 0
# Sequences per row of the final table, and per compiled chunk.
EVAL_SEQUENCES = 1000
EVAL_CHUNK = 250


@dataclasses.dataclass
class LoadedRun:
    run_dir: Path
    settings: TrainSettings
    task: Any
    model: nnx.Module
    step: int


def load_run(run_dir: Path | str) -> LoadedRun:
    """The task and the trained model of a run directory; ValueError if it is missing or corrupt."""
    run_dir = Path(run_dir)
    saved = read_run_config(run_dir)
    try:
        settings = TrainSettings.from_dict(saved["settings"])
        task = tasks.get(settings.task, **settings.task_options)
        model, model_config = build_model(settings, task)
    except (TypeError, KeyError) as error:
        raise ValueError(f"{run_dir / 'config.json'} is corrupt: {error}") from None
    if saved["model_config"] != model_config.to_dict():
        raise ValueError(f"the model config in {run_dir / 'config.json'} does not match its settings")
    params = nnx.state(model, nnx.Param)
    step, restored = newest_params(run_dir, nnx.to_pure_dict(params))
    nnx.replace_by_pure_dict(params, restored)
    nnx.update(model, params)
    return LoadedRun(run_dir, settings, task, model, step)


def parse_values(text: str) -> list[int]:
    """'10,20,30' -> [10, 20, 30]; ValueError naming the bad entry."""
    values = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or int(part) < 1:
            raise ValueError(f"test values must be positive integers separated by commas, got {part!r} in {text!r}")
        values.append(int(part))
    return values


def in_training_range(task, value: int) -> bool:
    key = task.generalisation_key
    low, high = task.difficulty.get(f"min_{key}"), task.difficulty.get(f"max_{key}")
    return low is not None and high is not None and low <= value <= high


def evaluate_model(model: nnx.Module, task, values: list[int], sequences: int = EVAL_SEQUENCES,
                   seed: int = DEFAULT_EVAL_SEED) -> list[dict]:
    """Means per sequence (with 95 % intervals) over `sequences` held-out sequences at each value of the
    task's generalisation quantity, drawn with evaluation seed `seed` (the same seed draws the same
    sequences); a row's `solved` applies the task's criterion to it."""
    check_eval_seed(seed)
    difficulties = [task.eval_difficulty(value) for value in values]  # ValueError for an impossible value
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    stacked = jax.tree.map(lambda leaf: leaf[None], params)
    rows = []
    for value, difficulty in zip(values, difficulties):
        judge = Judge(task, graphdef, rest, chunk=min(EVAL_CHUNK, sequences), pad_to=task.max_steps(**difficulty))
        started = time.perf_counter()
        stats = judge.measure(stacked, difficulty, sequences, eval_rng(seed, value))[0]
        verdict = summarize(task, stats)
        rows.append({task.generalisation_key: value, "sequences": verdict.sequences, **verdict.row(),
                     "in_training_range": in_training_range(task, value),
                     "seconds": time.perf_counter() - started})
    return rows


def check_eval_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"the evaluation seed must be an integer >= 0, got {seed!r}")
    return int(seed)


def eval_rng(seed: int, value: int) -> np.random.Generator:
    """The held-out sequences of one row: evaluation seed `seed`, test value `value`."""
    return np.random.default_rng([EVAL_SEED, check_eval_seed(seed), value])


def figure_text(row: dict, name: str) -> str:
    low, high = row[f"{name}_interval"]
    return f"{row[name]:.3f} [{max(low, 0.0) if name != 'excess_cost' else low:.3f}, {high:.3f}]"


def eval_table(rows: list[dict], task, title: str) -> Table:
    table = Table(title=title, caption=f"means per sequence over {rows[0]['sequences']:,} fresh sequences a row, "
                                       f"[95 % interval]; solved: {task.solve_description}" if rows else None)
    table.add_column(task.axis_label, justify="right")
    names = ["cost", "bit_errors"] + [n for n in ("excess_cost", "end_marker_errors") if rows and n in rows[0]]
    headers = {"cost": "cost (bits)", "bit_errors": "bit errors", "excess_cost": "above optimal (bits)",
               "end_marker_errors": "end-marker errors"}
    for name in names:
        table.add_column(headers[name], justify="right")
    table.add_column("solved", justify="center")
    for row in rows:
        mark = "yes" if row["solved"] else "no"
        table.add_row(str(row[task.generalisation_key]) + ("" if row["in_training_range"] else " *"),
                      *(figure_text(row, name) for name in names), mark)
    return table


def verdict_text(stop_rule_passed: bool, rows: list[dict], task) -> tuple[bool, str]:
    """(solved, one line) from the stop rule and the final table: solved only if the stop rule passed
    and every row inside the training range is solved too."""
    key = task.generalisation_key
    failing = [row[key] for row in rows if in_training_range(task, row[key]) and not row["solved"]]
    if stop_rule_passed and not failing:
        return True, "solved"
    if stop_rule_passed:
        return False, (f"not solved: the held-out check passed, but the table below fails inside the training "
                       f"range at {task.generalisation_key} {', '.join(map(str, failing))}")
    return False, "not solved"


def evaluate_run(run_dir: Path | str, values: list[int] | None = None, sequences: int = EVAL_SEQUENCES,
                 seed: int = DEFAULT_EVAL_SEED) -> tuple[LoadedRun, list[dict]]:
    """Evaluate a run directory's model and merge the rows into its eval.json (earlier rows at other
    values are kept; see `merge_eval`). Returns the run and the rows just measured."""
    check_eval_seed(seed)
    run = load_run(run_dir)
    values = values or run.task.default_eval_values
    for value in values:
        run.task.eval_difficulty(value)  # fail before any compile
    rows = evaluate_model(run.model, run.task, values, sequences, seed)
    for row in rows:
        row.update(step=run.step, eval_seed=seed, evaluated_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    merged = merge_eval(read_eval(run_dir), rows, run.settings.task, run.settings.model,
                        run.task.generalisation_key, run.step)
    write_json_atomically(Path(run_dir) / EVAL_FILE, merged)
    return run, rows


def read_eval(run_dir: Path | str) -> dict[str, Any] | None:
    """The run's eval.json, None if it was never evaluated; ValueError if it is corrupt. Rows written
    before rows recorded their own step get the file's step."""
    path = Path(run_dir) / EVAL_FILE
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is corrupt: {error}") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("rows"), list) or "key" not in saved:
        raise ValueError(f"{path} is corrupt: it lacks 'key' or 'rows'")
    key = saved["key"]
    for row in saved["rows"] + saved.setdefault("replaced", []):
        if not isinstance(row, dict) or key not in row:
            raise ValueError(f"{path} is corrupt: a row lacks its {key!r}")
        row.setdefault("step", saved.get("step"))
        row.setdefault("eval_seed", None)  # drawn before evaluation seeds were recorded
    return saved


def merge_eval(saved: dict[str, Any] | None, rows: list[dict], task: str, model: str, key: str,
               step: int) -> dict[str, Any]:
    """eval.json's content after an evaluation: `saved`'s rows and `rows` merged by test value, the new
    row of a value replacing the old one, which moves to "replaced" (so no measurement is lost).
    A saved table of another task or quantity moves to "replaced" whole."""
    kept, replaced = {}, []
    if saved is not None:
        replaced = list(saved.get("replaced", []))
        if saved.get("key") == key and saved.get("task", task) == task:
            kept = {row[key]: row for row in saved["rows"]}
        else:
            replaced += saved["rows"]
    for row in rows:
        if row[key] in kept:
            replaced.append(kept[row[key]])
        kept[row[key]] = row
    return {"task": task, "model": model, "key": key, "step": step,
            "rows": [kept[value] for value in sorted(kept)], "replaced": replaced}


def stale_rows(saved: dict[str, Any], step: int) -> dict[int, list]:
    """{step: [test values]} of the rows that measured another checkpoint than `step` (the model now)."""
    stale: dict[int, list] = {}
    for row in saved["rows"]:
        if row.get("step") != step:
            stale.setdefault(row.get("step"), []).append(row[saved["key"]])
    return stale
