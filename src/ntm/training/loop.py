"""The training loop: K seeds side by side in one compiled step; one seed is K = 1.

Read top to bottom: `train()` opens (or resumes) the run, then each step
  1. samples one batch per seed at the difficulty its curriculum chooses,
  2. runs the compiled step of all seeds (`parallel.compile_step`: on one device or spread over several),
  3. applies the non-finite policy per seed, every step: a non-finite update is discarded; after
     `nan_patience` in a row the seed restores its last checkpoint and halves its learning rate;
     after `max_restores` restores it stops as diverged,
  4. logs, 5. runs the held-out check (the stop rule, `judge.Judge.check`), 6. checkpoints.
A run directory holds one seed; K > 1 seeds are written as `RUN/seed-S/` run directories beside
`RUN/seeds.json`, and `train(run_dir=RUN, resume=True)` resumes the whole group.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from rich.console import Console

from ntm import models, tasks
from ntm.rundir import (
    CONFIG_FILE,
    GROUP_FILE,
    Checkpoints,
    RunDirectoryError,
    RunLock,
    read_json,
    read_run_config,
    truncate_metrics,
    write_json_atomically,
)
from ntm.sequence import count_params
from ntm.training import curriculum as curricula
from ntm.training.judge import Judge, Verdict
from ntm.training.logs import MetricsLog, make_progress, window_means
from ntm.training.settings import BUDGET_FIELDS, TrainSettings
from ntm.training.state import Progress, TrainState, stack, unstack
from ntm.training.parallel import compile_step
from ntm.training.step import make_apply_fn, make_grad_fn, make_optimizer, set_learning_rate, trimmed

# The fraction of the learning rate kept each time repeated non-finite steps force a restore.
NAN_LR_FACTOR = 0.5


@dataclasses.dataclass
class SeedResult:
    seed: int
    run_dir: Path
    step: int
    sequences: int
    wall_time: float
    solved: bool
    solved_step: int | None
    solved_sequences: int | None
    solved_time: float | None
    diverged: bool
    level: int
    last: dict[str, float]  # window means of the last logged training steps
    verdict: Verdict | None  # the last held-out check


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


def default_run_dir(task_name: str) -> Path:
    return Path("runs") / f"{task_name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def build_model(settings: TrainSettings, task, seed: int | None = None):
    """The model named in the settings, sized for the task; returns (model, model_config)."""
    spec = models.get(settings.model)
    values = {"input_size": task.input_size, "output_size": task.output_size, **settings.model_options}
    config = spec.config_class.from_dict(values)
    model = spec.model_class(config, rngs=nnx.Rngs(settings.seed if seed is None else seed))
    return model, config


def model_identity(settings: TrainSettings, model_config) -> dict[str, Any]:
    """What a checkpoint must have been saved for: the model's name and config, flattened."""
    return {"model": settings.model, **{f"config.{k}": v for k, v in model_config.to_dict().items()}}


def seed_dirs(run_dir: Path, seed_values: list[int]) -> list[Path]:
    return [run_dir] if len(seed_values) == 1 else [run_dir / f"seed-{s}" for s in seed_values]


def resolve_run(settings, run_dir, seeds: int, resume: bool, budget) -> tuple[Path, list[TrainSettings]]:
    """The run directory and each seed's settings, fresh or as saved (with a new budget on resume)."""
    if resume:
        run_dir = Path(run_dir)
        if (run_dir / GROUP_FILE).is_file():
            group = read_json(run_dir / GROUP_FILE)
            dirs = [run_dir / f"seed-{s}" for s in group["seeds"]]
        else:
            dirs = [run_dir]
        budget = {key: value for key, value in (budget or {}).items() if key in BUDGET_FIELDS}
        seed_settings = [TrainSettings.from_dict({**read_run_config(d)["settings"], **budget}) for d in dirs]
        return run_dir, seed_settings
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be an integer >= 1, got {seeds!r}")
    settings = settings or TrainSettings()
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(settings.task)
    if (run_dir / CONFIG_FILE).exists() or (run_dir / GROUP_FILE).exists():
        raise RunDirectoryError(f"{run_dir} already holds a run; resume it or choose another run directory")
    return run_dir, [dataclasses.replace(settings, seed=settings.seed + k) for k in range(seeds)]


