"""`ntm sweep`: a search over training and model settings on Ray Tune, each trial an ordinary ntm run.

    ntm sweep copy --samples 4 --sweep-dir sweeps/copy \\
        --search lr=loguniform:1e-4:1e-2 --search batch-size=choice:4,8,16 --search seed=grid:0,1,2 \\
        [any ntm train flag, fixed for every trial]

Ray Tune does the distributed work: the search space (`tune.loguniform`, `uniform`, `choice`,
`grid_search`), running trials side by side on the CPUs Ray grants them (`Tuner`, `TuneConfig`),
stopping poor trials early on the held-out cost (`ASHAScheduler`), and continuing an interrupted
sweep (`Tuner.restore`). Ray runs embedded by default (started and stopped by the command, local
addresses only); `--address` joins a running cluster instead.

What ntm adds is what Tune cannot know: a trial's settings are parsed by `ntm train`'s own flags
(`ntm.commands.cli.settings_from_argv`), it runs as one experiment as `ntm train` does (`ntm.experiment`: train
or resume, evaluate, report) into an ordinary run directory (so `ntm eval`, `ntm show` and `ntm compare`
work on it, and a trial that Tune resumes continues from the run's own checkpoint), and it reports
every held-out check to Tune. At the end the sweep writes
a CSV, a figure, and a table, best first. Layout of the sweep directory DIR:

  sweep.json       the sweep as it was started: what `--resume` rebuilds it from
  ray/             Ray Tune's experiment state (what `Tuner.restore` reads)
  trials/NAME/     one ntm run directory per trial, NAME = trial number and searched values
  results.csv      one row per trial: searched settings, outcome, steps, sequences, times, held-out figures
  sweep.png        held-out cost against training sequences, and each searched setting against time to solve

On a cluster, DIR must be at the same path on every machine (a shared file system), as Ray Tune
requires of its storage path, and every machine needs the same ntm installed.

Ray is an optional extra (`pip install -e ".[sweep]"`); nothing else in ntm imports it, and this
module imports it only when a sweep runs.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import itertools
import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

SWEEP_FILE = "sweep.json"
TUNE_DIR = "ray"
TRIALS_DIR = "trials"
RESULTS_FILE = "results.csv"
FIGURE_FILE = "sweep.png"
INSTALL_HINT = 'pip install -e ".[sweep]"'
KINDS = ("loguniform", "uniform", "choice", "grid")
SCHEDULERS = ("fifo", "asha")
# ASHA keeps the best 1/REDUCTION of the trials at each rung; with the first rung at 1/REDUCTION**3 of
# the budget there are four rungs, the last one the whole budget.
ASHA_REDUCTION = 3
# Options that may be given with --resume: where Ray runs, not what the sweep is.
RESUME_OPTIONS = ("address", "num_cpus")
# Trial names carry the searched values; long ones are cut (the trial number keeps them unique).
NAME_LIMIT = 96
TRUE_WORDS, FALSE_WORDS = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def usage_error(message: str) -> Exception:
    from ntm.commands.cli import UsageError

    return UsageError(f"ntm sweep: {message}")


# ----------------------------------------------------------------------------- the flags of a trial


@dataclasses.dataclass(frozen=True)
class TrainFlag:
    """One `ntm train` flag as the sweep sees it: how to write it, and what its values are."""

    dest: str  # the argparse destination, e.g. "batch_size"
    option: str  # e.g. "--batch-size"
    kind: str  # "bool", "int", "float", "float-or-none" or "str"
    choices: tuple[str, ...] | None = None

    @property
    def numeric(self) -> bool:
        return self.kind in ("int", "float", "float-or-none")

    def parse(self, text: str):
        """A value of this flag from its text; ValueError saying what the flag takes."""
        text = text.strip()
        if self.kind == "bool":
            if text.lower() in TRUE_WORDS:
                return True
            if text.lower() in FALSE_WORDS:
                return False
            raise ValueError(f"{self.option} is on or off: give true or false, not {text!r}")
        if self.kind == "float-or-none" and text.lower() in ("none", "off"):
            return None
        if self.kind == "int":
            try:
                return int(text)
            except ValueError:
                raise ValueError(f"{self.option} takes integers, not {text!r}") from None
        if self.numeric:
            try:
                value = float(text)
            except ValueError:
                raise ValueError(f"{self.option} takes numbers, not {text!r}") from None
            if not math.isfinite(value):
                raise ValueError(f"{self.option} takes finite numbers, not {text!r}")
            return value
        if self.choices and text not in self.choices:
            raise ValueError(f"{self.option} is one of {', '.join(self.choices)}, not {text!r}")
        return text

    def argv(self, value) -> list[str]:
        """The command-line words that give this flag `value` (what `ntm train` would be typed with)."""
        if self.kind == "bool":
            return [self.option if value else "--no-" + self.option[2:]]
        if value is None:
            return [self.option, "none"]
        return [self.option, repr(value) if isinstance(value, float) else str(value)]


def train_flags(parser: argparse.ArgumentParser) -> dict[str, TrainFlag]:
    """The `ntm train` flags that `ntm.commands.cli.add_train_flags` put on `parser`, by destination."""
    from ntm.commands import cli

    defaults = {key: parser.get_default(key) for key in ("train_fields", "model_fields", "task_fields")}
    dests = {"model", *defaults["train_fields"], *defaults["model_fields"], *defaults["task_fields"]}
    flags = {}
    # argparse has no public list of a parser's arguments; _actions is the one every tool reads.
    for action in parser._actions:
        if action.dest not in dests or not action.option_strings:
            continue
        if isinstance(action, argparse.BooleanOptionalAction):
            kind = "bool"
        elif action.type is int:
            kind = "int"
        elif action.type is float:
            kind = "float"
        elif action.type is cli.float_or_none:
            kind = "float-or-none"
        else:
            kind = "str"
        choices = tuple(str(c) for c in action.choices) if action.choices else None
        flags[action.dest] = TrainFlag(action.dest, action.option_strings[0], kind, choices)
    return flags


def fixed_argv(args: argparse.Namespace, flags: dict[str, TrainFlag]) -> list[str]:
    """The `ntm train` flags given to the sweep, written back as words (the same values ntm train reads)."""
    words = []
    for dest, train_flag in flags.items():
        value = getattr(args, dest, None)  # None: not given (ntm train treats 'none' the same way)
        if value is not None:
            words += train_flag.argv(value)
    return words


def settings_from_argv(argv: list[str]):
    """TrainSettings from `ntm train` words, as `ntm train` itself parses them."""
    from ntm.commands.cli import settings_from_argv as parse

    return parse(argv)


# ----------------------------------------------------------------------------- the search space


@dataclasses.dataclass(frozen=True)
class Search:
    """One `--search FLAG=DISTRIBUTION`: the flag, the kind of distribution, and its typed values."""

    text: str
    flag: TrainFlag
    kind: str
    values: tuple  # (low, high) for loguniform and uniform, else the values to choose from

    def domain(self):
        """The Ray Tune search space of this flag."""
        from ray import tune

        if self.kind == "grid":
            return tune.grid_search(list(self.values))
        if self.kind == "choice":
            return tune.choice(list(self.values))
        low, high = self.values
        if self.flag.kind == "int":  # randint's upper bound is exclusive; ours is inclusive
            return (tune.lograndint if self.kind == "loguniform" else tune.randint)(low, high + 1)
        return (tune.loguniform if self.kind == "loguniform" else tune.uniform)(low, high)

    @property
    def name(self) -> str:
        return self.flag.option[2:]


def parse_search(text: str, flags: dict[str, TrainFlag]) -> Search:
    """`FLAG=KIND:...` into a Search; a UsageError (one line) for anything malformed."""
    name, equals, spec = text.partition("=")
    if not equals or not name.strip() or not spec.strip():
        raise usage_error(f"--search {text!r}: write FLAG=DISTRIBUTION, e.g. lr=loguniform:1e-4:1e-2")
    dest = name.strip().lstrip("-").replace("-", "_")
    if dest not in flags:
        raise usage_error(f"--search {text!r}: {name.strip()!r} is not an ntm train flag (see ntm train --help)")
    train_flag = flags[dest]
    kind, colon, rest = spec.partition(":")
    kind = kind.strip().lower()
    if kind not in KINDS or not colon:
        raise usage_error(f"--search {text!r}: the distribution is one of loguniform:LOW:HIGH, uniform:LOW:HIGH, "
                          f"choice:A,B,... or grid:A,B,...")
    try:
        if kind in ("loguniform", "uniform"):
            if not train_flag.numeric:
                raise ValueError(f"{train_flag.option} is not a number; use choice or grid")
            ends = rest.split(":")
            if len(ends) != 2:
                raise ValueError(f"{kind} takes LOW:HIGH")
            low, high = (train_flag.parse(end) for end in ends)
            if low is None or high is None:
                raise ValueError(f"{kind} takes numbers for LOW and HIGH")
            if not low < high:
                raise ValueError(f"LOW must be below HIGH, got {low} and {high}")
            if kind == "loguniform" and low <= 0:
                raise ValueError(f"loguniform needs LOW > 0, got {low}")
            values = (low, high)
        else:
            words = rest.split(",")
            if any(not word.strip() for word in words):
                raise ValueError(f"{kind} takes values separated by commas, e.g. {kind}:4,8,16")
            values = tuple(train_flag.parse(word) for word in words)
    except ValueError as error:
        raise usage_error(f"--search {text!r}: {error}") from None
    return Search(text, train_flag, kind, values)


def parse_searches(texts: list[str], flags: dict[str, TrainFlag], args: argparse.Namespace | None) -> list[Search]:
    """Every --search, checked against each other and against the fixed flags."""
    searches, seen = [], set()
    for text in texts:
        search = parse_search(text, flags)
        if search.flag.dest in seen:
            raise usage_error(f"{search.flag.option} is searched twice; give one --search per flag")
        if args is not None and getattr(args, search.flag.dest, None) is not None:
            raise usage_error(f"{search.flag.option} is both fixed and searched; drop one of them")
        seen.add(search.flag.dest)
        searches.append(search)
    return searches


def trial_argv(task: str, fixed: list[str], config: dict[str, Any], flags: dict[str, TrainFlag]) -> list[str]:
    """The `ntm train` words of one trial: the task, the fixed flags, then the trial's searched values."""
    words = [task, *fixed]
    for dest, value in sorted(config.items()):
        words += flags[dest].argv(value)
    return words


