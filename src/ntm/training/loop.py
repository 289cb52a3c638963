"""The training loop: K seeds side by side in one compiled step; one seed is K = 1.

Read top to bottom: `train()` opens (or resumes) the run's seeds (`runs.SeedGroup`, one `seed.Seed` each),
then each step
  1. takes one batch per seed, at the difficulty its curriculum chooses,
  2. runs the compiled step of all seeds (`parallel.compile_step`: on one device or spread over several),
  3. lets each seed count the step, apply the non-finite policy and log (`Seed.after_step`): a
     non-finite update is discarded; after `nan_patience` in a row the seed restores its last
     checkpoint and halves its learning rate; after `max_restores` restores it stops as diverged,
  4. runs the held-out check (the stop rule: a screen, then a certification attempt, `judge.Judge.certify`)
     of the seeds it is due for, and a last certification of seeds whose budget just ended unsolved,
  5. in a race (`TrainSettings.race`), stops every other seed once one is certified solved,
  6. checkpoints.
A run directory holds one seed; K > 1 seeds are written as `RUN/seed-S/` run directories beside
`RUN/seeds.json`, and `train(run_dir=RUN, resume=True)` resumes the whole group.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from rich.console import Console

from ntm import tasks
from ntm.rundir import RunDirectoryError
from ntm.sequence import count_params
from ntm.training import curriculum as curricula
from ntm.training import warm_start
from ntm.training.judge import HELD_OUT_SEED, Judge
from ntm.training.logs import make_progress
from ntm.training.parallel import compile_step
from ntm.training.records import HeldOut, StepStats
from ntm.training.runs import RunConfig, SeedGroup, build_model, default_run_dir, model_identity
from ntm.training.seed import Seed, SeedResult
from ntm.training.settings import TrainSettings
from ntm.training.state import Progress, TrainState, stack
from ntm.training.step import make_apply_fn, make_grad_fn, make_optimizer, trimmed

__all__ = ["SeedResult", "TrainResult", "build_model", "default_run_dir", "train"]


@dataclasses.dataclass
class TrainResult:
    run_dir: Path  # the run (K = 1) or the group directory
    settings: TrainSettings  # of the first seed
    seeds: list[SeedResult]
    compiles: int  # times the training step was compiled in this process

    # One seed's figures, for K = 1 (of the first seed otherwise).
    @property
    def solved(self) -> bool:
        return self.seeds[0].solved

    @property
    def step(self) -> int:
        return self.seeds[0].step

    @property
    def sequences(self) -> int:
        return self.seeds[0].sequences

    @property
    def wall_time(self) -> float:
        return self.seeds[0].wall_time

    @property
    def level(self) -> int:
        return self.seeds[0].level

    @property
    def last(self) -> dict[str, float]:
        return self.seeds[0].last


def train(
    settings: TrainSettings | None = None,
    *,
    run_dir: Path | str | None = None,
    seeds: int = 1,
    resume: bool = False,
    budget: dict[str, Any] | None = None,
    console: Console | None = None,
    progress: bool = True,
    on_held_out: Callable[[HeldOut, Progress], None] | None = None,
) -> TrainResult:
    """Train `seeds` models (seeds settings.seed, +1, ...) on a task, or resume the run in `run_dir`.

    On resume the saved settings are used; `budget` may change `steps`, `sequences`, `until_solved`,
    `max_steps` and `minutes` only. `on_held_out(check, progress)` is called after every held-out check
    of every seed (a sweep reports it); if it raises, every seed is checkpointed and the exception goes on.
    """
    console = console or Console(stderr=True)
    group = SeedGroup.open(run_dir, budget) if resume else SeedGroup.new(settings or TrainSettings(), run_dir, seeds)
    settings, K, B = group.settings[0], len(group), group.settings[0].batch_size

    # the task, the models, the optimizer, the compiled step and the judge
    task = tasks.get(settings.task, **settings.task_options)
    levels = curricula.build(settings.curriculum, task).levels
    pad_to = max(task.max_steps(**level) for level in levels)  # one batch shape: one compile
    built = [build_model(s, task) for s in group.settings]
    if settings.init_from is not None and not resume:  # on resume the checkpoint has the parameters
        source = warm_start.source_model(settings.init_from)
        for model, _ in built:
            warm_start.warm_start(model, source)
        console.print(f"starting from the parameters of {settings.init_from} (new task channels at zero)")
    # Parameters train; the rest of a model's state (a random-memory NTM's own random stream) stays
    # as it was built: training passes a fresh key every step instead.
    graphdef, _, rest = nnx.split(built[0][0], nnx.Param, ...)
    tx = make_optimizer(settings)
    params = stack([nnx.state(model, nnx.Param) for model, _ in built])
    state = TrainState(params, jax.vmap(tx.init)(params))
    train_step = compile_step(make_grad_fn(graphdef, rest, settings.remat, settings.loss_per), make_apply_fn(tx), seeds=K, batch_size=B,
                              steps=pad_to)
    judge = Judge(task, graphdef, rest, chunk=settings.screen_sequences, pad_to=pad_to,
                  judge_sequences=settings.judge_sequences, max_failure_rate=settings.max_failure_rate)
    model_keys = jax.vmap(jax.random.key)(jnp.asarray([s.seed for s in group.settings]))

    # the run directories: locked, then written (new) or restored (resume), one Seed each
    locks, seeds_, bar = group.lock(), [], make_progress(console, progress)
    try:
        if not resume:
            group.write_configs([RunConfig(s, s.model, s.task, config.to_dict(), count_params(model))
                                 for s, (model, config) in zip(group.settings, built)])
        for k, (seed_settings, directory) in enumerate(zip(group.settings, group.directories)):
            seeds_.append(Seed(k, seed_settings, task, directory, model_identity(settings, built[0][1]), console,
                               on_held_out))
            state = seeds_[-1].open(state, resume)
        bar_task = bar.add_task(settings.task + (f" x{K}" if K > 1 else ""), total=settings.budget_steps(),
                                completed=min(s.progress.step for s in seeds_), speed=0.0, status="",
                                sequences=sum(s.progress.sequences for s in seeds_), cost=np.nan, errors=np.nan)
        window_start, window_sequences = time.perf_counter(), 0
        with bar:
            while any(seed.active for seed in seeds_):
                active = [seed.active for seed in seeds_]
                batch = tasks.Batch(*(np.stack(field) for field in zip(*(seed.next_batch(pad_to) for seed in seeds_))))
                if settings.trim_padding:
                    batch = trimmed(batch)
                keys = step_keys(model_keys, np.asarray([seed.progress.step for seed in seeds_]))
                params, opt_state, stats = train_step(state.params, state.opt_state, batch, keys, jnp.asarray(active))
                state = TrainState(params, opt_state)
                now, window_sequences = time.perf_counter(), window_sequences + B * sum(active)
                speed = window_sequences / max(now - window_start, 1e-9)
                for seed, was_active, seed_stats in zip(seeds_, active, StepStats.of_seeds(jax.device_get(stats))):
                    seed.check_due = seed.final_due = False
                    if was_active:
                        state = seed.after_step(state, seed_stats, now, speed / sum(active))
                check_held_out(judge, state, seeds_)
                if settings.race:
                    end_race(seeds_)
                for seed, was_active in zip(seeds_, active):
                    if was_active:
                        seed.save_if_due(state)
                if sum(seed.progress.step for seed in seeds_) % settings.log_every == 0 or not any(
                        seed.active for seed in seeds_):
                    show_progress(bar, bar_task, seeds_, speed)
                    window_start, window_sequences = now, 0
    except BaseException as error:
        # Stopped from outside (Ctrl-C, a sweep's scheduler): keep the work done, unless writing is what failed.
        if not isinstance(error, RunDirectoryError):
            for seed in seeds_:
                if seed.log is not None:  # opened: its state is this run's
                    seed.save_unless_saved(state)
        raise
    finally:
        for seed in seeds_:
            seed.close()
        for lock in locks:
            lock.release()

    results = [seed.result() for seed in seeds_]
    group.write_index([{"seed": r.seed, "step": r.step, "solved_step": r.solved_step, "diverged": r.diverged}
                       for r in results])
    if K == 1 and results[0].diverged:
        raise FloatingPointError(
            f"training kept producing non-finite values after {settings.max_restores} restores with lower learning "
            f"rates; stopped at step {results[0].step}; checkpoints are kept in {group.path}")
    return TrainResult(group.path, settings, results, compile_count(train_step))


def check_held_out(judge: Judge, state: TrainState, seeds: list[Seed]) -> None:
    """The held-out check (the stop rule) of the seeds it is due for, per judged curriculum level: a screen,
    then a certification attempt. A seed whose budget just ended unsolved gets a last, unscreened attempt
    instead, so that its verdict, too, is a certificate's."""
    for final in (False, True):
        due = [seed.final_due if final else seed.check_due and not seed.final_due for seed in seeds]
        for level in sorted({seed.curriculum.judged_level for seed, chosen in zip(seeds, due) if chosen}):
            judged = [chosen and seed.curriculum.judged_level == level for seed, chosen in zip(seeds, due)]
            check_id = max(seed.progress.step for seed, chosen in zip(seeds, judged) if chosen)
            first = next(seed for seed, chosen in zip(seeds, judged) if chosen)
            verdicts = judge.certify(
                state.params, judge.task.judged_difficulties(first.curriculum.levels[level]),
                [seed.progress.certify_attempts + 1 if chosen else None for seed, chosen in zip(seeds, judged)],
                np.random.default_rng([HELD_OUT_SEED, check_id, int(final)]), screen=not final,
                min_sequences=first.settings.judge_sequences if final else 0,
                run_alpha=first.settings.seed_error(len(seeds)),
                may_certify=[final or seed.may_certify for seed in seeds])
            for seed, verdict in zip(seeds, verdicts):
                if verdict is not None:
                    seed.held_out(verdict, final, state)


