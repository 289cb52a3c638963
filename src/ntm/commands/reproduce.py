"""`ntm reproduce`: the paper's five tasks with the NTM, its LSTM baseline and the DNC, in one command.

Every (task, model) pair trains on the task's defaults for that model within the same wall-time
budget per run (`--minutes`), K seeds side by side, into `OUT/TASK-MODEL/`, as one experiment
(`ntm.experiment`): the best seed is judged on 1,000 fresh sequences per test value and gets its report.md. A pair that finished is recorded in `OUT/results.json`
and skipped when the command runs again, and a pair cut off mid-run resumes from its checkpoints,
so a killed reproduction goes on where it stopped. The results page (`--page`, default
docs/results.md) puts our figures beside the paper's, with a learning-curve figure per task and
generalisation pictures for copy and repeat copy.
"""

from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path
from typing import Any

from rich.console import Console

from ntm import tasks
from ntm.rundir import read_json, write_json_atomically
from ntm.training.runs import RunDirectory, SeedGroup

RESULTS_FILE = "results.json"
MODELS = ("ntm", "lstm", "dnc")
@dataclasses.dataclass(frozen=True)
class Plan:
    out: Path
    page: Path
    tasks: tuple[str, ...] = tuple(tasks.names())
    models: tuple[str, ...] = MODELS
    minutes: float = 4.0
    seeds: int = 1
    eval_sequences: int = 1000

    def __post_init__(self):
        for name in self.tasks:
            if name not in tasks.names():
                raise ValueError(f"unknown task {name!r}; choose from {', '.join(tasks.names())}")
        for name in self.models:
            if name not in MODELS:
                raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
        if not self.minutes > 0 or self.seeds < 1 or self.eval_sequences < 1:
            raise ValueError("--minutes, --seeds and --eval-sequences must be positive")


def run_pair(plan: Plan, task: str, model: str, console: Console) -> dict[str, Any]:
    """Train (or resume) one (task, model) pair, evaluate its best seed; the record of results.json."""
    from ntm.experiment import run_experiment
    from ntm.training import TrainSettings

    run_dir = plan.out / f"{task}-{model}"
    quiet = dict(eval_sequences=plan.eval_sequences, console=console, progress=False)
    if SeedGroup.holds_run(run_dir):
        experiment = run_experiment(run_dir=run_dir, resume=True, **quiet)
    else:
        settings = TrainSettings.for_task(task, model, minutes=plan.minutes, max_steps=10**9)
        experiment = run_experiment(settings, run_dir=run_dir, seeds=plan.seeds, **quiet)
    result, best = experiment.result, experiment.best
    solve_times = [r.solved_time for r in result.seeds if r.solved]
    return {
        "task": task, "model": model, "run_dir": str(best.run_dir), "seeds": len(result.seeds),
        "passed": len(solve_times), "solved": experiment.solved, "verdict": experiment.verdict,
        "median_solve_seconds": statistics.median(solve_times) if solve_times else None,
        "worst_solve_seconds": max(solve_times) if solve_times else None,
        "solved_sequences": best.solved_sequences, "sequences": best.sequences, "seconds": best.wall_time,
        "parameters": RunDirectory(best.run_dir).config.parameters,
        "key": experiment.conclusion.task.generalisation_key, "rows": experiment.rows,
        "settings": result.settings.to_dict(),
    }


def reproduce(plan: Plan, console: Console | None = None) -> Path:
    """Run every pair of the plan not yet recorded, then write the results page; returns its path."""
    console = console or Console(stderr=True)
    plan.out.mkdir(parents=True, exist_ok=True)
    record_path = plan.out / RESULTS_FILE
    records = read_json(record_path) if record_path.is_file() else {}
    for task in plan.tasks:
        for model in plan.models:
            key = f"{task}-{model}"
            if key in records:
                continue
            console.print(f"[bold]{key}[/]: training up to {plan.minutes:g} min x {plan.seeds} seed(s)")
            records[key] = run_pair(plan, task, model, console)
            write_json_atomically(record_path, records)
            console.print(f"{key}: {records[key]['verdict']}")
    return write_page(plan, records)


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def row_text(row: dict, key: str) -> str:
    figure = f"{row['bit_errors']:.2f} err"
    if "excess_cost" in row:
        figure = f"{row['cost']:.1f} bits ({row['excess_cost']:+.1f} vs optimal)"
    return f"{key} {row[key]}: {figure}"


