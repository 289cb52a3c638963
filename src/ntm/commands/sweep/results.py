"""What the trials of `ntm sweep` found: one row per trial from Tune's results, results.csv, and the table.

Rows are ranked best first (`rank_key`): solved trials by time to solve, then the others that ended by
their last held-out cost, then those an interruption left unfinished, failed trials last. The figure of
the same rows is `ntm.plots.figures.sweep_figure`; `trial_curves` reads what it draws from the trials'
run directories.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Any

from rich.table import Table

from ntm.commands.sweep import TRIALS_DIR
from ntm.commands.sweep.space import Search
from ntm.commands.sweep.trial import held_out_checks
from ntm.plots.figures import setting_text


def status_of(metrics: dict[str, Any], error) -> str:
    if error is not None:
        return "error"
    if metrics.get("finished"):
        if metrics.get("diverged"):
            return "diverged"
        return "solved" if metrics.get("solved") else "not solved"
    if metrics.get("done"):
        return "stopped early"  # ASHA stopped it after a poor held-out check
    return "unfinished"  # the sweep was interrupted before it ended


def number(value, default=math.nan) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def collect(results, searches: list[Search]) -> list[dict[str, Any]]:
    """One row per trial from Tune's results (the last report of each), best first."""
    rows = []
    for result in results:
        metrics = result.metrics or {}
        name = Path(result.path).name
        solved = bool(metrics.get("finished") and metrics.get("solved"))
        row = {"trial": name}
        row.update({search.name: result.config.get(search.flag.dest) for search in searches})
        row.update({
            "status": status_of(metrics, result.error),
            "solved": solved,
            "steps": int(number(metrics.get("step"), 0)),
            "sequences": int(number(metrics.get("sequences"), 0)),
            "wall_time_s": number(metrics.get("time")),
            "time_to_solve_s": number(metrics.get("solved_time")) if solved else math.nan,
            "sequences_to_solve": int(number(metrics.get("solved_sequences"), 0)) if solved else None,
            "cost": number(metrics.get("cost")),
            "bit_errors": number(metrics.get("bit_errors")),
            "run_dir": str(Path(TRIALS_DIR) / name),
        })
        if result.error is not None:
            row["error"] = str(result.error).strip().splitlines()[-1][:200] if str(result.error).strip() else ""
        rows.append(row)
    return sorted(rows, key=rank_key)


def rank_key(row: dict[str, Any]):
    """Solved trials first, fastest to solve first; then the other trials that ended, by final held-out
    cost; then trials an interruption left unfinished; failed trials last."""
    if row["solved"]:
        return (0, row["time_to_solve_s"], row["trial"])
    group = {"unfinished": 2, "error": 3}.get(row["status"], 1)
    cost = row["cost"]
    return (group, cost if math.isfinite(cost) else math.inf, row["trial"])


def csv_columns(searches: list[Search]) -> list[str]:
    return ["trial", *(s.name for s in searches), "status", "solved", "steps", "sequences", "wall_time_s",
            "time_to_solve_s", "sequences_to_solve", "cost", "bit_errors", "run_dir"]


def write_results(rows: list[dict[str, Any]], searches: list[Search], path: Path) -> Path:
    """results.csv: one row per trial, best first; empty cells where a figure does not exist."""

    def cell(value):
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return ""
        if isinstance(value, float):
            return f"{value:.6g}"
        return value

    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=csv_columns(searches), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: cell(value) for key, value in row.items()})
    os.replace(tmp, path)
    return path


def results_table(rows: list[dict[str, Any]], searches: list[Search], title: str) -> Table:
    table = Table(title=title, caption="seconds: training time; to solve: seconds until the held-out check "
                                       "passed; cost (bits) and bit errors: per sequence at the last held-out check")
    for column in ("#", *(s.name for s in searches), "outcome", "steps", "sequences", "seconds", "to solve",
                   "cost", "bit errors"):
        table.add_column(column, justify="right")
    for rank, row in enumerate(rows, 1):
        table.add_row(str(rank), *(setting_text(row[s.name]) for s in searches), row["status"], f"{row['steps']:,}",
                      f"{row['sequences']:,}", measured(row["wall_time_s"], ".1f"),
                      measured(row["time_to_solve_s"], ".1f"), measured(row["cost"], ".3f"),
                      measured(row["bit_errors"], ".3f"))
    return table


def measured(value: float, spec: str) -> str:
    """A measured figure of the table, or '-' where there is none (NaN)."""
    return format(value, spec) if math.isfinite(value) else "-"


def trial_curves(rows: list[dict[str, Any]], sweep_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """(training sequences, held-out cost) of every held-out check each trial's run directory logged."""
    from ntm.training.runs import RunDirectory

    curves = {}
    for row in rows:
        run_dir = RunDirectory(sweep_dir / row["run_dir"])
        if not run_dir.exists:
            continue
        batch = run_dir.settings.batch_size
        curves[row["trial"]] = [(check.step * batch, check.cost) for check in held_out_checks(run_dir.path)]
    return curves
