"""`ntm reproduce`: the paper's five tasks with the NTM, its LSTM baseline and the DNC, in one command.

Every (task, model) pair trains on the task's defaults for that model within the task's own budget per
seed (`Task.reproduction_budget`: training sequences and a cap in minutes, whichever ends first; a seed
also stops once its stop rule certifies it solved), K seeds side by side into `OUT/TASK-MODEL/`, as one
experiment (`ntm.experiment`); every seed then gets its final table on 1,000 fresh sequences per test
value. By default the NTM gets 4 seeds (at least three, and two per core on a 2-core machine), the LSTM
and the DNC one each; `--seeds`, `--baseline-seeds`, `--minutes` (every pair's cap) and `--scale` (every
budget times F) change that.

A pair that finished is recorded beside the page (`results/reproduction.json` next to it: its seeds' figures,
final tables and thinned learning curves, and the pictures drawn from its best seed then) and skipped when
the command runs again; a pair cut off mid-run resumes from its checkpoints in OUT. So a killed
reproduction goes on where it stopped, and once a pair is recorded its run directories are no longer needed:
the page is made from the records alone, and the reproduction can be carried over sittings on different
machines by keeping the page's folder (as this project does in git). Before
the run and after each pair the command prints what is left and how long it should take: at most the
budgets' minutes, and at the pace of the pairs already finished. `--dry-run` prints only that;
`--page-only` writes the page from the records so far and trains nothing.

The results page (`--page`, default docs/results.md; `ntm.commands.results_page`) puts our figures beside
the paper's and other published ones (`ntm.published`). `--ship` copies each task's best NTM seed into the
package's pretrained models with its figures, as each NTM pair finishes.
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from ntm import published, tasks
from ntm.rundir import read_json, write_json_atomically
from ntm.training.records import Training, of_kind
from ntm.training.runs import RunDirectory, SeedGroup

RECORDS_FILE = "reproduction.json"  # in the page's image folder
MODELS = ("ntm", "lstm", "dnc")
# Records of another version are made again from the run directories where they are still in OUT (nothing
# retrains); version 3 added the seeds' curves and the pairs' pictures.
RECORD_VERSION = 3
DEFAULT_SEEDS = 4
# Until a pair has finished, evaluating one seed (its final table, report, pictures) is taken to cost this.
EVALUATION_ALLOWANCE_S = 60.0


@dataclasses.dataclass(frozen=True)
class Budget:
    """One seed's budget: training sequences and a wall-time cap, whichever ends first."""

    sequences: int
    minutes: float

    def text(self) -> str:
        return f"{self.sequences:,} sequences or {format_minutes(self.minutes * 60)}"


@dataclasses.dataclass(frozen=True)
class Plan:
    out: Path
    page: Path
    tasks: tuple[str, ...] = tuple(tasks.names())
    models: tuple[str, ...] = MODELS
    seeds: int = DEFAULT_SEEDS  # of the NTM
    baseline_seeds: int = 1  # of the LSTM and the DNC
    minutes: float | None = None  # every pair's cap instead of its task's
    scale: float = 1.0  # every budget (sequences and minutes) times this
    eval_sequences: int = 1000
    ship: bool = False  # each finished NTM pair's best seed into the package's pretrained models
    ray: str | None = None  # run the pairs as Ray tasks: "local" (an embedded Ray) or a cluster's address

    @property
    def image_dir(self) -> Path:
        """The page's folder of pictures and records."""
        return self.page.parent / "results"

    @property
    def records_path(self) -> Path:
        return self.image_dir / RECORDS_FILE

    def __post_init__(self):
        for name in self.tasks:
            if name not in tasks.names():
                raise ValueError(f"unknown task {name!r}; choose from {', '.join(tasks.names())}")
        for name in self.models:
            if name not in MODELS:
                raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
        if not self.tasks or not self.models:
            raise ValueError("--tasks and --models must name at least one each")
        if self.seeds < 1 or self.baseline_seeds < 1 or self.eval_sequences < 1:
            raise ValueError("--seeds, --baseline-seeds and --eval-sequences must be at least 1")
        for name in ("minutes", "scale"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and 0 < value < math.inf):
                raise ValueError(f"--{name} must be a positive number, got {value!r}")

    def pairs(self) -> list[tuple[str, str]]:
        return [(task, model) for task in self.tasks for model in self.models]

    def seeds_of(self, model: str) -> int:
        return self.seeds if model == "ntm" else self.baseline_seeds

    def budget(self, task: str, model: str) -> Budget:
        """The task's budget for `model`, scaled, with the cap of `--minutes` where given."""
        declared = tasks.get(task).reproduction_budget(model)
        minutes = self.minutes if self.minutes is not None else declared["minutes"] * self.scale
        return Budget(max(1, round(declared["sequences"] * self.scale)), float(minutes))

    def flags(self) -> str:
        """The command line of this plan, as the page quotes it."""
        words = ["ntm reproduce"]
        if self.tasks != tuple(tasks.names()):
            words.append(f"--tasks {','.join(self.tasks)}")
        if self.models != MODELS:
            words.append(f"--models {','.join(self.models)}")
        words += [f"--seeds {self.seeds}", f"--baseline-seeds {self.baseline_seeds}"]
        if self.minutes is not None:
            words.append(f"--minutes {self.minutes:g}")
        if self.scale != 1.0:
            words.append(f"--scale {self.scale:g}")
        return " ".join(words)