def check_settings(settings) -> None:
    """Build the task and the model config of `settings` (not the model), so bad values fail before Ray starts."""
    from ntm import tasks
    from ntm.training.runs import model_config

    model_config(settings, tasks.get(settings.task, **settings.task_options))


def budget_sequences(settings) -> int:
    return settings.budget_steps() * settings.batch_size


def check_space(task: str, fixed: list[str], searches: list[Search], flags: dict[str, TrainFlag]) -> int:
    """Parse and build every combination of the searched values' candidates; the largest budget in sequences.

    A bad value (a batch size of 0, a memory width a model rejects) fails here, in one line, rather
    than in every trial. Ranges are checked at both ends.
    """
    largest = 0
    combinations = itertools.product(*(search.values for search in searches))  # ranges: both ends
    for values in itertools.islice(combinations, 4096):  # a bound on the time spent checking huge spaces
        config = {search.flag.dest: value for search, value in zip(searches, values)}
        try:
            settings = settings_from_argv(trial_argv(task, fixed, config, flags))
            check_settings(settings)
        except (ValueError, TypeError) as error:
            given = ", ".join(f"{flags[dest].option[2:]}={value}" for dest, value in config.items())
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise usage_error(f"the trial with {given} would fail: {message}") from None
        largest = max(largest, budget_sequences(settings))
    return largest


