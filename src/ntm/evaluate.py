"""Evaluation of a trained run: cost and bit errors per sequence at each test length (or item count).

`load_run` (`ntm.training.runs`, the one loader) gives the task and the trained model of a run
directory; `evaluate_model` measures a model on at least
1,000 fresh sequences per row, with a 95 % interval beside each figure; `evaluate_run` does both and
writes eval.json; `verdict_text` is the one-line summary, which never says "solved" when a row inside
the training range says otherwise.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import numpy as np
from flax import nnx
from rich.table import Table

from ntm.rundir import write_json_atomically
from ntm.training.judge import Judge, summarize
from ntm.training.runs import LoadedRun, load_run

EVAL_FILE = "eval.json"
# Evaluation batches are drawn from this seed plus the tested value: fresh, never trained on.
EVAL_SEED = 7_000_001
# Sequences per row of the final table, and per compiled chunk.
EVAL_SEQUENCES = 1000
EVAL_CHUNK = 250


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
                   seed: int = EVAL_SEED) -> list[dict]:
    """Means per sequence (with 95 % intervals) over `sequences` fresh sequences at each value of the
    task's generalisation quantity; a row's `solved` applies the task's criterion to it."""
    difficulties = [task.eval_difficulty(value) for value in values]  # ValueError for an impossible value
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    stacked = jax.tree.map(lambda leaf: leaf[None], params)
    rows = []
    for value, difficulty in zip(values, difficulties):
        judge = Judge(task, graphdef, rest, chunk=min(EVAL_CHUNK, sequences), pad_to=task.max_steps(**difficulty))
        started = time.perf_counter()
        stats = judge.measure(stacked, difficulty, sequences, np.random.default_rng(seed + value))[0]
        verdict = summarize(task, stats)
        rows.append({task.generalisation_key: value, "sequences": verdict.sequences, **verdict.row(),
                     "in_training_range": in_training_range(task, value),
                     "seconds": time.perf_counter() - started})
    return rows


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


def evaluate_run(run_dir: Path | str, values: list[int] | None = None,
                 sequences: int = EVAL_SEQUENCES) -> tuple[LoadedRun, list[dict]]:
    """Evaluate a run directory's model and write eval.json beside it."""
    run = load_run(run_dir)
    values = values or run.task.default_eval_values
    for value in values:
        run.task.eval_difficulty(value)  # fail before any compile
    rows = evaluate_model(run.model, run.task, values, sequences)
    write_json_atomically(Path(run_dir) / EVAL_FILE, {
        "task": run.settings.task, "model": run.settings.model, "step": run.step,
        "key": run.task.generalisation_key, "rows": rows,
    })
    return run, rows