def train(
    settings: TrainSettings | None = None,
    *,
    run_dir: Path | str | None = None,
    seeds: int = 1,
    resume: bool = False,
    budget: dict[str, Any] | None = None,
    console: Console | None = None,
    progress: bool = True,
    on_held_out: Callable[[dict[str, Any]], None] | None = None,
    devices: int | None = None,
) -> TrainResult:
    """Train `seeds` models (seeds settings.seed, +1, ...) on a task, or resume the run in `run_dir`.

    On resume the saved settings are used; `budget` may change `steps`, `sequences`, `until_solved`
    and `max_steps` only. `on_held_out(row)` is called after every held-out check of every seed; if
    it raises, every seed is checkpointed and the exception goes on. `devices` caps how many devices
    the step is spread over (default: all that help).
    """
    console = console or Console(stderr=True)
    run_dir, seed_settings = resolve_run(settings, run_dir, seeds, resume, budget)
    settings = seed_settings[0]
    seed_values = [s.seed for s in seed_settings]
    dirs = seed_dirs(run_dir, seed_values)
    K, B = len(seed_values), settings.batch_size

    # task, curricula, models, optimizer, compiled step, judge
    task = tasks.get(settings.task, **settings.task_options)
    plans = [curricula.build(settings.curriculum, task) for _ in seed_values]
    levels = plans[0].levels
    pad_to = max(task.max_steps(**level) for level in levels)  # one batch shape: one compile
    built = [build_model(s, task) for s in seed_settings]
    model_config = built[0][1]
    # Parameters train; the rest of a model's state (a random-memory NTM's own random stream) stays
    # as it was built: training passes a fresh key every step instead.
    graphdef, _, rest = nnx.split(built[0][0], nnx.Param, ...)
    params = stack([nnx.state(model, nnx.Param) for model, _ in built])
    tx = make_optimizer(settings)
    opt_state = jax.vmap(tx.init)(params)
    train_step = compile_step(make_grad_fn(graphdef, rest, settings.remat, settings.loss_per), make_apply_fn(tx, settings.fault_rate),
                              seeds=K, batch_size=B, devices=devices, steps=pad_to)
    judge = Judge(task, graphdef, rest, chunk=settings.screen_sequences, pad_to=pad_to)

    # the run directories: locked, then created or restored
    locks = []
    for d in dict.fromkeys([run_dir, *dirs]):
        d.mkdir(parents=True, exist_ok=True)
        locks.append(RunLock(d))
    identity = model_identity(settings, model_config)
    saves = [Checkpoints(d, keep=settings.keep, identity=identity) for d in dirs]
    rngs = [np.random.default_rng(s) for s in seed_values]
    state = TrainState(params, opt_state, [
        Progress(seed=s, lr=settings.lr, data_rng=rngs[k].bit_generator.state, curriculum=plans[k].state_dict())
        for k, s in enumerate(seed_values)])
    if resume:
        state = restore_seeds(state, saves, dirs, seed_settings, built, console)
        for k in range(K):
            rngs[k].bit_generator.state = state.progress[k].data_rng
            plans[k].load_state_dict(state.progress[k].curriculum)
    else:
        for k, d in enumerate(dirs):
            write_json_atomically(d / CONFIG_FILE, {
                "settings": seed_settings[k].to_dict(), "model": settings.model, "task": settings.task,
                "model_config": built[k][1].to_dict(), "parameters": count_params(built[k][0])})
        if K > 1:
            write_json_atomically(run_dir / GROUP_FILE, {"task": settings.task, "model": settings.model,
                                                         "seeds": seed_values})
    logs = [MetricsLog(d) for d in dirs]

    def save(k: int) -> None:
        state.progress[k].data_rng = rngs[k].bit_generator.state
        state.progress[k].curriculum = plans[k].state_dict()
        saves[k].save(state.progress[k].step, *state.seed(k))

    if not resume:
        for k in range(K):
            save(k)

    budget_steps = settings.budget_steps()
    model_keys = jax.vmap(jax.random.key)(jnp.asarray(seed_values))
    windows: list[list[dict]] = [[] for _ in range(K)]
    last: list[dict[str, float]] = [{} for _ in range(K)]
    verdicts: list[Verdict | None] = [None] * K
    started = [time.perf_counter() - p.wall_time for p in state.progress]
    window_start, window_sequences = time.perf_counter(), 0

    def is_active(k: int) -> bool:
        p = state.progress[k]
        out_of_time = settings.minutes is not None and p.wall_time >= 60 * settings.minutes
        return (p.step < budget_steps and not out_of_time and not p.diverged
                and not (p.solved and settings.until_solved))

    progress_bar = make_progress(console, progress)
    try:
        with progress_bar:
            bar = progress_bar.add_task(settings.task + (f" x{K}" if K > 1 else ""), total=budget_steps,
                                        completed=min(p.step for p in state.progress),
                                        sequences=sum(p.sequences for p in state.progress),
                                        cost=float("nan"), errors=float("nan"), status="", speed=0.0)
            while any(is_active(k) for k in range(K)):
                # 1. one batch per seed, at the difficulty its curriculum chooses
                active = [is_active(k) for k in range(K)]
                chosen = [plans[k].choose(rngs[k]) if active[k] else plans[k].judged_level for k in range(K)]
                batches = [task.sample(rngs[k], B, pad_to=pad_to, **levels[chosen[k]]) if active[k]
                           else empty_batch(B, pad_to, task) for k in range(K)]
                batch = type(batches[0])(*(np.stack(field) for field in zip(*batches)))
                if settings.trim_padding:
                    batch = trimmed(batch)
                keys = step_keys(model_keys, np.asarray([p.step for p in state.progress]))

                # 2. the compiled step of every seed
                params, opt_state, stats = train_step(state.params, state.opt_state, batch, keys, jnp.asarray(active))
                state = state._replace(params=params, opt_state=opt_state)
                stats = {name: np.asarray(value) for name, value in jax.device_get(stats).items()}
                now = time.perf_counter()
                window_sequences += B * sum(active)

                judged = [False] * K
                for k in np.flatnonzero(active):
                    p = state.progress[k]
                    p.step += 1
                    p.sequences += B
                    p.wall_time = now - started[k]
                    row = {name: float(stats[name][k]) for name in ("loss", "cost", "bit_errors", "grad_norm")}
                    row["finite"] = bool(stats["finite"][k])
                    plans[k].observe(chosen[k], row)
                    windows[k].append(row)

                    # 3. the non-finite policy
                    if not row["finite"]:
                        p.skipped += 1
                        p.skipped_in_a_row += 1
                        logs[k].write({"step": p.step, "event": "non_finite", "skipped": p.skipped})
                    else:
                        p.skipped_in_a_row = 0
                    if p.skipped_in_a_row >= settings.nan_patience:
                        state = recover(state, k, saves[k], logs[k], settings, console, seed_values[k])

                    # 4. logs
                    if p.step % settings.log_every == 0 or not is_active(k):
                        last[k] = window_means(windows[k])
                        windows[k] = []
                        logs[k].write({"step": p.step, "sequences": p.sequences, **last[k], "level": plans[k].level,
                                       "lr": p.lr, "skipped": p.skipped, "time": p.wall_time,
                                       "seq_per_s": window_sequences / max(now - window_start, 1e-9) / max(sum(active), 1)})
                    judged[k] = p.step % settings.eval_every == 0 and not p.diverged

                # 5. the held-out check (the stop rule), per curriculum difficulty
                for difficulty_level in sorted({plans[k].judged_level for k in range(K) if judged[k]}):
                    group = [judged[k] and plans[k].judged_level == difficulty_level for k in range(K)]
                    step_id = max(state.progress[k].step for k in range(K) if group[k])
                    found = judge.check(state.params, task.judged_difficulties(levels[difficulty_level]),
                                        settings.judge_sequences, step_id, group)
                    for k in np.flatnonzero(group):
                        verdicts[k] = found[k]
                        held_out_event(state, k, found[k], plans[k], logs[k], settings, started[k], on_held_out)

                # 6. checkpoints
                for k in np.flatnonzero(active):
                    p = state.progress[k]
                    if p.step % settings.checkpoint_every == 0 or not is_active(k):
                        save(k)

                if sum(p.step for p in state.progress) % settings.log_every == 0 or not any(map(is_active, range(K))):
                    speed = window_sequences / max(now - window_start, 1e-9)
                    window_start, window_sequences = now, 0
                    shown = [last[k] for k in range(K) if last[k]]
                    progress_bar.update(
                        bar, completed=max(p.step for p in state.progress),
                        sequences=sum(p.sequences for p in state.progress), speed=speed,
                        cost=float(np.median([r["cost"] for r in shown])) if shown else float("nan"),
                        errors=float(np.median([r["bit_errors"] for r in shown])) if shown else float("nan"),
                        status=status_text(state, plans, K))
    except BaseException as error:
        # Stopped from outside (Ctrl-C, a sweep's scheduler): keep the work done, unless writing is what failed.
        if not isinstance(error, RunDirectoryError):
            for k in range(K):
                if state.progress[k].step not in saves[k].steps():
                    save(k)
        raise
    finally:
        for log in logs:
            log.close()
        for checkpoints in saves:
            checkpoints.close()
        for lock in locks:
            lock.release()

    if K > 1:
        write_json_atomically(run_dir / GROUP_FILE, {
            "task": settings.task, "model": settings.model, "seeds": seed_values,
            "results": [{"seed": p.seed, "step": p.step, "solved_step": p.solved_step, "diverged": p.diverged}
                        for p in state.progress]})
    results = [SeedResult(p.seed, dirs[k], p.step, p.sequences, p.wall_time, p.solved, p.solved_step,
                          p.solved_sequences, p.solved_time, p.diverged, plans[k].level, last[k], verdicts[k])
               for k, p in enumerate(state.progress)]
    if K == 1 and results[0].diverged:
        raise FloatingPointError(
            f"training kept producing non-finite values after {settings.max_restores} restores with lower learning "
            f"rates; stopped at step {results[0].step}; checkpoints are kept in {run_dir}")
    return TrainResult(run_dir, settings, results, compile_count(train_step))


