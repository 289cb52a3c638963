"""Pictures of run directories: one traced sample (`show_run`), several runs side by side
(`compare_runs`) and the report of one run (`write_report`, report.md with its PNGs).

This is the glue between the run directory on disk (`ntm.rundir`, `ntm.evaluate`) and the pure
figure functions of `ntm.plots.figures`. Bad run directories and lengths raise ValueError with a
message fit for one line on stderr, as `ntm eval` does.
"""

from __future__ import annotations

import dataclasses
import json
import math
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np
from flax import nnx
from rich.table import Table

from ntm import tasks
from ntm.evaluate import EVAL_FILE, read_eval, stale_rows, verdict_text
from ntm.plots import figures
from ntm.training.records import NanRestore, Record, Solved, of_kind
from ntm.training.runs import LoadedRun, RunConfig, RunDirectory, load_run
from ntm.sequence import count_params

REPORT_FILE = "report.md"
LEARNING_CURVE_FILE = "learning_curve.png"
GENERALISATION_FILE = "generalisation.png"
SHOW_FILE = "show.png"
# Traces of longer sequences are unreadable at any figure width and cost memory ([T,N,M] per step).
MAX_SHOW_STEPS = 2048
# Samples for pictures come from their own seeds, apart from training, held-out and eval batches.
SHOW_SEED = 5_000_011


# ----------------------------------------------------------------------------- words for titles


def difficulty_text(task, difficulty: dict[str, int] | None = None) -> str:
    """'length 1-20', 'length 1-10, repeats 1-10', 'items 20': the ranges of a difficulty."""
    difficulty = difficulty or task.difficulty
    parts = []
    for low_key, high_key, _ in task.RANGES:
        low, high = difficulty[low_key], difficulty[high_key]
        parts.append(f"{low_key.removeprefix('min_')} {low}" + ("" if low == high else f"–{high}"))
    return ", ".join(parts)


def value_text(task, value: int) -> str:
    """'length 20' or 'items 6': one value of the generalisation quantity."""
    return f"{task.generalisation_key} {value}"


def axis_label(task) -> str:
    return task.axis_label


def training_maximum(task) -> int | None:
    """The largest value of the generalisation quantity in the task's training difficulty."""
    return task.difficulty.get(f"max_{task.generalisation_key}")


def training_range(task) -> tuple[int, int] | None:
    """(smallest, largest) value of the generalisation quantity in training, if it is a range."""
    key = task.generalisation_key
    if f"min_{key}" not in task.difficulty or f"max_{key}" not in task.difficulty:
        return None
    return task.difficulty[f"min_{key}"], task.difficulty[f"max_{key}"]


# ----------------------------------------------------------------------------- ntm show


class TracedSample(NamedTuple):
    batch: Any  # ntm.tasks.Batch of one sequence
    logits: np.ndarray  # [1,T,O]
    trace: Any  # the model's trace, stacked [1,T,...]
    value: int  # of the task's generalisation quantity


class ShowResult(NamedTuple):
    path: Path
    value: int
    bit_errors: int
    scored_bits: int


def trace_sample(run: LoadedRun, length: int | None = None, seed: int = 0) -> TracedSample:
    """One fresh sequence at `length` (the task's generalisation value; default its training
    maximum) through the run's model with `trace=True`."""
    return trace_model_sample(run.model, run.task, length, seed)