def expected_trials(samples: int, searches: list[Search]) -> int:
    """How many trials Tune makes: `samples` times the size of the grid."""
    return samples * math.prod(len(s.values) for s in searches if s.kind == "grid")


def format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def trial_name(trial) -> str:
    """`NNN-flag=value,...`: the trial's number in the sweep and its searched values (a folder name)."""
    number = trial.trial_id.rsplit("_", 1)[-1]
    settings = ",".join(f"{dest.replace('_', '-')}={format_value(value)}" for dest, value in sorted(trial.config.items()))
    name = f"{number}-{settings}".replace("/", "_").replace(" ", "")
    return name[:NAME_LIMIT]


# ----------------------------------------------------------------------------- one trial (in a Ray worker)


def limit_threads(cpus: float) -> None:
    """Keep a trial's numerical threads to the CPUs Ray granted it, so trials side by side do not
    oversubscribe the machine. Must run before JAX starts in the worker (a fresh process per trial)."""
    threads = str(max(1, int(cpus)))
    os.environ["OMP_NUM_THREADS"] = threads
    if int(cpus) <= 1 and "xla_cpu_multi_thread_eigen" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()


def train_trial(settings, run_dir: Path, resume: bool, on_held_out, eval_values: list[int] | None,
                eval_sequences: int) -> dict[str, Any]:
    """The one call into ntm: the trial as an experiment (train or resume, evaluate, report); its outcome."""
    from ntm.experiment import conclude, run_experiment
    from ntm.training.records import Training, of_kind
    from ntm.training.runs import RunDirectory

    quiet = Console(stderr=True, quiet=True)
    try:
        experiment = run_experiment(settings, run_dir=run_dir, resume=resume, eval_values=eval_values,
                                    eval_sequences=eval_sequences, progress=False, console=quiet,
                                    on_held_out=on_held_out)
    except FloatingPointError:
        # A learning rate too high for the model is a result of the sweep, not an error of it.
        conclude(run_dir, eval_values, eval_sequences)
        rows = of_kind(RunDirectory(run_dir).records(), Training)
        last = rows[-1] if rows else Training(0)
        return {"step": last.step, "sequences": last.sequences, "time": last.time,
                "solved": False, "solved_sequences": None, "solved_time": None, "diverged": True}
    seed = experiment.best
    return {"step": seed.step, "sequences": seed.sequences, "time": seed.wall_time, "solved": seed.solved,
            "solved_sequences": seed.solved_sequences, "solved_time": seed.solved_time, "diverged": seed.diverged}