def end_race(seeds: list[Seed]) -> None:
    """Once a seed of a race is certified solved, every seed still training stops: the run has its model."""
    winner = next((seed for seed in seeds if seed.progress.solved), None)
    if winner is not None:
        for seed in seeds:
            if seed.active:
                seed.outrun_by(winner.progress.seed)


def show_progress(bar, bar_task, seeds: list[Seed], speed: float) -> None:
    shown = [seed.last for seed in seeds if seed.last]
    bar.update(bar_task, completed=max(seed.progress.step for seed in seeds),
               sequences=sum(seed.progress.sequences for seed in seeds), speed=speed,
               cost=float(np.median([last["cost"] for last in shown])) if shown else float("nan"),
               errors=float(np.median([last["bit_errors"] for last in shown])) if shown else float("nan"),
               status=status_text(seeds))


@jax.jit
def step_keys(model_keys, steps):
    """Each seed's key for its step: the seed's key folded with the step number."""
    return jax.vmap(jax.random.fold_in)(model_keys, steps)


def compile_count(step) -> int:
    size = getattr(step, "_cache_size", None)
    return size() if callable(size) else -1


def status_text(seeds: list[Seed]) -> str:
    if len(seeds) > 1:
        return f"{sum(seed.progress.solved for seed in seeds)}/{len(seeds)} solved"
    plan = seeds[0].curriculum
    return f"level {plan.level + 1}/{len(plan.levels)}" if len(plan.levels) > 1 and plan.name == "levels" else ""