def write_page(plan: Plan, records: dict[str, dict]) -> Path:
    """The results page: a table per task (ours beside the paper's), curves and pictures."""
    from ntm.plots import figures
    from ntm.plots.runs import show_run

    page_dir = plan.page.parent
    image_dir = page_dir / "results"
    lines = ["# The paper's five tasks, reproduced", "",
             f"Generated by `ntm reproduce --minutes {plan.minutes:g} --seeds {plan.seeds}` on this project's "
             f"2-core CPU: every model trains on the task's own defaults for at most {plan.minutes:g} minutes per "
             f"run; the best seed is then judged on {plan.eval_sequences:,} fresh sequences per test value "
             "(mean per sequence; `*` marks values outside the training range). \"Solved\" means the held-out "
             "check passed twice in a row on 1,000 fresh sequences each and no row of the table inside the "
             "training range fails.", ""]
    for task in plan.tasks:
        present = [records[f"{task}-{m}"] for m in plan.models if f"{task}-{m}" in records]
        if not present:
            continue
        task_object = tasks.get(task)
        lines += [f"## {task}", "", f"Solved: {task_object.solve_description}. Why: {task_object.solve_reason}.", "",
                  "| model | parameters | seeds passed | time to solve (median / worst) | sequences to solve | "
                  "result | generalisation | paper |", "|---|---|---|---|---|---|---|---|"]
        for record in present:
            paper = task_object.PAPER_RESULTS.get(record["model"], "-")
            generalisation = "; ".join(row_text(row, record["key"]) + ("" if row["in_training_range"] else "*")
                                       for row in record["rows"])
            parameters = f"{record['parameters']:,}" if record["parameters"] else "-"
            lines.append(
                f"| {record['model']} | {parameters} | {record['passed']}/{record['seeds']} | "
                f"{format_seconds(record['median_solve_seconds'])} / {format_seconds(record['worst_solve_seconds'])} | "
                f"{record['solved_sequences'] or '-'} | {record['verdict']} | {generalisation} | {paper} |")
        curves = {record["model"]: RunDirectory(record["run_dir"]).records() for record in present}
        curve_path = figures.plot_learning_curves(curves, image_dir / f"{task}-learning.png",
                                                  f"{task}: NTM against its baselines (best seed of each)")
        lines += ["", f"![{task} learning curves](results/{curve_path.name})", ""]
        for record in present:
            for value in task_object.PICTURE_VALUES if record["model"] in ("ntm", "lstm") else ():
                shown = show_run(Path(record["run_dir"]), value, out=image_dir / f"{task}-{record['model']}-{value}.png")
                lines += [f"{record['model']}, {task_object.generalisation_key} {value}: {shown.bit_errors} bit errors "
                          f"of {shown.scored_bits}", "", f"![{task} {record['model']} {value}](results/{shown.path.name})",
                          ""]
    plan.page.parent.mkdir(parents=True, exist_ok=True)
    plan.page.write_text("\n".join(lines) + "\n")
    return plan.page


def ship(records: dict[str, dict], root: Path | None = None) -> list[str]:
    """Ship each task's NTM of a reproduction as a pretrained model (package data), with its figures."""
    from ntm.saving import add_pretrained, load

    shipped = []
    for record in records.values():
        if record["model"] != "ntm":
            continue
        settings = record["settings"]
        add_pretrained(record["task"], load(record["run_dir"]), task=record["task"],
                       task_options=settings.get("task_options", {}), training_sequences=record["sequences"],
                       wall_time=record["seconds"], eval_key=record["key"], eval_rows=record["rows"],
                       notes=f"ntm reproduce: {record['verdict']}", root=root)
        shipped.append(record["task"])
    return shipped


def add_commands(commands) -> None:
    """Register `ntm reproduce` on the `ntm` subparsers object."""
    command = commands.add_parser("reproduce", help="train the paper's five tasks with the NTM, LSTM and DNC and "
                                                    "write the results page (resumable)")
    command.add_argument("--out", default="reproduce", help="where the runs go (default ./reproduce)")
    command.add_argument("--page", default="docs/results.md", help="the results page (default docs/results.md)")
    command.add_argument("--tasks", default=",".join(tasks.names()), help="comma-separated tasks (default all)")
    command.add_argument("--models", default=",".join(MODELS), help="comma-separated models (default ntm,lstm,dnc)")
    command.add_argument("--minutes", type=float, default=4.0, help="training budget per run (default 4)")
    command.add_argument("--seeds", type=int, default=1, help="seeds per run, trained side by side (default 1)")
    command.add_argument("--eval-sequences", type=int, default=1000, help="fresh sequences per test value")
    command.add_argument("--ship", action="store_true", help="also ship each task's NTM as a pretrained model "
                                                            "(into the package's pretrained_models folder)")
    command.set_defaults(handler=run_command)


def run_command(args, console: Console) -> int:
    plan = Plan(Path(args.out), Path(args.page), tuple(t for t in args.tasks.split(",") if t),
                tuple(m for m in args.models.split(",") if m), args.minutes, args.seeds, args.eval_sequences)
    page = reproduce(plan, console)
    Console().print(f"results page: {page}")
    if args.ship:
        shipped = ship(read_json(plan.out / RESULTS_FILE))
        Console().print(f"shipped as pretrained: {', '.join(shipped) or 'none'}")
    return 0