def held_out_checks(run_dir: Path) -> list:
    """The held-out checks a trial's run directory logged (`ntm.training.records.HeldOut`), in order."""
    from ntm.training.records import HeldOut, of_kind
    from ntm.training.runs import RunDirectory

    return of_kind(RunDirectory(run_dir).records(), HeldOut)


def task_import_root(task: str) -> str | None:
    """The directory to put on a worker's sys.path so that a task class of one's own ("module:Class",
    already imported here) imports there too; None for the paper's tasks and modules without a file."""
    if ":" not in task:
        return None
    module = sys.modules.get(task.partition(":")[0])
    file = getattr(module, "__file__", None)
    if not file:
        return None
    depth = module.__name__.count(".") + (1 if Path(file).name == "__init__.py" else 0)
    return str(Path(file).resolve().parents[depth])


def run_trial(config: dict[str, Any], spec: dict[str, Any]) -> None:
    """A Ray Tune function trainable: one trial of the sweep described by `spec` (sweep.json)."""
    limit_threads(spec["cpus_per_trial"])
    if spec.get("task_path") and spec["task_path"] not in sys.path:
        sys.path.append(spec["task_path"])  # where the task class of one's own imports from
    from ray import tune

    from ntm.runtime import tune_malloc, tune_xla

    tune_malloc()
    tune_xla()
    from ntm.training.runs import RunDirectory

    sweep_dir = Path(spec["sweep_dir"])
    run_dir = sweep_dir / TRIALS_DIR / tune.get_context().get_trial_name()
    flags = {dest: TrainFlag(**values) for dest, values in spec["flags"].items()}
    settings = settings_from_argv(trial_argv(spec["task"], spec["train_argv"], config, flags))
    resume = RunDirectory(run_dir).exists
    if resume and RunDirectory(run_dir).settings != settings:
        raise RuntimeError(f"{run_dir} holds a run with other settings than this trial's; it is not resumed")

    def on_held_out(check, progress) -> None:
        # Training sequences at the check: what ASHA compares trials at (fair across batch sizes).
        tune.report({"step": check.step, "sequences": check.step * settings.batch_size, "time": check.time,
                     "cost": check.cost, "bit_errors": check.bit_errors, "solved": progress.solved})

    from ntm.evaluate import EVAL_SEQUENCES, parse_values

    values = parse_values(spec["eval_lengths"]) if spec.get("eval_lengths") else None
    outcome = train_trial(settings, run_dir, resume, on_held_out, values, spec.get("eval_sequences") or EVAL_SEQUENCES)
    checks = held_out_checks(run_dir)
    tune.report({**outcome, "cost": checks[-1].cost if checks else math.nan,
                 "bit_errors": checks[-1].bit_errors if checks else math.nan, "finished": True})


# ----------------------------------------------------------------------------- results


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
        table.add_row(str(rank), *(format_value(row[s.name]) for s in searches), row["status"], f"{row['steps']:,}",
                      f"{row['sequences']:,}", figure(row["wall_time_s"], ".1f"), figure(row["time_to_solve_s"], ".1f"),
                      figure(row["cost"], ".3f"), figure(row["bit_errors"], ".3f"))
    return table


def figure(value: float, spec: str) -> str:
    return format(value, spec) if math.isfinite(value) else "-"


