"""`ntm sweep` itself: its flags, sweep.json, and the run from the first check to the results table.

A new sweep checks everything before Ray starts (`sweep_spec`: the searches, every trial's settings,
the budget), writes sweep.json, and runs the trials on Ray Tune; `--resume` reads sweep.json back and
lets Tune restore the sweep (`read_spec`). sweep.json holds the base settings of the trials as
`TrainSettings` dicts, and `trial_plan` turns it into the typed `TrialPlan` that every trial receives.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any

from rich.console import Console

from ntm.commands.sweep import FIGURE_FILE, RESULTS_FILE, SWEEP_FILE, TRIALS_DIR, TUNE_DIR, usage_error
from ntm.commands.sweep.results import collect, results_table, trial_curves, write_results
from ntm.commands.sweep.space import check_population, check_space, expected_trials, parse_searches
from ntm.commands.sweep.trial import TrialPlan, add_import_root, task_import_root
from ntm.commands.sweep.tuner import ASHA_REDUCTION, SCHEDULERS, import_ray, make_tuner, start_ray
from ntm.commands.train_flags import TrainFlag, add_train_flags

# The options of the sweep itself, which --resume refuses (it may change only --address and --num-cpus).
SWEEP_OPTIONS = ("search", "samples", "cpus_per_trial", "max_concurrent", "scheduler", "grace_sequences",
                 "perturbation_sequences", "eval_lengths", "eval_sequences")
# PBT's default interval: this share of the largest budget, so that a run can be continued a few times.
PERTURBATIONS_PER_BUDGET = 8
SPEC_KEYS = ("task", "settings", "search", "samples", "trials", "scheduler", "grace_sequences", "budget_sequences",
             "max_concurrent", "cpus_per_trial", "eval_lengths", "eval_sequences", "flags")


def add_commands(commands, own_tasks: list[str] = ()) -> None:
    """Register `ntm sweep` on the `ntm` subparsers object (`own_tasks`: as `add_train_flags` takes)."""
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
                            "falls behind at each rung (Ray Tune's ASHAScheduler); pbt: population-based training "
                            "(Ray Tune's PopulationBasedTraining): a trial in the worst quarter continues the run of "
                            "one in the best quarter with its lr, grad-clip or replay-share perturbed")
    sweep.add_argument("--grace-sequences", type=int, default=None, metavar="N",
                       help=f"asha: training sequences before a trial is first compared (default: the budget / "
                            f"{ASHA_REDUCTION ** 3})")
    sweep.add_argument("--perturbation-sequences", type=int, default=None, metavar="N",
                       help=f"pbt: training sequences between a trial's perturbations (default: the budget / "
                            f"{PERTURBATIONS_PER_BUDGET})")
    sweep.add_argument("--eval-lengths", help="test lengths (or item counts) of each trial's final table")
    sweep.add_argument("--eval-sequences", type=int, default=None, metavar="N",
                       help="fresh sequences per row of each trial's final table (default 1000)")
    add_train_flags(sweep, own_tasks=own_tasks)
    sweep.set_defaults(handler=run_sweep)


def fixed_flags(args: argparse.Namespace) -> set[str]:
    """The `ntm train` flags given to the sweep (fixed for every trial), by destination."""
    return {dest for dest in args.train_flags if getattr(args, dest, None) is not None}


def sweep_spec(args: argparse.Namespace, sweep_dir: Path) -> dict[str, Any]:
    """sweep.json of a new sweep: everything a trial and `--resume` need, checked."""
    if args.task is None:
        raise usage_error("give a TASK (or --resume with the --sweep-dir of a sweep)")
    from ntm import tasks

    try:
        tasks.task_class(args.task)
    except ValueError as error:
        raise usage_error(str(error)) from None
    if not args.search:
        raise usage_error("give at least one --search FLAG=DISTRIBUTION (e.g. --search lr=loguniform:1e-4:1e-2)")
    for name in ("samples", "max_concurrent", "grace_sequences", "perturbation_sequences", "eval_sequences",
                 "num_cpus"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise usage_error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.cpus_per_trial is not None and not 0 < args.cpus_per_trial < math.inf:
        raise usage_error(f"--cpus-per-trial must be > 0, got {args.cpus_per_trial}")
    if args.grace_sequences is not None and args.scheduler != "asha":
        raise usage_error("--grace-sequences is for --scheduler asha")
    if args.perturbation_sequences is not None and args.scheduler != "pbt":
        raise usage_error("--perturbation-sequences is for --scheduler pbt")
    if args.eval_lengths:
        from ntm.evaluate import parse_values

        parse_values(args.eval_lengths)
    searches = parse_searches(args.search, args.train_flags, fixed_flags(args))
    if args.scheduler == "pbt":
        check_population(searches)
    # Ray ends a trial that ASHA stops within moments of the held-out check, too soon for the run to save:
    # a checkpoint at every check leaves the run directory the parameters of its last check but one. PBT
    # hands a trial's state at each check to the trials that may continue it.
    checkpoint_every_check = args.scheduler in ("asha", "pbt") and args.checkpoint_every is None and \
        "checkpoint_every" not in {s.flag.dest for s in searches}
    bases, largest = check_space(args, searches, args.train_flags, checkpoint_every_check)
    samples = args.samples or 1
    return {
        "task": args.task, "task_path": task_import_root(args.task),
        "settings": {model: settings.to_dict() for model, settings in bases.items()},
        "search": list(args.search), "samples": samples,
        "trials": expected_trials(samples, searches),
        "scheduler": args.scheduler or "fifo",
        "grace_sequences": args.grace_sequences or max(1, largest // ASHA_REDUCTION ** 3),
        "perturbation_sequences": args.perturbation_sequences or max(1, largest // PERTURBATIONS_PER_BUDGET),
        "budget_sequences": largest,
        "max_concurrent": args.max_concurrent, "cpus_per_trial": args.cpus_per_trial or 1.0,
        "eval_lengths": args.eval_lengths, "eval_sequences": args.eval_sequences,
        "sweep_dir": str(sweep_dir),
        "flags": {search.flag.dest: dataclasses.asdict(search.flag) for search in searches},
    }


def read_spec(args: argparse.Namespace, sweep_dir: Path) -> dict[str, Any]:
    """sweep.json of the sweep to resume; only where Ray runs may change."""
    given = [f"--{name.replace('_', '-')}" for name in SWEEP_OPTIONS
             if getattr(args, name) not in (None, [], False)]
    fixed = fixed_flags(args)
    given += [train_flag.option for dest, train_flag in args.train_flags.items() if dest in fixed]
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


def trial_plan(spec: dict[str, Any]) -> TrialPlan:
    """What every trial needs, typed, from sweep.json: the base settings, the searched flags, the final table."""
    from ntm.evaluate import EVAL_SEQUENCES, parse_values
    from ntm.training.settings import TrainSettings

    add_import_root(spec.get("task_path"))  # a task class of one's own, which the settings check, imports there
    try:
        bases = {model: TrainSettings.from_dict(values) for model, values in spec["settings"].items()}
        flags = {dest: TrainFlag(**values) for dest, values in spec["flags"].items()}
    except (TypeError, ValueError) as error:
        raise usage_error(f"{Path(spec['sweep_dir']) / SWEEP_FILE} does not hold settings of this ntm: "
                          f"{str(error).splitlines()[0] if str(error) else type(error).__name__}") from None
    return TrialPlan(bases=bases, flags=flags, sweep_dir=Path(spec["sweep_dir"]), task_path=spec.get("task_path"),
                     population_interval=spec["perturbation_sequences"] if spec["scheduler"] == "pbt" else None,
                     cpus_per_trial=spec["cpus_per_trial"],
                     eval_values=parse_values(spec["eval_lengths"]) if spec.get("eval_lengths") else None,
                     eval_sequences=spec.get("eval_sequences") or EVAL_SEQUENCES)


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
    plan = trial_plan(spec)
    searches = parse_searches(spec["search"], plan.flags)

    if not args.address:
        # The embedded Ray serves this machine alone: keep it on local addresses.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's classic reporter, which verbose=0 silences
    ray, tune = import_ray()
    started = start_ray(ray, args.address, args.num_cpus)  # a cluster out of reach leaves no sweep behind
    try:
        if not args.resume:
            sweep_dir.mkdir(parents=True, exist_ok=True)
            from ntm.rundir import write_json_atomically

            write_json_atomically(sweep_dir / SWEEP_FILE, spec)
        tuner = make_tuner(tune, plan, spec, searches, args.resume)
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
    from ntm.plots.figures import save_figure, sweep_figure

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