def pair_name(task: str, model: str) -> str:
    return f"{task}-{model}"


# ----------------------------------------------------------------------------- what is left, and how long


def trained_seconds(run_dir: Path) -> float:
    """How long a cut-off pair has trained already: the longest seed's last logged time (0 if none)."""
    if not SeedGroup.holds_run(run_dir):
        return 0.0
    try:
        directories = SeedGroup.open(run_dir).directories
    except (ValueError, OSError):
        return 0.0
    times = [row.time for directory in directories if directory.exists
             for row in of_kind(directory.records(), Training)[-1:] if math.isfinite(row.time)]
    return max(times, default=0.0)


def bound_seconds(plan: Plan, task: str, model: str) -> float:
    """The most a pair may take from the start: its cap in minutes and the evaluation of each seed."""
    return plan.budget(task, model).minutes * 60 + EVALUATION_ALLOWANCE_S * plan.seeds_of(model)


@dataclasses.dataclass(frozen=True)
class Estimate:
    pending: list[str]  # pairs not recorded yet, in the order they run
    bound: float  # seconds at most, by the budgets, one pair after another
    likely: float | None  # seconds at the pace of the finished pairs (None before any finished)
    finished: int
    cores: int | None = None  # with --ray on this machine: its cores, over which the pairs run side by side
    side_by_side: tuple[float, float | None] | None = None  # (bound, likely) as the pairs share those cores

    def text(self) -> str:
        if not self.pending:
            return f"all {self.finished} pairs done"
        words = f"left: {len(self.pending)} pair(s), at most {format_minutes(self.bound)} by their budgets"
        if self.likely is not None:
            words += f"; about {format_minutes(self.likely)} at the pace of the {self.finished} finished"
        if self.side_by_side is not None:
            bound, likely = self.side_by_side
            words += (f"; side by side on {self.cores} cores, in the order handed to Ray: "
                      f"{format_minutes(bound)} by the budgets")
            if likely is not None:
                words += f", about {format_minutes(likely)} at that pace"
        return words


def side_by_side_seconds(jobs: list[tuple[float, int]], cores: int) -> float:
    """Wall time of jobs (seconds, cores each) started in order, each as soon as its cores are free: a FIFO
    queue such as Ray's on one machine."""
    free_at = [0.0] * cores  # when each core is next free
    end = 0.0
    for seconds, wanted in jobs:
        free_at.sort()
        wanted = min(wanted, cores)
        start = free_at[wanted - 1]  # the wanted-th core to come free
        free_at[:wanted] = [start + seconds] * wanted
        end = max(end, start + seconds)
    return end