def sweep_figure(rows: list[dict[str, Any]], curves: dict[str, list[tuple[int, float]]], searches: list[Search],
                 title: str):
    """Top: each trial's held-out cost against training sequences. Below: one panel per searched setting,
    its value against time to solve (trials that did not solve drawn hollow on the dotted line at the top).
    Colour is the trial's rank in the table, dark = best."""
    from matplotlib import colormaps

    from ntm.plots.figures import count_formatter, log_y_axis, new_figure

    figure_ = new_figure(max(9.0, 3.4 * len(searches) + 2.5), 7.2)
    grid = figure_.add_gridspec(2, len(searches), height_ratios=(1.2, 1))
    colours = colormaps["viridis"]([x / max(len(rows) - 1, 1) * 0.85 for x in range(len(rows))])
    curve_axes = figure_.add_subplot(grid[0, :])
    curve_axes.set_label("held_out_cost")
    for rank, (row, colour) in enumerate(zip(rows, colours)):
        points = [(s, c) for s, c in curves.get(row["trial"], []) if c > 0]
        if not points:
            continue
        x, y = zip(*points)
        label = f"#{rank + 1} " + ", ".join(f"{s.name}={format_value(row[s.name])}" for s in searches)
        curve_axes.plot(x, y, color=colour, lw=1.6 if rank < 3 else 0.9, label=label if rank < 8 else None,
                        marker="*" if row["solved"] else None, markevery=[len(x) - 1], markersize=10)
    log_y_axis(curve_axes)
    curve_axes.xaxis.set_major_formatter(count_formatter)
    curve_axes.set_xlabel("training sequences")
    curve_axes.set_ylabel("held-out cost (bits per sequence)")
    curve_axes.set_title("held-out cost at each check (* solved; colour: rank, dark = best)")
    if any(curves.values()):
        curve_axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="best first",
                          title_fontsize=7)

    times = [row["time_to_solve_s"] for row in rows if row["solved"]]
    top = max(times) * 1.15 if times else 1.0
    for index, search in enumerate(searches):
        panel = figure_.add_subplot(grid[1, index])
        panel.set_label(f"time_to_solve/{search.name}")
        if search.kind in ("grid", "choice"):
            # The listed values, evenly spaced; trials sharing a value spread sideways so none hides another.
            labels = list(dict.fromkeys(format_value(v) for v in search.values))
            position = {label: i for i, label in enumerate(labels)}
            shared: dict[str, int] = {}
            places = []
            for row in rows:
                label = format_value(row[search.name])
                shared[label] = shared.get(label, 0) + 1
                places.append(position[label] + 0.07 * ((shared[label] % 5) - 2))
            panel.set_xticks(range(len(labels)), labels)
            panel.set_xlim(-0.5, len(labels) - 0.5)
        else:
            places = [float(row[search.name]) for row in rows]
            if search.kind == "loguniform":
                panel.set_xscale("log")
        for row, colour, x in zip(rows, colours, places):
            if row["solved"]:
                panel.scatter([x], [row["time_to_solve_s"]], color=colour, s=30, zorder=3)
            else:
                panel.scatter([x], [top], facecolors="none", edgecolors="#d62728", s=30, zorder=3)
        panel.axhline(top, color="#d62728", lw=0.6, ls=":")
        panel.set_ylim(0, top * 1.12)
        ticks = [tick for tick in panel.get_yticks() if 0 <= tick < top * 0.92]
        panel.set_yticks([*ticks, top], [f"{tick:g}" for tick in ticks] + ["not\nsolved"])
        panel.get_yticklabels()[-1].set_color("#d62728")
        panel.set_xlabel(f"{search.name} ({search.kind})")
        if index == 0:
            panel.set_ylabel("time to solve (s)")
    figure_.suptitle(title)
    return figure_


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


# ----------------------------------------------------------------------------- the command


