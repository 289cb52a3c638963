"""Ray and Ray Tune for `ntm sweep`: starting Ray, the Tuner of a sweep (or its restore), trial names, progress.

The scheduler is `fifo` (every trial runs to its end), `asha` (Tune's ASHAScheduler stops trials whose
held-out cost falls behind, compared at equal training sequences) or `pbt` (Tune's PopulationBasedTraining:
every so many training sequences a trial in the worst quarter continues the run of one in the best quarter,
with its searched training settings perturbed; `space.PBT_MUTABLE`). Ray is imported only here and in a
trial, and only when a sweep runs.
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path
from typing import Any

from ntm.commands import ray_cluster
from ntm.commands.sweep import TUNE_DIR, usage_error
from ntm.commands.sweep.results import number, status_of
from ntm.commands.sweep.space import Search, mutated
from ntm.commands.sweep.trial import TrialPlan, run_trial
from ntm.plots.figures import setting_text

SCHEDULERS = ("fifo", "asha", "pbt")
# ASHA keeps the best 1/REDUCTION of the trials at each rung; with the first rung at 1/REDUCTION**3 of
# the budget there are four rungs, the last one the whole budget.
ASHA_REDUCTION = 3
PBT_SNAPSHOTS_KEPT = 4
# Trial names carry the searched values; long ones are cut (the trial number keeps them unique).
NAME_LIMIT = 96


def import_ray():
    """Ray and Tune, or a one-line UsageError saying how to install them."""
    try:
        import ray
        from ray import tune
    except ImportError:
        raise usage_error(f"Ray Tune is not installed; {ray_cluster.INSTALL_HINT}") from None
    return ray, tune


def start_ray(ray, address: str | None, num_cpus: int | None) -> bool:
    """Join the cluster at `address`, or start an embedded Ray; True if this call started (so must stop) it."""
    return ray_cluster.start_ray(ray, address, num_cpus, "sweep")


def trial_name(trial, changing: tuple[str, ...] = ()) -> str:
    """`NNN-flag=value,...`: the trial's number in the sweep and its searched values (a folder name), less the
    `changing` ones (those population-based training perturbs, which a name given once would misstate)."""
    ordinal = trial.trial_id.rsplit("_", 1)[-1]
    settings = ",".join(f"{dest.replace('_', '-')}={setting_text(value)}" for dest, value in sorted(trial.config.items())
                        if dest not in changing)
    name = (f"{ordinal}-{settings}" if settings else ordinal).replace("/", "_").replace(" ", "")
    return name[:NAME_LIMIT]


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


def make_tuner(tune, plan: TrialPlan, spec: dict[str, Any], searches: list[Search], resume: bool):
    """The Tuner of the sweep that `spec` (sweep.json) describes, or, with `resume`, the one Tune saved."""
    trainable = tune.with_resources(tune.with_parameters(run_trial, plan=plan), {"cpu": plan.cpus_per_trial})
    tune_dir = Path(plan.sweep_dir) / TUNE_DIR
    if resume:
        if not tune.Tuner.can_restore(str(tune_dir)):
            raise usage_error(f"{tune_dir} holds no Ray Tune state to restore (the sweep stopped before Tune "
                              f"saved any); start the sweep again in a new --sweep-dir")
        return tune.Tuner.restore(str(tune_dir), trainable, resume_unfinished=True, resume_errored=True)
    scheduler = None
    if spec["scheduler"] == "asha":
        scheduler = tune.schedulers.ASHAScheduler(
            # max_t one past the largest budget: reaching its budget ends a trial by itself, after
            # its report is written; ASHA stopping it there would cut that short
            time_attr="sequences", metric="cost", mode="min", max_t=spec["budget_sequences"] + 1,
            grace_period=spec["grace_sequences"], reduction_factor=ASHA_REDUCTION)
    checkpoints, namer = None, trial_name
    if spec["scheduler"] == "pbt":
        namer = partial(trial_name, changing=tuple(search.flag.dest for search in mutated(searches)))
        # synch: trials are compared at the same training sequences, as ASHA compares them (a held-out cost
        # falls with training, so a trial that ran ahead would look better for that alone)
        scheduler = tune.schedulers.PopulationBasedTraining(
            time_attr="sequences", metric="cost", mode="min", synch=True,
            perturbation_interval=spec["perturbation_sequences"],
            hyperparam_mutations={search.flag.dest: search.domain() for search in mutated(searches)})
        # A trial's newest snapshot is what another may continue; one per perturbation interval, a few kept.
        checkpoints = tune.CheckpointConfig(num_to_keep=PBT_SNAPSHOTS_KEPT)
    return tune.Tuner(
        trainable,
        param_space={search.flag.dest: search.domain() for search in searches},
        # reuse_actors: a trial starts in the process of one that ended (JAX already imported, and
        # a trial that ASHA stops has time to save its checkpoint)
        tune_config=tune.TuneConfig(num_samples=spec["samples"], scheduler=scheduler, reuse_actors=True,
                                    max_concurrent_trials=spec["max_concurrent"],
                                    trial_name_creator=namer, trial_dirname_creator=namer),
        run_config=tune.RunConfig(name=TUNE_DIR, storage_path=str(plan.sweep_dir), verbose=0,
                                  callbacks=[progress_lines()], checkpoint_config=checkpoints),
    )