def estimate(plan: Plan, records: dict[str, dict], cores: int | None = None) -> Estimate:
    """What is left of the plan and how long it should take.

    At most: each pending pair's cap and evaluation allowance, less what a cut-off pair has trained already.
    Likely: each of those bounds times the share of its bound that the finished pairs of the same model
    took (of any model where none of the same has finished): an NTM that is certified early takes a small
    share, a baseline that trains to its cap all of it. With `cores` (pairs on Ray on this machine, a core
    per seed) also the wall time of both as the pairs share those cores."""
    pending = [(task, model) for task, model in plan.pairs() if pair_name(task, model) not in records]
    finished = [record for record in records.values() if record.get("budget_seconds")]

    def pace(model: str | None) -> float | None:
        chosen = [record for record in finished if model is None or record["model"] == model]
        if not chosen:
            return None
        return sum(record["elapsed_seconds"] for record in chosen) / sum(record["budget_seconds"] for record in chosen)

    bounds = {(task, model): max(bound_seconds(plan, task, model) - trained_seconds(plan.out / pair_name(task, model)),
                                 EVALUATION_ALLOWANCE_S * plan.seeds_of(model))
              for task, model in pending}
    likely_of = None
    if finished:
        likely_of = {pair: bound * min(pace(pair[1]) if pace(pair[1]) is not None else pace(None), 1.0)
                     for pair, bound in bounds.items()}
    side_by_side = None
    if cores and pending:
        def wall(seconds: dict) -> float:
            return side_by_side_seconds([(seconds[pair], plan.seeds_of(pair[1])) for pair in pending], cores)
        side_by_side = (wall(bounds), wall(likely_of) if likely_of is not None else None)
    return Estimate([pair_name(*pair) for pair in pending], sum(bounds.values()),
                    sum(likely_of.values()) if likely_of is not None else None, len(records), cores, side_by_side)


def local_ray_cores(plan: Plan) -> int | None:
    """The cores an embedded Ray shares among the pairs (as `ray_cluster.start_ray` gives it); None otherwise
    (one pair after another, or a cluster whose size is known only once joined)."""
    return (os.cpu_count() or 1) if plan.ray == "local" else None