def add_commands(commands, own_tasks: list[str] = ()) -> None:
    """Register `ntm sweep` on the `ntm` subparsers object (`own_tasks`: as `cli.add_train_flags` takes)."""
    from ntm.commands import cli

    sweep = commands.add_parser(
        "sweep", help="search training and model settings on Ray Tune (pip install -e \".[sweep]\")",
        description="Train one ntm run per trial of a search over ntm train flags, on Ray Tune: locally "
                    "(embedded Ray) or on a Ray cluster (--address). Every ntm train flag not searched is "
                    "fixed for every trial.")
    sweep.add_argument("--search", action="append", default=[], metavar="FLAG=DISTRIBUTION",
                       help="an ntm train flag and its distribution: loguniform:LOW:HIGH, uniform:LOW:HIGH, "
                            "choice:A,B,C or grid:A,B,C (every value, times --samples); repeat for more flags")
    sweep.add_argument("--samples", type=int, default=None, metavar="N",
                       help="trials drawn from the distributions (each drawn trial runs every grid value; default 1)")
    sweep.add_argument("--sweep-dir", required=True, metavar="DIR",
                       help="where the sweep is written: sweep.json, ray/, trials/NAME/, results.csv, sweep.png")
    sweep.add_argument("--resume", action="store_true",
                       help="continue the interrupted sweep in DIR (Tuner.restore): finished trials are kept, "
                            "unfinished ones continue from their checkpoints")
    sweep.add_argument("--address", default=None, metavar="ADDR",
                       help="join the Ray cluster at ADDR (e.g. HEAD_IP:6379 after `ray start --head`); "
                            "default: an embedded Ray on this machine, started and stopped by the command")
    sweep.add_argument("--num-cpus", type=int, default=None, metavar="N",
                       help="CPUs of the embedded Ray (default: all of this machine's)")
    sweep.add_argument("--cpus-per-trial", type=float, default=None, metavar="C",
                       help="CPUs Ray reserves for each trial (default 1)")
    sweep.add_argument("--max-concurrent", type=int, default=None, metavar="K",
                       help="at most K trials at once (default: as many as the CPUs allow)")
    sweep.add_argument("--scheduler", choices=SCHEDULERS, default=None,
                       help="fifo: every trial runs to its end (default); asha: stop trials whose held-out cost "
                            "falls behind at each rung (Ray Tune's ASHAScheduler)")
    sweep.add_argument("--grace-sequences", type=int, default=None, metavar="N",
                       help=f"asha: training sequences before a trial is first compared (default: the budget / "
                            f"{ASHA_REDUCTION ** 3})")
    sweep.add_argument("--eval-lengths", help="test lengths (or item counts) of each trial's final table")
    sweep.add_argument("--eval-sequences", type=int, default=None, metavar="N",
                       help="fresh sequences per row of each trial's final table (default 1000)")
    cli.add_train_flags(sweep, own_tasks=own_tasks)
    sweep.set_defaults(handler=run_sweep, sweep_train_flags=train_flags(sweep))


SWEEP_OPTIONS = ("search", "samples", "cpus_per_trial", "max_concurrent", "scheduler", "grace_sequences",
                 "eval_lengths", "eval_sequences")


