"""Evaluation of a trained run: cost and bit errors per sequence at each test length (or item count).

`load_run` (`ntm.training.runs`, the one loader) gives the task and the trained model of a run
directory; `evaluate_model` tests a model at each value
(at least 1,000 held-out sequences a row, intervals valid for each statistic, the task's criterion
tested once at 95 %); `evaluate_run` does both and writes eval.json. `final_rows` is the table a run
ends with: the rows its stop rule certified, plus fresh rows outside them; `verdict_text` puts the
certificate in words, so the summary and the table agree by construction.

Held-out draws: the row at test value v with evaluation seed s is drawn from
`np.random.default_rng([EVAL_SEED, s, v])`, a stream that no training seed or held-out check uses. The
default seed 0 draws the same sequences every time, so a table is reproducible; `ntm eval --seed S`
draws others.

eval.json keeps every table a run was given: rows are merged by test value, the newest row of a value
wins, and the rows it replaced are kept under "replaced". Each row records the checkpoint step it
measured and its evaluation seed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx
from rich import box
from rich.table import Table

from ntm.rundir import write_json_atomically
from ntm.training.judge import Judge
from ntm.training.records import HeldOut, Solved, of_kind
from ntm.training.runs import LoadedRun, RunDirectory, load_run

EVAL_FILE = "eval.json"
# Evaluation batches are drawn from [EVAL_SEED, evaluation seed, tested value]: never trained on.
EVAL_SEED = 7_000_001
# The evaluation seed of `ntm eval` and of the training's final table unless --seed says otherwise.
DEFAULT_EVAL_SEED = 0
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
                   seed: int = DEFAULT_EVAL_SEED, confidence: float = 0.95,
                   max_failure_rate: float | None = None) -> list[dict]:
    """One row per value of the task's generalisation quantity: at least `sequences` held-out sequences,
    means with 95 % intervals, and the task's criterion tested once at `confidence` (a rate criterion
    draws up to its plan, 2,995 sequences at 95 %, while no sequence has failed). Evaluation seed `seed`
    draws the same sequences every time."""
    check_eval_seed(seed)
    difficulties = [task.eval_difficulty(value) for value in values]  # ValueError for an impossible value
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    stacked = jax.tree.map(lambda leaf: leaf[None], params)
    rows = []
    for value, difficulty in zip(values, difficulties):
        judge = Judge(task, graphdef, rest, chunk=min(EVAL_CHUNK, sequences), pad_to=task.max_steps(**difficulty),
                      judge_sequences=sequences, max_failure_rate=max_failure_rate)
        started = time.perf_counter()
        verdict = judge.certify(stacked, [difficulty], [1], eval_rng(seed, value), screen=False,
                                min_sequences=sequences, alphas=[1 - confidence])[0]
        rows.append(table_row(task, verdict.rows[0], value, "evaluation", time.perf_counter() - started))
    return rows


def check_eval_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"the evaluation seed must be an integer >= 0, got {seed!r}")
    return int(seed)


def eval_rng(seed: int, value: int) -> np.random.Generator:
    """The held-out sequences of one row: evaluation seed `seed`, test value `value`."""
    return np.random.default_rng([EVAL_SEED, check_eval_seed(seed), value])


def table_row(task, judged: dict, value: int, source: str, seconds: float | None = None) -> dict:
    """A judged row (`judge.judged_row`) as a row of the generalisation table; `source` says which test
    it came from: "stop rule" (the run's certificate) or "evaluation" (a test of its own)."""
    row = {**judged, task.generalisation_key: value, "in_training_range": in_training_range(task, value),
           "solved": judged["certified"], "source": source}
    if seconds is not None:
        row["seconds"] = seconds
    return row


def certificate_rows(run_dir: Path | str, step: int, task) -> tuple[bool, list[dict]]:
    """(solved, rows): whether the run's stop rule certified it, and the table rows of its last certified
    check if that check judged the model at `step` (the saved model); rows are empty otherwise."""
    records = RunDirectory(run_dir).records()
    solved = bool(of_kind(records, Solved))
    checks = [check for check in of_kind(records, HeldOut) if "rows" in check.verdict]
    if not checks or checks[-1].step != step or not checks[-1].verdict.get("screened"):
        return solved, []
    key = task.generalisation_key
    return solved, [table_row(task, judged, judged[key], "stop rule") for judged in checks[-1].verdict["rows"]
                    if key in judged]


def final_rows(run_dir: Path | str, values: list[int] | None = None, sequences: int = EVAL_SEQUENCES,
               confidence: float = 0.95) -> tuple[LoadedRun, bool, list[dict]]:
    """The table a run ends with: the rows its stop rule certified (inside the training range), and a
    fresh evaluation at every other value; (run, solved, rows sorted by value)."""
    run = load_run(run_dir)
    key = run.task.generalisation_key
    solved, rows = certificate_rows(run_dir, run.step, run.task)
    values = values or run.task.default_eval_values
    have = {row[key] for row in rows}
    fresh = [value for value in values if value not in have]
    rows += evaluate_model(run.model, run.task, fresh, sequences, confidence=confidence,
                           max_failure_rate=run.settings.max_failure_rate) if fresh else []
    wanted = set(values) | {row[key] for row in rows if row["source"] == "stop rule"}
    return run, solved, sorted((row for row in rows if row[key] in wanted), key=lambda row: row[key])


def number(value: float, digits: int = 3) -> str:
    """A figure, compact: 0, 0.00089, 0.16, 2.46, 132.6, 1,204 (`digits` significant below 100; with fewer
    than 3, whole numbers from 100 on)."""
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}" if abs(value) >= 1000 or digits < 3 else f"{value:.1f}"
    return f"{value:.{digits}g}" if abs(value) >= 1 else f"{value:.{min(digits, 2)}g}"


