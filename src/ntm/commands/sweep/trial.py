"""One trial of `ntm sweep`, in a Ray worker: an ordinary ntm experiment that reports its held-out checks to Tune.

`run_trial` is the Ray Tune function trainable. It receives Tune's `config` (the trial's searched values,
by flag destination) and the sweep's `TrialPlan`, typed (the base `TrainSettings` of each model, the
searched flags, where the sweep is written), builds the trial's settings with `space.trial_settings`,
and runs them as `ntm train` would into `trials/NAME/`, or continues that run if Tune resumes the trial.

With population-based training the first held-out check past each perturbation interval also hands Tune a
snapshot of the run (config.json, metrics.jsonl, the checkpoint of that check: `RunDirectory.snapshot`) as
the trial's checkpoint. When Tune starts a trial from another trial's snapshot (the exploit, with the trial's
perturbed values), the trial's run directory becomes that run continued with the trial's settings
(`RunDirectory.continue_from`), and trains on from there.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console

from ntm.commands.sweep import TRIALS_DIR
# In a snapshot: which trial's run it is, so that a trial tells its own snapshot from another's.
SNAPSHOT_FILE = "trial.json"
from ntm.commands.sweep.space import trial_settings
from ntm.commands.train_flags import TrainFlag
from ntm.training.settings import TrainSettings


@dataclasses.dataclass(frozen=True)
class TrialPlan:
    """What every trial of a sweep needs, typed; Ray hands it to each worker as it is."""

    bases: dict[str, TrainSettings]  # by model name (one, unless --model is searched)
    flags: dict[str, TrainFlag]  # the searched flags, by destination
    sweep_dir: Path
    task_path: str | None  # see task_import_root
    cpus_per_trial: float
    eval_values: list[int] | None  # the final table's test values; None: the task's
    eval_sequences: int
    population_interval: int | None = None  # PBT: training sequences between the snapshots handed to Tune


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


def add_import_root(task_path: str | None) -> None:
    """Put the directory a task class of one's own imports from on sys.path (see task_import_root)."""
    if task_path and task_path not in sys.path:
        sys.path.append(task_path)


def limit_threads(cpus: float) -> None:
    """Keep a trial's numerical threads to the CPUs Ray granted it, so trials side by side do not
    oversubscribe the machine. Must run before JAX starts in the worker (a fresh process per trial)."""
    threads = str(max(1, int(cpus)))
    os.environ["OMP_NUM_THREADS"] = threads
    if int(cpus) <= 1 and "xla_cpu_multi_thread_eigen" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()


def train_trial(settings: TrainSettings, run_dir: Path, resume: bool, on_held_out, eval_values: list[int] | None,
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


def run_trial(config: dict[str, Any], plan: TrialPlan) -> None:
    """A Ray Tune function trainable: one trial of the sweep that `plan` describes."""
    limit_threads(plan.cpus_per_trial)
    add_import_root(plan.task_path)
    from ray import tune

    from ntm.runtime import tune_malloc, tune_xla

    tune_malloc()
    tune_xla()
    from ntm.rundir import read_json, write_json_atomically
    from ntm.training.runs import RunDirectory

    name = tune.get_context().get_trial_name()
    run_dir = plan.sweep_dir / TRIALS_DIR / name
    settings = trial_settings(plan.bases, config, plan.flags)
    snapshot = tune.get_checkpoint() if plan.population_interval else None
    if snapshot is not None:
        with snapshot.as_directory() as folder:
            source = read_json(Path(folder) / SNAPSHOT_FILE)["trial"]
            if source != name:  # PBT's exploit: go on from the other trial's run, with this trial's settings
                RunDirectory(run_dir).continue_from(Path(folder), settings, source)
    resume = RunDirectory(run_dir).exists
    if resume and RunDirectory(run_dir).settings != settings:
        raise RuntimeError(f"{run_dir} holds a run with other settings than this trial's; it is not resumed")

    # The sequences of the last snapshot handed to Tune: one per perturbation interval, at the first check past
    # it (when PBT decides), so the few Tune keeps are still there when another trial continues one.
    earlier = held_out_checks(run_dir) if resume else []
    reported_at = [earlier[-1].sequences if earlier else 0]

    def on_held_out(check, progress) -> None:
        # Training sequences at the check: what ASHA compares trials at (fair across batch sizes).
        metrics = {"step": check.step, "sequences": check.sequences, "time": check.time,
                   "cost": check.cost, "bit_errors": check.bit_errors, "solved": progress.solved}
        interval = plan.population_interval
        if not interval or check.sequences // interval <= reported_at[0] // interval:
            tune.report(metrics)
            return
        reported_at[0] = check.sequences
        with tempfile.TemporaryDirectory() as folder:
            RunDirectory(run_dir).snapshot(Path(folder))
            write_json_atomically(Path(folder) / SNAPSHOT_FILE, {"trial": name, "step": check.step})
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))

    outcome = train_trial(settings, run_dir, resume, on_held_out, plan.eval_values, plan.eval_sequences)
    checks = held_out_checks(run_dir)
    tune.report({**outcome, "cost": checks[-1].cost if checks else math.nan,
                 "bit_errors": checks[-1].bit_errors if checks else math.nan, "finished": True})
