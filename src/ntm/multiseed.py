"""Training K seeds at once: one compiled program, `vmap` over params, optimizer states and data.

NTM training depends on the seed; users run several and keep the good ones. `train_seeds`
stacks K independently initialised models along a leading axis and runs one vmapped step on K
batches drawn from K independent data streams. Each seed keeps its own curriculum level, stops
updating once solved, and is frozen (and reported) if its updates keep turning non-finite.
Every seed is written as an ordinary run directory, `RUN_DIR/seed-S/`, so `ntm eval`, `ntm show`
and `ntm train --resume` work on any one of them; `RUN_DIR/seeds.json` summarises the group.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from rich.console import Console
from rich.table import Table

from ntm.cell import count_params
from ntm.checkpoints import CONFIG_FILE, Checkpoints, write_json_atomically
from ntm.train import (
    MetricsLog,
    TrainSettings,
    build_model,
    build_task,
    default_run_dir,
    make_eval_step,
    make_optimizer,
    HELD_OUT_SEED,
    held_out_batch,
    make_progress,
    mean_of_finite,
    model_identity,
    train_step_function,
)

SUMMARY_FILE = "seeds.json"


@dataclasses.dataclass
class SeedResult:
    seed: int
    run_dir: Path
    solved: bool
    solved_at_step: int | None
    solved_at_sequences: int | None
    level: int
    frozen_for_nan: bool
    last: dict[str, float]


def stack(trees):
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def unstack(tree, index: int):
    return jax.tree.map(lambda leaf: leaf[index], tree)


def stack_batches(batches):
    return type(batches[0])(*(np.stack(field) for field in zip(*batches)))


def train_seeds(
    settings: TrainSettings,
    seeds: int,
    *,
    run_dir: Path | str | None = None,
    console: Console | None = None,
    progress: bool = True,
) -> list[SeedResult]:
    """Train `seeds` models (seeds settings.seed, settings.seed + 1, ...) side by side."""
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be an integer >= 1, got {seeds!r}")
    console = console or Console(stderr=True)
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(settings.task)
    if (run_dir / SUMMARY_FILE).exists() or (run_dir / CONFIG_FILE).exists():
        raise ValueError(f"{run_dir} already holds a run; choose another --run-dir")
    seed_values = [settings.seed + k for k in range(seeds)]
    seed_settings = [dataclasses.replace(settings, seed=s) for s in seed_values]

    task = build_task(settings)
    levels = task.curriculum_levels() if settings.curriculum else [dict(task.difficulty)]
    # One padded length for every level, so seeds on different levels share one compiled step.
    steps_padded = max(task.max_steps(**level) for level in levels)
    built = [build_model(s, task) for s in seed_settings]
    graphdef = nnx.split(built[0][0], nnx.Param)[0]
    params = stack([nnx.split(model, nnx.Param)[1] for model, _ in built])
    tx = make_optimizer(settings)
    opt_state = jax.vmap(tx.init)(params)
    step_fn = jax.jit(jax.vmap(train_step_function(graphdef, tx, settings.remat)), donate_argnums=(0, 1))
    eval_fn = jax.vmap(make_eval_step(graphdef))

    seed_dirs = [run_dir / f"seed-{s}" for s in seed_values]
    logs, saves = [], []
    for k, (seed_dir, s_settings) in enumerate(zip(seed_dirs, seed_settings)):
        seed_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomically(seed_dir / CONFIG_FILE, {
            "settings": s_settings.to_dict(), "model_config": built[k][1].to_dict(), "model": settings.model,
            "task": settings.task, "parameters": count_params(built[k][0]),
        })
        logs.append(MetricsLog(seed_dir))
        saves.append(Checkpoints(seed_dir, keep=settings.keep, identity=model_identity(s_settings, built[k][1])))

    data_rngs = [np.random.default_rng(s) for s in seed_values]
    model_keys = [jax.random.key(s) for s in seed_values]
    eval_key = jax.random.key(HELD_OUT_SEED)
    level = [0] * seeds
    solved = [False] * seeds
    solved_at: list[tuple[int, int] | None] = [None] * seeds
    frozen = [False] * seeds
    consecutive_skips = [0] * seeds
    skipped = [0] * seeds
    last = [dict() for _ in range(seeds)]

    def held_out(k):
        return held_out_batch(task, level[k], levels[level[k]], settings.eval_batch_size, pad_to=steps_padded)

    def loop_meta(k, step, wall):
        return {"step": step, "sequences": step * settings.batch_size, "level": level[k], "lr": settings.lr,
                "skipped": skipped[k], "nan_restores": 0, "wall_time": wall, "solved": solved[k],
                "data_rng": data_rngs[k].bit_generator.state}

    def save_all(step, wall):
        for k in range(seeds):
            saves[k].save(step, {"params": unstack(params, k), "opt_state": unstack(opt_state, k)},
                          loop_meta(k, step, wall))

    started = time.perf_counter()
    save_all(0, 0.0)
    held_batches = [held_out(k) for k in range(seeds)]
    budget_steps = settings.budget_steps()
    pending = []
    step = 0
    window_start, window_steps = time.perf_counter(), 0
    progress_bar = make_progress(console, progress)
    with progress_bar:
        bar = progress_bar.add_task(f"{settings.task} x{seeds}", total=budget_steps,
                                    sequences=0, cost=float("nan"), errors=float("nan"), level="-", speed=0.0)
        while step < budget_steps and not all(solved[k] or frozen[k] for k in range(seeds)):
            batch = stack_batches([task.sample(data_rngs[k], settings.batch_size, pad_to=steps_padded,
                                               **levels[level[k]]) for k in range(seeds)])
            keys = jnp.stack([jax.random.fold_in(key, step) for key in model_keys])
            active = jnp.asarray([not (solved[k] or frozen[k]) for k in range(seeds)])
            params, opt_state, stats = step_fn(params, opt_state, batch, keys, active)
            step += 1
            window_steps += 1
            pending.append((stats, [not (solved[k] or frozen[k]) for k in range(seeds)]))

            if step % settings.log_every == 0 or step == budget_steps:
                fetched = jax.device_get([s for s, _ in pending])
                actives = [a for _, a in pending]
                pending = []
                now = time.perf_counter()
                speed = window_steps * settings.batch_size * seeds / max(now - window_start, 1e-9)
                window_start, window_steps = now, 0
                for k in range(seeds):
                    rows = [(s, a[k]) for s, a in zip(fetched, actives) if a[k]]
                    if not rows:
                        continue
                    for s, _ in rows:
                        ok = bool(s["finite"][k])
                        consecutive_skips[k] = 0 if ok else consecutive_skips[k] + 1
                        skipped[k] += 0 if ok else 1
                    last[k] = mean_of_finite([unstack(s, k) for s, _ in rows])
                    logs[k].write({"step": step, "sequences": step * settings.batch_size, **last[k], "level": level[k],
                                   "lr": settings.lr, "skipped": skipped[k], "seq_per_s": speed / seeds,
                                   "time": now - started})
                    if consecutive_skips[k] >= settings.nan_patience and not frozen[k]:
                        frozen[k] = True
                        console.print(f"[yellow]seed {seed_values[k]}: {settings.nan_patience} non-finite steps in a row; "
                                      f"this seed stops here (its last checkpoint is kept)")
                        logs[k].write({"step": step, "event": "diverged", "skipped": skipped[k]})
                costs = [last[k].get("cost", float("nan")) for k in range(seeds)]
                errors = [last[k].get("bit_errors", float("nan")) for k in range(seeds)]
                progress_bar.update(bar, completed=step, sequences=step * settings.batch_size * seeds,
                                    cost=float(np.nanmedian(costs)) if not np.all(np.isnan(costs)) else float("nan"),
                                    errors=float(np.nanmedian(errors)) if not np.all(np.isnan(errors)) else float("nan"),
                                    level=f"{sum(solved)}/{seeds} solved", speed=speed)

            if step % settings.eval_every == 0 and (settings.until_solved or len(levels) > 1):
                held = jax.device_get(eval_fn(params, stack_batches(held_batches), jnp.stack([eval_key] * seeds)))
                for k in range(seeds):
                    if solved[k] or frozen[k]:
                        continue
                    cost, errors = float(held["cost"][k]), float(held["bit_errors"][k])
                    logs[k].write({"step": step, "event": "held_out", "sequences": step * settings.batch_size,
                                   "level": level[k], "cost": cost, "bit_errors": errors}, prefix="held_out")
                    if not task.solved(errors, cost):
                        continue
                    if level[k] + 1 < len(levels):
                        level[k] += 1
                        held_batches[k] = held_out(k)
                        logs[k].write({"step": step, "event": "level", "level": level[k],
                                       "sequences": step * settings.batch_size, "difficulty": levels[level[k]]})
                    elif settings.until_solved:
                        solved[k] = True
                        solved_at[k] = (step, step * settings.batch_size)
                        logs[k].write({"step": step, "event": "solved", "sequences": step * settings.batch_size,
                                       "time": time.perf_counter() - started})

            if step % settings.checkpoint_every == 0:
                save_all(step, time.perf_counter() - started)

    save_all(step, time.perf_counter() - started)
    for log, save in zip(logs, saves):
        log.close()
        save.close()
    results = [
        SeedResult(seed_values[k], seed_dirs[k], solved[k], solved_at[k][0] if solved_at[k] else None,
                   solved_at[k][1] if solved_at[k] else None, level[k], frozen[k], last[k])
        for k in range(seeds)
    ]
    write_json_atomically(run_dir / SUMMARY_FILE, {
        "task": settings.task, "model": settings.model, "seeds": seed_values, "steps": step,
        "wall_time": time.perf_counter() - started,
        "results": [{**dataclasses.asdict(r), "run_dir": str(r.run_dir)} for r in results],
    })
    return results


def seeds_table(results: list[SeedResult], title: str) -> Table:
    table = Table(title=title)
    for column in ("seed", "solved", "at step", "sequences", "level", "cost (bits/seq)", "bit errors/seq"):
        table.add_column(column, justify="right")
    for r in results:
        table.add_row(str(r.seed), "NaN-frozen" if r.frozen_for_nan else ("yes" if r.solved else "no"),
                      str(r.solved_at_step or "-"), str(r.solved_at_sequences or "-"), str(r.level + 1),
                      f"{r.last.get('cost', float('nan')):.3f}", f"{r.last.get('bit_errors', float('nan')):.3f}")
    return table