def trace_model_sample(model: nnx.Module, task, length: int | None = None, seed: int = 0) -> TracedSample:
    """One fresh sequence of `task` at `length` (default: the task's training maximum) through
    `model` with `trace=True`; samples come from their own seeds, apart from training data."""
    value = training_maximum(task) if length is None else length
    if value is None:
        value = task.default_eval_values[0]
    difficulty = task.eval_difficulty(value)  # ValueError naming the key for an impossible value
    steps = task.max_steps(**difficulty)
    if steps > MAX_SHOW_STEPS:
        raise ValueError(f"{value_text(task, value)} needs {steps} steps; ntm show draws at most {MAX_SHOW_STEPS}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    batch = task.sample(np.random.default_rng(SHOW_SEED + seed), 1, **difficulty)
    # All of the model's state, not only nnx.Param: a layer may hold its own random stream.
    graphdef, state = nnx.split(model)
    logits, trace = traced_forward(graphdef, state, batch.inputs, batch.lengths, jax.random.key(seed))
    return TracedSample(batch, np.asarray(logits), jax.device_get(trace), value)


@partial(jax.jit, static_argnums=0)
def traced_forward(graphdef, state, inputs, lengths, key):
    """The model's logits and trace, compiled once per model structure and sequence shape."""
    return nnx.merge(graphdef, state)(inputs, lengths=lengths, trace=True, rngs=key)


def show_title(run: LoadedRun, value: int) -> str:
    return (f"{run.settings.task}: {run.settings.model} at {value_text(run.task, value)} "
            f"(trained on {difficulty_text(run.task)}, step {run.step})")


def show_run(run: LoadedRun | Path | str, length: int | None = None, seed: int = 0, out: Path | str | None = None) -> ShowResult:
    """Draw one traced sample of a run (a LoadedRun or its directory) into a PNG.

    The default `out` is `RUN_DIR/show-<key><value>.png`.
    """
    if out is not None and Path(out).suffix.lower() != ".png":
        raise ValueError(f"the picture must be a .png file, got {str(out)!r}")
    if not isinstance(run, LoadedRun):
        run = load_run(run)
    sample = trace_sample(run, length, seed)
    key = run.task.generalisation_key
    path = Path(out) if out is not None else run.run_dir / f"show-{key}{sample.value}.png"
    _, facts = figures.trace_panels(sample.batch, sample.logits, sample.trace)
    figures.plot_trace(sample.batch, sample.logits, sample.trace, show_title(run, sample.value), path)
    return ShowResult(path, sample.value, int(facts["errors"].sum()), facts["scored_bits"])


# ----------------------------------------------------------------------------- ntm compare


def flat_settings(config: RunConfig) -> dict[str, Any]:
    """A run's choices in one flat dict: model, model config fields, settings, task options."""
    settings = config.settings.to_dict()
    flat = {"model": config.model}
    flat.update({key: value for key, value in config.model_config.items() if key not in ("input_size", "output_size")})
    flat.update({key: value for key, value in settings.items() if key not in ("model_options", "task_options", "model")})
    flat.update(settings.get("task_options", {}))
    return flat


def run_labels(run_dirs: list[Path], configs: list[RunConfig]) -> list[str]:
    """Short distinct labels: the model and the choices that differ between the runs
    (e.g. 'ntm, memory_init=random'), or the directory names where that is not enough."""
    flats = [flat_settings(config) for config in configs]
    keys = sorted({key for flat in flats for key in flat})
    # Only choices every run has: an NTM's memory_slots says nothing when set against an LSTM.
    shared = [key for key in keys if key != "model" and all(key in flat for flat in flats)]
    differing = [key for key in shared if len({json.dumps(flat[key], sort_keys=True) for flat in flats}) > 1]
    labels = []
    for flat in flats:
        extras = ", ".join(f"{key}={flat[key]}" for key in differing)
        labels.append(str(flat["model"]) + (f", {extras}" if extras else ""))
    if len(set(labels)) < len(labels) or any(len(label) > 48 for label in labels):
        names = [path.name or str(path) for path in run_dirs]
        labels = names if len(set(names)) == len(names) else [str(path) for path in run_dirs]
    return labels


@dataclasses.dataclass
class Comparison:
    path: Path
    labels: list[str]
    tables: list[Table]
    notes: list[str]
    run_dirs: dict[str, Path]  # label -> run directory


# Width of a console when output is piped; the comparison tables keep within it.
TABLE_WIDTH = 80


def eval_comparison_tables(key: str, evals: dict[str, list[dict]], title: str,
                           numbers: dict[str, int] | None = None) -> list[Table]:
    """Bit errors and cost per sequence: one row per tested value, one column per run, within 80
    columns. A column is headed by the run's label where every label fits, else by its number in
    `numbers` ("[2]", which `ntm compare` prints beside each label); runs that still do not fit go on
    into a further table. Nothing is cut."""
    numbers = numbers or {label: index for index, label in enumerate(evals, start=1)}
    values = sorted({row[key] for rows in evals.values() for row in rows})
    tables = []
    for name, what in (("bit_errors", "bit errors per sequence"), ("cost", "cost (bits per sequence)")):
        cells = {label: [f"{match[0][name]:.3f}" if match else "–"
                         for match in ([row for row in rows if row[key] == value] for value in values)]
                 for label, rows in evals.items()}
        key_width = max([len(key)] + [len(str(value)) for value in values]) + 3
        by_label = {label: max([len(label)] + [len(cell) for cell in column]) + 3 for label, column in cells.items()}
        use_labels = 1 + key_width + sum(by_label.values()) <= TABLE_WIDTH
        heads = {label: label if use_labels else f"[{numbers[label]}]" for label in evals}
        widths = {label: max([len(heads[label])] + [len(cell) for cell in cells[label]]) + 3 for label in evals}
        groups, width = [[]], 1 + key_width
        for label in evals:
            if groups[-1] and width + widths[label] > TABLE_WIDTH:
                groups.append([])
                width = 1 + key_width
            groups[-1].append(label)
            width += widths[label]
        for group in groups:
            heading = f"{title}: {what}"
            table = Table(title=heading, title_justify="left", min_width=min(len(heading), TABLE_WIDTH))
            table.add_column(key, justify="right", no_wrap=True)
            for label in group:
                table.add_column(heads[label], justify="right", no_wrap=True)
            for index, value in enumerate(values):
                table.add_row(str(value), *(cells[label][index] for label in group))
            tables.append(table)
    return tables


def compare_runs(run_dirs: list[Path | str], out: Path | str, labels: list[str] | None = None) -> Comparison:
    """Learning curves of several runs on one figure (and their generalisation where evaluated),
    and their eval tables side by side."""
    run_dirs = [Path(path) for path in run_dirs]
    if not run_dirs:
        raise ValueError("ntm compare needs at least one run directory")
    if Path(out).suffix.lower() != ".png":
        raise ValueError(f"the picture must be a .png file, got {str(out)!r}")
    configs = [RunDirectory(path).config for path in run_dirs]
    if labels is None:
        labels = run_labels(run_dirs, configs)
    elif len(labels) != len(run_dirs) or len(set(labels)) != len(labels):
        raise ValueError(f"labels: need {len(run_dirs)} distinct labels, one per run, got {len(labels)}")
    notes, runs, evals = [], {}, {}
    for label, path in zip(labels, run_dirs):
        records = RunDirectory(path).records()
        if not figures.training_rows(records):
            notes.append(f"{path} has no logged training steps in its metrics.jsonl")
        runs[label] = records
        saved = read_eval(path)
        if saved is None:
            notes.append(f"{path} has no {EVAL_FILE} (run ntm eval {path}) so it is missing from the eval table")
        else:
            evals[label] = saved
            for step, values in stale_rows(saved, saved["step"]).items():
                notes.append(f"{path}: the rows at {saved['key']} {', '.join(map(str, values))} measured step "
                             f"{step}, the newest evaluation step {saved['step']}")
    task_names = sorted({config.settings.task for config in configs})
    tasks_text = " and ".join(task_names)
    # Tables (and the generalisation panel) group runs by the quantity they were tested on.
    by_key: dict[str, dict[str, list[dict]]] = {}
    for label, saved in evals.items():
        by_key.setdefault(saved["key"], {})[label] = saved["rows"]
    plotted_key = next(iter(by_key), None)
    # Runs never evaluated still get their (empty) columns in the first table, so none goes unmentioned.
    if plotted_key is not None:
        by_key[plotted_key].update({label: [] for label in labels if label not in evals})
        by_key[plotted_key] = {label: by_key[plotted_key][label] for label in labels if label in by_key[plotted_key]}
    numbers = {label: index for index, label in enumerate(labels, start=1)}
    tables = [table for key, group in by_key.items()
              for table in eval_comparison_tables(key, group, f"{tasks_text} ({EVAL_FILE})", numbers)]
    xlabel = None
    if len(task_names) == 1:
        xlabel = tasks.get(task_names[0]).axis_label
    title = f"{tasks_text}: " + " vs ".join(labels)
    if len(title) > 110:
        title = f"{tasks_text}: {len(labels)} runs"
    plotted = {label: rows for label, rows in by_key.get(plotted_key, {}).items() if rows}
    figure = figures.comparison_figure(runs, plotted, plotted_key, title, xlabel)
    path = figures.save_figure(figure, out)
    return Comparison(path, labels, tables, notes, dict(zip(labels, run_dirs)))


# ----------------------------------------------------------------------------- report.md


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def format_value(value: Any) -> str:
    if isinstance(value, dict):
        return "`" + json.dumps(value, sort_keys=True) + "`" if value else "–"
    if value is None:
        return "–"
    return f"`{value}`"


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "unknown"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def wall_time(records: list[Record]) -> float:
    """Training wall time: the last logged training row's."""
    train = figures.training_rows(records)
    return float(train[-1].time) if train else math.nan


def write_report(run_dir: Path | str, eval_rows: list[dict] | None = None) -> Path:
    """Write report.md into a run directory with its learning curve, generalisation plot and one
    traced sample as PNGs beside it; returns the path of report.md.

    `eval_rows` are the rows of `ntm eval` (`evaluate_run`); without them eval.json is used when
    the run has one.
    """
    run_dir = Path(run_dir)
    config = RunDirectory(run_dir).config
    run = load_run(run_dir)
    task, settings = run.task, run.settings
    key = task.generalisation_key
    records = RunDirectory(run_dir).records()
    train = figures.training_rows(records)
    if eval_rows is None:  # every table the run was given, merged (see ntm.evaluate.merge_eval)
        saved = read_eval(run_dir)
        eval_rows = saved["rows"] if saved is not None else None
    # Rows of an earlier checkpoint stay in the table, marked, but say nothing about the model now.
    older = {row[key]: row["step"] for row in eval_rows or [] if row.get("step", run.step) != run.step}
    name = f"{settings.task}: {settings.model}"
    trained_on = difficulty_text(task)
    levels = len(task.curriculum_levels()) if settings.curriculum != "none" else 1
    passed = bool(of_kind(records, Solved))
    solved, verdict = verdict_text(passed, [row for row in eval_rows or [] if row[key] not in older], task)
    sequences = train[-1].sequences if train else 0
    last = train[-1] if train else None

    sections = [f"# {name} trained on {trained_on}", ""]
    summary = (f"{verdict[0].upper() + verdict[1:]} after {run.step} steps ({sequences:,} sequences) "
               f"in {format_duration(wall_time(records))} of training; reached curriculum level "
               f"{(last.level if last else 0) + 1} of {levels}.")
    if last:
        summary += (f" Last logged batch: {last.cost:.3f} bits of cost and "
                    f"{last.bit_errors:.3f} bit errors per sequence.")
    parameters = config.parameters
    if not isinstance(parameters, int):
        parameters = count_params(run.model)
    sections += [summary, "", f"Parameters: {parameters:,}.", ""]
    nan_events = of_kind(records, NanRestore)
    if nan_events:
        sections += [f"Non-finite steps forced {len(nan_events)} restore(s) with a lower learning rate.", ""]

    sections += ["## Learning curve", ""]
    if train:
        figures.plot_learning_curves({settings.model: records}, run_dir / LEARNING_CURVE_FILE,
                                     f"{name}: learning curve (trained on {trained_on})")
        sections += ["Cost and bit errors per sequence against sequences seen; dotted lines mark curriculum "
                     "levels, dashed lines the held-out checks.", "", f"![learning curve]({LEARNING_CURVE_FILE})", ""]
    else:
        sections += ["No training steps were logged.", ""]

    sections += ["## Generalisation", ""]
    if eval_rows:
        values = ", ".join(str(row[key]) for row in eval_rows)
        figures.plot_generalisation(eval_rows, key, run_dir / GENERALISATION_FILE,
                                    f"{name}: generalisation at {key} {values} (trained on {trained_on})",
                                    xlabel=axis_label(task), trained_range=training_range(task))
        table = markdown_table([key, "sequences", "with a wrong bit", "cost (bits/seq)", "bit errors/seq",
                                "certified", "step"],
                               [[row[key], f"{row.get('sequences', 0):,}",
                                 f"{row['failures']:,}" if "failures" in row else "–",
                                 f"{row['cost']:.3f}", f"{row['bit_errors']:.3f}",
                                 ("yes" if row.get("solved") else "no")
                                 + (" (stop rule)" if row.get("source") == "stop rule" else ""),
                                 row.get("step", run.step)]
                                for row in eval_rows])
        sections += [table, ""]
        if older:
            sections += [f"The rows at {key} {', '.join(map(str, older))} measured an earlier checkpoint (step "
                         f"{', '.join(map(str, sorted(set(older.values()))))}); the verdict above ignores them. "
                         f"Re-evaluate them with `ntm eval {run_dir} --lengths "
                         f"{','.join(map(str, older))}`.", ""]
        sections += [f"![generalisation]({GENERALISATION_FILE})", ""]
    else:
        sections += [f"Not evaluated yet: run `ntm eval {run_dir}`, then `ntm report {run_dir}`.", ""]

    shown = show_run(run, out=run_dir / SHOW_FILE)
    sections += [f"## One sample at {value_text(task, shown.value)}", "",
                 f"{shown.bit_errors} bit errors out of {shown.scored_bits} scored bits. Produce others with "
                 f"`ntm show {run_dir} --length L --seed S`.", "", f"![one sample]({SHOW_FILE})", ""]

    sections += ["## Configuration", "", f"Model `{settings.model}`:", "",
                 markdown_table(["field", "value"], [[field, format_value(value)] for field, value in
                                                     sorted(config.model_config.items())]), "",
                 f"Task `{settings.task}` and training:", "",
                 markdown_table(["setting", "value"], [[field, format_value(value)] for field, value in
                                                       sorted(config.settings.to_dict().items())]), ""]
    path = run_dir / REPORT_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(sections))
    tmp.replace(path)
    return path