def format_minutes(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def print_plan(plan: Plan, records: dict[str, dict], console: Console) -> None:
    """Each pair with its seeds, budget and state, then what is left."""
    for task, model in plan.pairs():
        name = pair_name(task, model)
        if name in records:
            state = f"done in {format_minutes(records[name]['elapsed_seconds'])}"
        else:
            trained = trained_seconds(plan.out / name)
            state = f"cut off after {format_minutes(trained)}: resumes" if trained else "to run"
        console.print(f"  {name}: {plan.seeds_of(model)} seed(s) x {plan.budget(task, model).text()}; {state}",
                      soft_wrap=True)
    console.print(estimate(plan, records, local_ray_cores(plan)).text(), soft_wrap=True)


# ----------------------------------------------------------------------------- running the pairs


def machine_text() -> str:
    """This machine in a few words: CPU model, cores, XLA devices, JAX version."""
    import jax

    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    devices = jax.devices()
    return (f"{model}, {os.cpu_count()} cores, {len(devices)} {devices[0].platform.upper()} device(s) for XLA, "
            f"JAX {jax.__version__}")


def seed_record(plan: Plan, seed, conclusion) -> dict[str, Any]:
    """One seed in the records: its training figures, its verdict, final table and thinned learning curve."""
    from ntm.plots.reproduction import thinned_curve

    return {"seed": seed.seed, "run_dir": os.path.relpath(seed.run_dir, plan.out), "solved": conclusion.solved,
            "solved_sequences": seed.solved_sequences, "solved_seconds": seed.solved_time,
            "sequences": seed.sequences, "steps": seed.step, "seconds": seed.wall_time, "diverged": seed.diverged,
            "verdict": conclusion.verdict, "rows": conclusion.rows,
            "curve": thinned_curve(RunDirectory(seed.run_dir).records())}


def run_pair(plan: Plan, task: str, model: str, console: Console) -> dict[str, Any]:
    """Train (or resume) one pair within its budget, give every seed its final table; the pair's record."""
    from ntm.experiment import conclude, run_experiment
    from ntm.training import TrainSettings

    run_dir = plan.out / pair_name(task, model)
    budget = plan.budget(task, model)
    fields = {"sequences": budget.sequences, "minutes": budget.minutes, "until_solved": True}
    started, before = time.perf_counter(), trained_seconds(run_dir)
    quiet = dict(eval_sequences=plan.eval_sequences, console=console, progress=False)
    if SeedGroup.holds_run(run_dir):
        experiment = run_experiment(run_dir=run_dir, resume=True, budget=fields, **quiet)
    else:
        # every seed to its own certificate: the page reports each seed's sequences to solve, not a race's
        settings = TrainSettings.for_task(task, model, race=False, **fields)
        experiment = run_experiment(settings, run_dir=run_dir, seeds=plan.seeds_of(model), **quiet)
    seeds = []
    for seed in experiment.result.seeds:
        conclusion = (experiment.conclusion if seed.run_dir == experiment.best.run_dir
                      else conclude(seed.run_dir, None, plan.eval_sequences))
        seeds.append(seed_record(plan, seed, conclusion))
    best = next(i for i, seed in enumerate(experiment.result.seeds) if seed.run_dir == experiment.best.run_dir)
    return {
        "version": RECORD_VERSION, "task": task, "model": model, "key": experiment.conclusion.task.generalisation_key,
        "budget": dataclasses.asdict(budget), "seeds": seeds, "best": best,
        "parameters": RunDirectory(experiment.best.run_dir).config.parameters,
        "settings": experiment.result.settings.to_dict(),
        "elapsed_seconds": before + time.perf_counter() - started,
        "budget_seconds": bound_seconds(plan, task, model), "machine": machine_text(),
        "finished_at": time.strftime("%Y-%m-%d %H:%M"),
    }


def page_plan(plan: Plan, records: dict[str, dict]) -> Plan:
    """The plan widened to every recorded pair, so that a sitting of some tasks keeps the others on the page."""
    shown_tasks = set(plan.tasks) | {record["task"] for record in records.values()}
    shown_models = set(plan.models) | {record["model"] for record in records.values()}
    return dataclasses.replace(plan, tasks=tuple(task for task in tasks.names() if task in shown_tasks),
                               models=tuple(model for model in MODELS if model in shown_models))


def read_records(plan: Plan) -> dict[str, dict]:
    """The recorded pairs of this version (others are made again, from the run directories)."""
    path = plan.records_path
    records = read_json(path) if path.is_file() else {}
    return {name: record for name, record in records.items() if record.get("version") == RECORD_VERSION}


def finish_pair(plan: Plan, task: str, model: str, console: Console) -> dict[str, Any]:
    """Train (or resume) one pair and draw its pictures while its run directories are at hand; its record."""
    from ntm.commands.results_page import draw_pair

    record = run_pair(plan, task, model, console)
    record["pictures"] = draw_pair(plan, record)
    return record


def ray_pair(plan: Plan, task: str, model: str, devices: int) -> dict[str, Any]:
    """`finish_pair` in a Ray worker of its own, with one XLA CPU device per core Ray granted it."""
    from ntm.runtime import set_host_devices

    set_host_devices(8, plan.seeds_of(model), count=devices, granted=True)
    return finish_pair(plan, task, model, Console(stderr=True, quiet=True))


def pairs_on_ray(plan: Plan, pending: list[tuple[str, str]], console: Console):
    """Run the pending pairs as Ray tasks, side by side where the CPUs allow (a pair asks for a core per seed);
    yields (name, record) as each finishes. OUT and the page's folder must be at the same path on every
    machine of a cluster (a shared file system), as for `ntm sweep`."""
    from ntm.commands.ray_cluster import import_ray, largest_node_cpus, start_ray

    ray = import_ray("reproduce")
    plan = dataclasses.replace(plan, out=plan.out.resolve(), page=plan.page.resolve())  # a worker's cwd differs
    started = start_ray(ray, None if plan.ray == "local" else plan.ray, None, "reproduce")
    try:
        largest = largest_node_cpus(ray)
        # max_calls=1: every pair in a fresh worker, so its XLA device count can still be set
        work = ray.remote(max_calls=1)(ray_pair)
        running = {}
        for task, model in pending:
            cpus = max(1, min(plan.seeds_of(model), largest))
            running[work.options(num_cpus=cpus).remote(plan, task, model, cpus)] = pair_name(task, model)
        where = "an embedded Ray" if plan.ray == "local" else f"the Ray cluster at {plan.ray}"
        console.print(f"{len(running)} pair(s) handed to {where}, {int(ray.cluster_resources().get('CPU', 0))} "
                      "CPUs", soft_wrap=True)
        while running:
            done, _ = ray.wait(list(running), num_returns=1)
            yield running.pop(done[0]), ray.get(done[0])
    finally:
        if started:
            ray.shutdown()


def reproduce(plan: Plan, console: Console | None = None) -> Path:
    """Run every pair of the plan not yet recorded, writing the results page after each; returns its path."""
    from ntm.commands.results_page import write_page

    console = console or Console(stderr=True)
    plan.out.mkdir(parents=True, exist_ok=True)
    plan.records_path.parent.mkdir(parents=True, exist_ok=True)
    records = read_records(plan)
    print_plan(plan, records, console)
    pending = [(task, model) for task, model in plan.pairs() if pair_name(task, model) not in records]

    def one_after_another():
        for task, model in pending:
            name = pair_name(task, model)
            console.print(f"[bold]{name}[/]: {plan.seeds_of(model)} seed(s), each "
                          f"{plan.budget(task, model).text()}", soft_wrap=True)
            yield name, finish_pair(plan, task, model, console)

    for name, record in (pairs_on_ray(plan, pending, console) if plan.ray and pending else one_after_another()):
        model = record["model"]
        if plan.ship and model == "ntm":
            for task, what in ship(plan, {name: record}).items():
                console.print(f"pretrained {task}: {what}", soft_wrap=True)
        records[name] = record
        write_json_atomically(plan.records_path, records)
        write_page(page_plan(plan, records), records)  # a reproduction cut off later still leaves a page true to its records
        seeds = records[name]["seeds"]
        console.print(f"{name}: {sum(seed['solved'] for seed in seeds)} of {len(seeds)} seed(s) certified solved, in "
                      f"{format_minutes(records[name]['elapsed_seconds'])}", soft_wrap=True)
        console.print(estimate(plan, records, local_ray_cores(plan)).text(), soft_wrap=True)
    return write_page(page_plan(plan, records), records)


# ----------------------------------------------------------------------------- pretrained models


def standing(task: str, key: str, rows: list[dict[str, Any]]) -> tuple[bool, float]:
    """How good a model's final table is, to compare two models of one task: whether every row inside its
    training range is solved, then its figure in the paper's measure (cost at the paper's test value where the
    paper gives a cost, else the task's solve metric at its first row inside the training range); lower is better."""
    inside = [row for row in rows if row.get("in_training_range")]
    certified = bool(inside) and all(row.get("solved") for row in inside)
    paper = published.paper_figure(task)
    if paper is not None and paper.measure == "cost":
        row, metric = next((row for row in rows if row[key] == paper.at), None), "cost"
    else:
        row, metric = (inside or rows or [None])[0], tasks.get(task).solve_metric
    return certified, float(row[metric]) if row is not None and metric in row else math.inf


def beyond_range(task: str, key: str, rows: list[dict[str, Any]]) -> dict[Any, float]:
    """The task's solve metric at each row outside the training range, by test value (how far a model generalises)."""
    metric = tasks.get(task).solve_metric
    return {row[key]: float(row[metric]) for row in rows if not row.get("in_training_range") and metric in row}


def stands_better(task: str, key: str, rows: list[dict[str, Any]], than: list[dict[str, Any]]) -> bool:
    """Whether a model with final table `rows` stands better than one with `than`: by `standing`, and where
    that ties (two certified copy models both at 0) by the mean solve metric over the rows outside the
    training range that both tables hold."""
    this, other = standing(task, key, rows), standing(task, key, than)
    if (this[0], -this[1]) != (other[0], -other[1]):
        return (this[0], -this[1]) > (other[0], -other[1])
    mine, theirs = beyond_range(task, key, rows), beyond_range(task, key, than)
    common = mine.keys() & theirs.keys()
    return bool(common) and sum(mine[k] for k in common) < sum(theirs[k] for k in common)


def ship(plan: Plan, records: dict[str, dict], root: Path | None = None) -> dict[str, str]:
    """Ship each task's best NTM seed of a reproduction as its pretrained model (package data), with the figures
    it was recorded with: its final table, training sequences and time, and how its seeds did. A shipped model
    that stands better (`standing`) is kept. Returns per task "shipped" or why the shipped model was kept."""
    from ntm.evaluate import number
    from ntm.saving import add_pretrained, load, read_index

    outcome = {}
    for record in records.values():
        if record["model"] != "ntm":
            continue
        task, best = record["task"], record["seeds"][record["best"]]
        shipped = read_index(root).get(task)
        if shipped is not None and shipped.get("eval_key") == record["key"] and stands_better(
                task, record["key"], shipped["eval_rows"], than=best["rows"]):
            old, new = standing(task, record["key"], shipped["eval_rows"]), standing(task, record["key"], best["rows"])
            if old == new:
                mine, theirs = (beyond_range(task, record["key"], rows) for rows in (shipped["eval_rows"], best["rows"]))
                where = sorted(mine.keys() & theirs.keys())
                outcome[task] = (f"kept the shipped model (tied inside the training range; outside it, at "
                                 f"{', '.join(map(str, where))}: {', '.join(number(mine[k]) for k in where)} against "
                                 f"this run's {', '.join(number(theirs[k]) for k in where)})")
            else:
                outcome[task] = (f"kept the shipped model ({'certified' if old[0] else 'not certified'}, "
                                 f"{number(old[1])} against this run's {'certified' if new[0] else 'not certified'}, "
                                 f"{number(new[1])})")
            continue
        certified = sum(seed["solved"] for seed in record["seeds"])
        when = (f"certified at {best['solved_sequences']:,} sequences" if best["solved"]
                else f"not certified within {best['sequences']:,} sequences")
        add_pretrained(task, load(plan.out / best["run_dir"]), task=task,
                       task_options=record["settings"].get("task_options", {}), training_sequences=best["sequences"],
                       training_steps=best["steps"], wall_time=best["seconds"], eval_key=record["key"],
                       eval_rows=best["rows"],
                       notes=(f"ntm reproduce: the best of {len(record['seeds'])} seeds (seed {best['seed']}), "
                              f"{when}; {certified} of {len(record['seeds'])} seeds certified; {best['verdict']}"),
                       root=root)
        outcome[task] = "shipped"
    return outcome


# ----------------------------------------------------------------------------- the command


def add_commands(commands) -> None:
    """Register `ntm reproduce` on the `ntm` subparsers object."""
    command = commands.add_parser("reproduce", help="train the paper's five tasks with the NTM, LSTM and DNC and "
                                                    "write the results page (resumable)")
    command.add_argument("--out", default="reproduce", help="where the runs go (default ./reproduce)")
    command.add_argument("--page", default="docs/results.md", help="the results page (default docs/results.md)")
    command.add_argument("--tasks", default=",".join(tasks.names()), help="comma-separated tasks (default all)")
    command.add_argument("--models", default=",".join(MODELS), help="comma-separated models (default ntm,lstm,dnc)")
    command.add_argument("--seeds", type=int, default=DEFAULT_SEEDS,
                         help=f"NTM seeds per task, trained side by side (default {DEFAULT_SEEDS})")
    command.add_argument("--baseline-seeds", type=int, default=1, help="LSTM and DNC seeds per task (default 1)")
    command.add_argument("--minutes", type=float, default=None,
                         help="every run's wall-time cap instead of its task's (default: each task's own)")
    command.add_argument("--scale", type=float, default=1.0,
                         help="multiply every task's budget (sequences and minutes) by this, e.g. 0.1 for a look")
    command.add_argument("--eval-sequences", type=int, default=1000, help="fresh sequences per test value")
    command.add_argument("--page-only", action="store_true", help="write the results page from the pairs recorded "
                                                                  "so far, and train nothing")
    command.add_argument("--dry-run", action="store_true", help="print the pairs, their budgets and the time "
                                                               "left, and train nothing")
    command.add_argument("--ship", action="store_true", help="also ship each task's best NTM seed as its pretrained "
                                                            "model (into the package's pretrained_models folder) as "
                                                            "its pair finishes")
    command.add_argument("--ray", action="store_true",
                         help="run the pairs as Ray tasks side by side on this machine's cores (a core per seed; "
                              'needs the sweep extra: pip install -e ".[sweep]")')
    command.add_argument("--address", default=None, metavar="ADDR",
                         help="run the pairs as Ray tasks on the Ray cluster at ADDR (HEAD_IP:6379 after `ray start "
                              "--head`); --out and --page must be on a file system every machine shares")
    command.set_defaults(handler=run_command)


def run_command(args, console: Console) -> int:
    from ntm.runtime import set_host_devices

    plan = Plan(Path(args.out), Path(args.page), tuple(t for t in args.tasks.split(",") if t),
                tuple(m for m in args.models.split(",") if m), args.seeds, args.baseline_seeds, args.minutes,
                args.scale, args.eval_sequences, args.ship, args.address or ("local" if args.ray else None))
    if args.page_only:
        from ntm.commands.results_page import write_page

        records = read_records(plan)
        Console().print(f"results page: {write_page(page_plan(plan, records), records)}")
        return 0
    if args.dry_run:
        print_plan(plan, read_records(plan), Console())
        return 0
    if not plan.ray:  # (on Ray each pair's worker sets its own, from the cores it was granted)
        set_host_devices(8, plan.seeds)  # before JAX starts: one CPU device per core where the seeds or batches divide
    page = reproduce(plan, console)
    Console().print(f"results page: {page}")
    return 0