@jax.jit
def step_keys(model_keys, steps):
    """Each seed's key for its step: the seed's key folded with the step number."""
    return jax.vmap(jax.random.fold_in)(model_keys, steps)


def empty_batch(batch_size: int, steps: int, task):
    """An all-padding batch for a seed that no longer trains (its update is discarded anyway)."""
    return tasks.Batch(np.zeros((batch_size, steps, task.input_size), np.float32),
                       np.zeros((batch_size, steps, task.output_size), np.float32),
                       np.zeros((batch_size, steps), np.float32), np.zeros(batch_size, np.int32))


def compile_count(step) -> int:
    size = getattr(step, "_cache_size", None)
    return size() if callable(size) else -1


def restore_seeds(state: TrainState, saves, dirs, seed_settings, built, console) -> TrainState:
    """Every seed's newest checkpoint, restored into the stacked state; metrics after it are dropped."""
    progress = []
    for k, (checkpoints, d) in enumerate(zip(saves, dirs)):
        template = nnx.state(built[k][0], nnx.Param)
        opt_template = unstack(state.opt_state, k)
        step, params, opt_state, saved = checkpoints.restore(nnx.to_pure_dict(template), opt_template)
        nnx.replace_by_pure_dict(template, params)
        state = state.with_seed(k, template, opt_state)
        progress.append(Progress.from_dict(saved))
        truncate_metrics(d, step)
        console.print(f"resumed {d} at step {step} ({saved['sequences']} sequences)")
    return state._replace(progress=progress)