def sweep_spec(args: argparse.Namespace, sweep_dir: Path) -> dict[str, Any]:
    """sweep.json of a new sweep: everything a trial and `--resume` need, checked."""
    flags = args.sweep_train_flags
    if args.task is None:
        raise usage_error("give a TASK (or --resume with the --sweep-dir of a sweep)")
    from ntm import tasks

    try:
        tasks.task_class(args.task)
    except ValueError as error:
        raise usage_error(str(error)) from None
    if not args.search:
        raise usage_error("give at least one --search FLAG=DISTRIBUTION (e.g. --search lr=loguniform:1e-4:1e-2)")
    for name in ("samples", "max_concurrent", "grace_sequences", "eval_sequences", "num_cpus"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise usage_error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.cpus_per_trial is not None and not 0 < args.cpus_per_trial < math.inf:
        raise usage_error(f"--cpus-per-trial must be > 0, got {args.cpus_per_trial}")
    if args.grace_sequences is not None and args.scheduler != "asha":
        raise usage_error("--grace-sequences is for --scheduler asha")
    if args.eval_lengths:
        from ntm.evaluate import parse_values

        parse_values(args.eval_lengths)
    fixed = fixed_argv(args, flags)
    searches = parse_searches(args.search, flags, args)
    if args.scheduler == "asha" and args.checkpoint_every is None and "checkpoint_every" not in {
            s.flag.dest for s in searches}:
        # Ray ends a trial that ASHA stops within moments of the held-out check, too soon for the run to save:
        # a checkpoint at every check leaves the run directory the parameters of its last check but one.
        eval_every = settings_from_argv([args.task, *fixed]).eval_every
        fixed += flags["checkpoint_every"].argv(eval_every)
    largest = check_space(args.task, fixed, searches, flags)
    samples = args.samples or 1
    return {
        "task": args.task, "task_path": task_import_root(args.task), "train_argv": fixed,
        "search": list(args.search), "samples": samples,
        "trials": expected_trials(samples, searches),
        "scheduler": args.scheduler or "fifo",
        "grace_sequences": args.grace_sequences or max(1, largest // ASHA_REDUCTION ** 3),
        "budget_sequences": largest,
        "max_concurrent": args.max_concurrent, "cpus_per_trial": args.cpus_per_trial or 1.0,
        "eval_lengths": args.eval_lengths, "eval_sequences": args.eval_sequences,
        "sweep_dir": str(sweep_dir),
        "flags": {dest: dataclasses.asdict(flag) for dest, flag in flags.items()},
    }


SPEC_KEYS = ("task", "train_argv", "search", "samples", "trials", "scheduler", "grace_sequences", "budget_sequences",
             "max_concurrent", "cpus_per_trial", "eval_lengths", "eval_sequences", "flags")


def read_spec(args: argparse.Namespace, sweep_dir: Path) -> dict[str, Any]:
    """sweep.json of the sweep to resume; only where Ray runs may change."""
    given = [f"--{name.replace('_', '-')}" for name in SWEEP_OPTIONS
             if getattr(args, name) not in (None, [], False)]
    given += [flag.option for dest, flag in args.sweep_train_flags.items() if getattr(args, dest, None) is not None]
    given += ["TASK"] if args.task else []
    if given:
        raise usage_error(f"--resume continues the sweep as it was started; remove {', '.join(given)} "
                          f"(only --address and --num-cpus may be given)")
    path = sweep_dir / SWEEP_FILE
    if not path.is_file():
        raise usage_error(f"{sweep_dir} holds no sweep to resume (no {SWEEP_FILE})")
    try:
        spec = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise usage_error(f"{path} is corrupt: {error}") from None
    missing = [key for key in SPEC_KEYS if key not in spec] if isinstance(spec, dict) else list(SPEC_KEYS)
    if missing:
        raise usage_error(f"{path} is not a sweep of this ntm: it lacks {', '.join(missing)}")
    spec["sweep_dir"] = str(sweep_dir)  # the directory may have moved since
    return spec


def import_ray():
    """Ray and Tune, or a one-line UsageError saying how to install them."""
    try:
        import ray
        from ray import tune
    except ImportError:
        raise usage_error(f"Ray Tune is not installed; {INSTALL_HINT}") from None
    return ray, tune


def start_ray(ray, address: str | None, num_cpus: int | None) -> bool:
    """Join the cluster at `address`, or start an embedded Ray; True if this call started (so must stop) it."""
    if ray.is_initialized():  # a program that started Ray itself keeps it
        return False
    options = dict(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    try:
        if address:
            ray.init(address=address, **options)
        else:
            # "local": a new Ray of our own, never one that a `ray start` left running on this machine
            ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 1, **options)
    except (ConnectionError, RuntimeError, ValueError) as error:
        text = " ".join(str(error).split())
        if "auth" in f"{text} {error.__cause__}".lower():
            text = ("the cluster wants its token: set RAY_AUTH_MODE=token and the cluster's token "
                    "(RAY_AUTH_TOKEN, or ~/.ray/auth_token)")
        where = f"join the Ray cluster at {address}" if address else "start Ray"
        raise usage_error(f"could not {where}: {text[:300]}") from None
    return True


def progress_lines():
    """A Tune callback that prints one line to stderr as each trial ends."""
    from ray import tune

    class TrialLines(tune.Callback):
        def on_trial_complete(self, iteration, trials, trial, **info):
            metrics = trial.last_result or {}
            status = status_of(metrics, None)
            if status == "solved":
                what = f"solved in {number(metrics.get('solved_time')):.1f} s ({metrics.get('solved_sequences'):,} sequences)"
            else:
                what = (f"{status} after {int(number(metrics.get('sequences'), 0)):,} sequences, held-out cost "
                        f"{number(metrics.get('cost')):.3f}")
            print(f"trial {trial_name(trial)}: {what}", file=sys.stderr)

        def on_trial_error(self, iteration, trials, trial, **info):
            print(f"trial {trial.trial_id.rsplit('_', 1)[-1]}: failed (see {trial.path})", file=sys.stderr)

    return TrialLines()


def run_sweep(args: argparse.Namespace, console: Console) -> int:
    """`ntm sweep`: check everything, run the trials on Ray Tune, write results.csv and sweep.png, print the table."""
    try:
        return sweep_command(args, console)
    except KeyboardInterrupt:  # outside Tune's own handling of Ctrl-C (which sweep_command reports)
        console.print(f"ntm sweep: interrupted; continue with ntm sweep --resume --sweep-dir {args.sweep_dir}",
                      markup=False, soft_wrap=True)
        return 130


def sweep_command(args: argparse.Namespace, console: Console) -> int:
    sweep_dir = Path(args.sweep_dir).resolve()
    if args.resume:
        spec = read_spec(args, sweep_dir)
    else:
        if (sweep_dir / SWEEP_FILE).exists():
            raise usage_error(f"{sweep_dir} already holds a sweep; continue it with --resume, or choose another --sweep-dir")
        if sweep_dir.exists() and any(sweep_dir.iterdir()):
            raise usage_error(f"{sweep_dir} exists and is not empty; choose a new --sweep-dir")
        spec = sweep_spec(args, sweep_dir)
    if args.num_cpus is not None and args.num_cpus < 1:
        raise usage_error(f"--num-cpus must be >= 1, got {args.num_cpus}")
    if args.address and args.num_cpus is not None:
        raise usage_error("--num-cpus sizes the embedded Ray; a cluster joined with --address has its own CPUs")
    flags = {dest: TrainFlag(**values) for dest, values in spec["flags"].items()}
    searches = parse_searches(spec["search"], flags, None)

    if not args.address:
        # The embedded Ray serves this machine alone: keep it on local addresses.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's classic reporter, which verbose=0 silences
    ray, tune = import_ray()
    if not args.resume:
        sweep_dir.mkdir(parents=True, exist_ok=True)
        from ntm.rundir import write_json_atomically

        write_json_atomically(sweep_dir / SWEEP_FILE, spec)
    started = start_ray(ray, args.address, args.num_cpus)
    try:
        trainable = tune.with_resources(tune.with_parameters(run_trial, spec=spec), {"cpu": spec["cpus_per_trial"]})
        tune_dir = sweep_dir / TUNE_DIR
        if args.resume:
            if not tune.Tuner.can_restore(str(tune_dir)):
                raise usage_error(f"{tune_dir} holds no Ray Tune state to restore (the sweep stopped before Tune "
                                  f"saved any); start the sweep again in a new --sweep-dir")
            tuner = tune.Tuner.restore(str(tune_dir), trainable, resume_unfinished=True, resume_errored=True)
        else:
            scheduler = None
            if spec["scheduler"] == "asha":
                scheduler = tune.schedulers.ASHAScheduler(
                    # max_t one past the largest budget: reaching its budget ends a trial by itself, after
                    # its report is written; ASHA stopping it there would cut that short
                    time_attr="sequences", metric="cost", mode="min", max_t=spec["budget_sequences"] + 1,
                    grace_period=spec["grace_sequences"], reduction_factor=ASHA_REDUCTION)
            tuner = tune.Tuner(
                trainable,
                param_space={search.flag.dest: search.domain() for search in searches},
                # reuse_actors: a trial starts in the process of one that ended (JAX already imported, and
                # a trial that ASHA stops has time to save its checkpoint)
                tune_config=tune.TuneConfig(num_samples=spec["samples"], scheduler=scheduler, reuse_actors=True,
                                            max_concurrent_trials=spec["max_concurrent"],
                                            trial_name_creator=trial_name, trial_dirname_creator=trial_name),
                run_config=tune.RunConfig(name=TUNE_DIR, storage_path=str(sweep_dir), verbose=0,
                                          callbacks=[progress_lines()]),
            )
        where = f"the Ray cluster at {args.address}" if args.address else "an embedded Ray"
        console.print(f"sweep of {spec['task']}: {spec['trials']} trials on {where}; "
                      f"{'resumed; ' if args.resume else ''}writing {sweep_dir}", markup=False, soft_wrap=True)
        results = tuner.fit()
    finally:
        if started:
            ray.shutdown()

    rows = collect(results, searches)
    write_results(rows, searches, sweep_dir / RESULTS_FILE)
    finished = sum(row["status"] not in ("unfinished",) for row in rows)
    title = f"ntm sweep of {spec['task']}: {finished} of {spec['trials']} trials ended, " \
            f"{sum(row['solved'] for row in rows)} solved (best first)"
    from ntm.plots.figures import save_figure

    figure_path = save_figure(sweep_figure(rows, trial_curves(rows, sweep_dir), searches, title),
                              sweep_dir / FIGURE_FILE)
    out = Console()
    table = results_table(rows, searches, title)
    if not out.is_terminal:  # a file or a pipe: the whole table, unwrapped, however wide
        out = Console(width=max(out.width, Console(width=1000).measure(table).maximum))
    out.print(table)
    print(f"results: {sweep_dir / RESULTS_FILE}; figure: {figure_path}; trials: {sweep_dir / TRIALS_DIR}")
    failed = [row for row in rows if row["status"] == "error"]
    for row in failed:
        console.print(f"trial {row['trial']} failed: {row.get('error', '')} (Ray's log: "
                      f"{sweep_dir / TUNE_DIR / row['trial'] / 'error.txt'})", markup=False, soft_wrap=True)
    if finished < spec["trials"]:
        console.print(f"interrupted: {finished} of {spec['trials']} trials ended; continue with "
                      f"ntm sweep --resume --sweep-dir {sweep_dir}", markup=False, soft_wrap=True)
        return 130
    return 1 if failed else 0