def figure_text(row: dict, name: str, scale: float = 1.0) -> str:
    """A mean and its 95 % interval, compact: `0.013 [0.002,0.04]`."""
    low, high = row[f"{name}_interval"]
    return f"{number(row[name] * scale)} [{number(low * scale, 2)},{number(high * scale, 2)}]"


def eval_table(rows: list[dict], task, title: str) -> Table:
    """The generalisation table: one row per test value; fits 80 columns."""
    criterion = task.criterion
    marker = bool(rows) and "end_marker_errors" in rows[0]
    caption = (("wrong: sequences with any wrong bit, of those judged; per 1,000: their rate; "
                if criterion.kind == "rate" else "") + ("marker: the end marker's wrong bits; " if marker else "")
               + "means per sequence, [95 % interval] (rates: exact binomial; means: bootstrap); "
               f"certified: {task.solve_description}, by the run's stop rule (†) or a test of its own at 95 %; "
               "* outside training" + ("; eval.json has each row's cost and its bit errors' interval"
                                        if criterion.kind == "rate" else ""))
    # Padding only between columns, and in rate tables one interval (the rate's): 80 columns.
    table = Table(title=title, caption=caption if rows else None, box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True)
    table.add_column(task.generalisation_key, justify="right", no_wrap=True)
    if criterion.kind == "rate":
        columns = [("wrong", lambda r: f"{r['failures']:,}/{r['sequences']:,}"),
                   ("per 1,000", lambda r: figure_text(r, "failure_rate", 1000)),
                   ("bit errors", lambda r: number(r["bit_errors"]))]
        if marker:
            columns.append(("marker", lambda r: number(r["end_marker_errors"])))
    else:
        metric = criterion.metric
        columns = [("seqs", lambda r: f"{r['sequences']:,}"),
                   ("above optimal" if metric == "excess_cost" else "bit errors", lambda r: figure_text(r, metric))]
        if metric != "bit_errors":
            columns.append(("bit errors", lambda r: number(r["bit_errors"])))
        columns.append(("cost", lambda r: number(r["cost"])))
    for header, _ in columns:
        table.add_column(header, justify="right", no_wrap=True)
    table.add_column("certified", justify="left", no_wrap=True)
    for row in rows:
        mark = ("yes" if row["solved"] else "no") + (" †" if row.get("source") == "stop rule" else "")
        table.add_row(str(row[task.generalisation_key]) + ("" if row["in_training_range"] else " *"),
                      *(text(row) for _, text in columns), mark)
    return table


def row_claim(task, row: dict) -> str:
    """What one row shows against the criterion, in words."""
    where = f"{task.generalisation_key} {row[task.generalisation_key]}"
    if "failures" in row:
        return (f"{where}: {row['failures']:,} of {row['sequences']:,} sequences wrong (rate at most "
                f"{number(row['failure_rate_interval'][1])}, 95 %)")
    metric = task.criterion.metric
    return f"{where}: {metric.replace('_', ' ')} {number(row[metric])} [{number(row[metric + '_interval'][1])} at most, 95 %]"


def verdict_text(solved: bool, rows: list[dict], task) -> tuple[bool, str]:
    """(solved, one line): the stop rule's certificate, in words, agreeing with the table's rows.

    A solved run's rows inside the training range are its certificate's own (marked †), so they agree
    by construction; a later evaluation that did not certify a value inside the range is named."""
    key = task.generalisation_key
    inside = [row for row in rows if row.get("in_training_range")]
    if solved:
        where = ", ".join(str(row[key]) for row in inside if row.get("source") == "stop rule")
        text = f"solved: {task.solve_description}" + (f", certified at {key} {where}" if where else ", certified")
        failing = [row for row in inside if row.get("source") != "stop rule" and not row.get("solved")]
        if failing:
            text += f"; a later test did not certify {', '.join(row_claim(task, row) for row in failing)}"
        return True, text
    if not inside:
        return False, "not solved"
    return False, "not solved: " + "; ".join(row_claim(task, row) for row in inside)


def evaluate_run(run_dir: Path | str, values: list[int] | None = None, sequences: int = EVAL_SEQUENCES,
                 seed: int = DEFAULT_EVAL_SEED) -> tuple[LoadedRun, list[dict]]:
    """Evaluate a run directory's model (a test of its own at each value) and merge the rows into its
    eval.json (earlier rows at other values are kept; see `merge_eval`). Returns the run and the new rows."""
    check_eval_seed(seed)
    run = load_run(run_dir)
    values = values or run.task.default_eval_values
    for value in values:
        run.task.eval_difficulty(value)  # fail before any compile
    rows = evaluate_model(run.model, run.task, values, sequences, seed, max_failure_rate=run.settings.max_failure_rate)
    write_eval(run, rows, seed)
    return run, rows


def write_eval(run: LoadedRun, rows: list[dict], seed: int | None = DEFAULT_EVAL_SEED) -> Path:
    """Merge `rows` into the run's eval.json, each stamped with the step it measured and its seed."""
    for row in rows:
        row.setdefault("step", run.step)
        row.setdefault("eval_seed", seed if row.get("source") != "stop rule" else None)
        row.setdefault("evaluated_at", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    merged = merge_eval(read_eval(run.run_dir), rows, run.settings.task, run.settings.model,
                        run.task.generalisation_key, run.step)
    path = Path(run.run_dir) / EVAL_FILE
    write_json_atomically(path, merged)
    return path


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