def recover(state: TrainState, k: int, checkpoints: Checkpoints, log: MetricsLog, settings, console, seed) -> TrainState:
    """The non-finite policy's restore: seed k's last checkpoint, at a lower learning rate; or diverged."""
    p = state.progress[k]
    p.skipped_in_a_row = 0
    if p.restores >= settings.max_restores:
        p.diverged = True
        log.write({"step": p.step, "event": "diverged", "skipped": p.skipped, "restores": p.restores})
        console.print(f"[yellow]seed {seed}: still non-finite after {p.restores} restores; this seed stops "
                      f"(its checkpoints are kept)")
        return state
    template, opt_template = unstack(state.params, k), unstack(state.opt_state, k)
    restored_step, params, opt_state, _ = checkpoints.restore(nnx.to_pure_dict(template), opt_template)
    nnx.replace_by_pure_dict(template, params)
    state = state.with_seed(k, template, opt_state)
    p.restores += 1
    p.lr *= NAN_LR_FACTOR
    state = state._replace(opt_state=set_learning_rate(state.opt_state, k, p.lr))
    console.print(f"[yellow]seed {seed}, step {p.step}: {settings.nan_patience} non-finite steps in a row; restored "
                  f"the checkpoint of step {restored_step} and lowered the learning rate to {p.lr:.3g}")
    log.write({"step": p.step, "event": "nan_restore", "restored_step": restored_step, "lr": p.lr})
    return state


def held_out_event(state: TrainState, k: int, verdict: Verdict, plan, log: MetricsLog, settings, started: float,
                   on_held_out) -> None:
    """Log a held-out verdict; move the curriculum on or mark the seed solved when it passes."""
    p = state.progress[k]
    row = {"step": p.step, "event": "held_out", "sequences": p.sequences, "level": plan.judged_level,
           "time": p.wall_time, **verdict.row()}
    log.write(row, prefix="held_out")
    passed = verdict.solved and verdict.sequences >= settings.judge_sequences
    p.passes_in_a_row = p.passes_in_a_row + 1 if passed else 0
    if p.passes_in_a_row >= settings.judge_passes and not p.solved:
        p.passes_in_a_row = 0
        if not plan.passed():
            log.write({"step": p.step, "event": "level", "level": plan.level, "sequences": p.sequences,
                       "difficulty": plan.levels[plan.level]})
        else:
            p.solved_step, p.solved_sequences, p.solved_time = p.step, p.sequences, time.perf_counter() - started
            log.write({"step": p.step, "event": "solved", "sequences": p.sequences, "time": p.solved_time})
    if on_held_out is not None:
        on_held_out({"seed": p.seed, **row, "solved": p.solved})


def status_text(state: TrainState, plans, seeds: int) -> str:
    if seeds > 1:
        return f"{sum(p.solved for p in state.progress)}/{seeds} solved"
    plan = plans[0]
    return f"level {plan.level + 1}/{len(plan.levels)}" if len(plan.levels) > 1 and plan.name == "levels" else ""
