"""Training: one compiled step per batch shape, curriculum, checkpoints and resume, logs, NaN guard.

Read top to bottom: the settings; the optimizer; the compiled step; the held-out solve check;
then `train()`, the loop that ties task -> batch -> model -> loss/metrics -> logs/checkpoints.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from ntm import metrics, models, tasks
from ntm.cell import count_params
from ntm.config import DictConfig
from ntm.checkpoints import (
    CONFIG_FILE,
    METRICS_FILE,
    Checkpoints,
    read_run_config,
    truncate_metrics,
    write_json_atomically,
)

OPTIMIZERS = ("adam", "rmsprop")
# Held-out batches come from their own seeds, far from any training seed's stream.
HELD_OUT_SEED = 1_000_003
# The fraction of the learning rate kept each time repeated NaN steps force a restore.
NAN_LR_FACTOR = 0.5
# After this many restores the run stops: it diverges whatever the learning rate.
MAX_NAN_RESTORES = 5


@dataclasses.dataclass(frozen=True)
class TrainSettings(DictConfig):
    """Every training choice. Model fields go in `model_options`, task difficulty in `task_options`."""

    task: str = "copy"
    model: str = "ntm"
    model_options: dict = dataclasses.field(default_factory=dict)
    task_options: dict = dataclasses.field(default_factory=dict)
    optimizer: str = "adam"
    lr: float = 3e-3
    momentum: float = 0.9
    batch_size: int = 8
    grad_clip: float = 10.0
    seed: int = 0
    steps: int | None = None
    sequences: int | None = None
    until_solved: bool = True
    max_steps: int = 20_000
    curriculum: bool = False
    eval_every: int = 100
    eval_batch_size: int = 64
    log_every: int = 10
    checkpoint_every: int = 1000
    keep: int = 3
    nan_patience: int = 5
    remat: bool = False

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {self.optimizer!r}")
        for name in ("lr", "grad_clip"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 < value < math.inf):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        self.check_positive_ints("batch_size", "max_steps", "eval_every", "eval_batch_size", "log_every",
                                 "checkpoint_every", "keep", "nan_patience")
        for name in ("steps", "sequences"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.steps is not None and self.sequences is not None:
            raise ValueError("give either steps or sequences as the budget, not both")
        self.check_positive_ints("seed", minimum=0)

    def budget_steps(self) -> int:
        """The most steps this run may take."""
        if self.steps is not None:
            return self.steps
        if self.sequences is not None:
            return math.ceil(self.sequences / self.batch_size)
        return self.max_steps



@dataclasses.dataclass
class TrainResult:
    run_dir: Path
    step: int
    sequences: int
    solved: bool
    wall_time: float
    level: int
    last: dict[str, float]
    settings: TrainSettings
    compiles: int  # how many times the training step was compiled in this process


# ----------------------------------------------------------------------------- building blocks


def make_optimizer(settings: TrainSettings) -> optax.GradientTransformation:
    """Global-norm clipping, then Adam or RMSProp (momentum 0.9, Graves), with an adjustable rate."""

    def build(learning_rate):
        if settings.optimizer == "adam":
            inner = optax.adam(learning_rate)
        else:
            inner = optax.rmsprop(learning_rate, decay=0.95, momentum=settings.momentum, centered=True)
        return optax.chain(optax.clip_by_global_norm(settings.grad_clip), inner)

    return optax.inject_hyperparams(build)(learning_rate=settings.lr)


def build_task(settings: TrainSettings):
    return tasks.get(settings.task, **settings.task_options)


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


def all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves))


def train_step_function(graphdef, tx, remat: bool = False):
    """The uncompiled step `(params, opt_state, batch, key, active) -> (params, opt_state, stats)`.

    Forward, loss, metrics, gradient, clip, update. A step whose loss or gradient is not
    finite, or with `active` False, leaves params and optimizer state untouched; `stats`
    reports `finite`. Pure, so it can be jitted as it is or vmapped over seeds.
    """

    def loss_fn(params, batch, key):
        model = nnx.merge(graphdef, params)
        logits = model(batch.inputs, lengths=batch.lengths, rngs=key, remat=remat)
        return metrics.loss(logits, batch.targets, batch.mask), logits

    def train_step(params, opt_state, batch, key, active=True):
        (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch, key)
        finite = jnp.isfinite(loss) & all_finite(grads)
        updates, new_opt_state = tx.update(grads, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        apply = finite & active
        keep_unless_applied = lambda new, old: jnp.where(apply, new, old)
        params = jax.tree.map(keep_unless_applied, new_params, params)
        opt_state = jax.tree.map(keep_unless_applied, new_opt_state, opt_state)
        stats = metrics.summarize(logits, batch.targets, batch.mask)
        stats.update(loss=loss, finite=finite, grad_norm=optax.tree.norm(grads))
        return params, opt_state, stats

    return train_step


def make_train_step(graphdef, tx, remat: bool = False):
    """The compiled step of one model (see `train_step_function`); params and state are donated."""
    step = train_step_function(graphdef, tx, remat)
    return jax.jit(lambda params, opt_state, batch, key: step(params, opt_state, batch, key), donate_argnums=(0, 1))


def make_eval_step(graphdef):
    @jax.jit
    def eval_step(params, batch, key):
        logits = nnx.merge(graphdef, params)(batch.inputs, lengths=batch.lengths, rngs=key)
        return metrics.summarize(logits, batch.targets, batch.mask)

    return eval_step


def solve_difficulty(task, level_difficulty: dict) -> dict:
    """Where the solve criterion is checked: the level's largest length (or item count)."""
    key = "max_" + task.generalisation_key
    if key in level_difficulty:
        return task.eval_difficulty(level_difficulty[key], **level_difficulty)
    return level_difficulty


def held_out_batch(task, level: int, level_difficulty: dict, batch_size: int, pad_to: int | None = None):
    rng = np.random.default_rng(HELD_OUT_SEED + level)
    return task.sample(rng, batch_size, pad_to=pad_to, **solve_difficulty(task, level_difficulty))


def mean_of_finite(stats: list[dict]) -> dict[str, float]:
    """Mean cost, bit errors and gradient norm over the steps whose update was applied (NaN if none)."""
    good = [s for s in stats if bool(s["finite"])]
    return {name: float(np.mean([s[name] for s in good])) if good else float("nan")
            for name in ("cost", "bit_errors", "grad_norm")}


def level_label(level: int, levels: int) -> str:
    return f"level {level + 1}/{levels}" if levels > 1 else ""


def default_run_dir(task_name: str) -> Path:
    return Path("runs") / f"{task_name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


class MetricsLog:
    """metrics.jsonl and TensorBoard, written side by side."""

    def __init__(self, run_dir: Path):
        from tensorboardX import SummaryWriter

        self.path = run_dir / METRICS_FILE
        self.file = self.path.open("a")
        self.writer = SummaryWriter(logdir=str(run_dir / "tb"))

    def write(self, row: dict[str, Any], prefix: str = "train") -> None:
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        for name, value in row.items():
            if (name not in ("step", "event") and isinstance(value, (int, float))
                    and not isinstance(value, bool) and math.isfinite(value)):
                self.writer.add_scalar(f"{prefix}/{name}", value, row["step"])

    def close(self) -> None:
        self.file.close()
        self.writer.close()


def make_progress(console: Console, enabled: bool) -> Progress:
    """A one-line live bar; compact so it fits an 80-column terminal."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=12),
        TextColumn("{task.completed:>5.0f} steps {task.fields[sequences]:>7} seq"),
        TextColumn("cost {task.fields[cost]:.3g} err {task.fields[errors]:.3g}"),
        TextColumn("{task.fields[level]}"),
        TextColumn("{task.fields[speed]:.0f} seq/s"),
        TimeRemainingColumn(compact=True),
        console=console,
        disable=not enabled,
    )


# ----------------------------------------------------------------------------- the loop


def train(
    settings: TrainSettings | None = None,
    *,
    run_dir: Path | str | None = None,
    resume: bool = False,
    budget: dict[str, Any] | None = None,
    console: Console | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train a model on a task, or resume the run in `run_dir` (`resume=True`).

    On resume the saved settings are used; `budget` may change `steps`, `sequences`,
    `until_solved` and `max_steps` only.
    """
    console = console or Console(stderr=True)
    if resume:
        run_dir = Path(run_dir)
        saved = read_run_config(run_dir)
        values = {**saved["settings"], **(budget or {})}
        settings = TrainSettings.from_dict(values)
    else:
        settings = settings or TrainSettings()
        run_dir = Path(run_dir) if run_dir is not None else default_run_dir(settings.task)
        if (run_dir / CONFIG_FILE).exists():
            raise ValueError(f"{run_dir} already holds a run; resume it with --resume or choose another --run-dir")

    # task, curriculum, model, optimizer
    task = build_task(settings)
    levels = task.curriculum_levels() if settings.curriculum else [dict(task.difficulty)]
    model, model_config = build_model(settings, task)
    if resume and saved["model_config"] != model_config.to_dict():
        raise ValueError(
            f"the model config in {run_dir / CONFIG_FILE} does not rebuild the same model "
            f"({saved['model_config']} vs {model_config.to_dict()})"
        )
    graphdef, params = nnx.split(model, nnx.Param)
    tx = make_optimizer(settings)
    opt_state = tx.init(params)
    train_step = make_train_step(graphdef, tx, settings.remat)
    eval_step = make_eval_step(graphdef)

    # loop state: everything a resume needs besides params and optimizer state
    loop = {"step": 0, "sequences": 0, "level": 0, "lr": settings.lr, "skipped": 0,
            "nan_restores": 0, "wall_time": 0.0, "solved": False,
            "data_rng": np.random.default_rng(settings.seed).bit_generator.state}

    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoints = Checkpoints(run_dir, keep=settings.keep, identity=model_identity(settings, model_config))
    if resume:
        step, state, meta = checkpoints.restore({"params": params, "opt_state": opt_state})
        params, opt_state = state["params"], state["opt_state"]
        loop.update(meta)
        loop["solved"] = loop["solved"] and settings.until_solved  # a solved run may train on without the stop
        truncate_metrics(run_dir, loop["step"])
        console.print(f"resumed {run_dir} at step {loop['step']} ({loop['sequences']} sequences, level {loop['level']})")
    else:
        write_json_atomically(run_dir / CONFIG_FILE, {
            "settings": settings.to_dict(), "model_config": model_config.to_dict(),
            "model": settings.model, "task": settings.task, "parameters": count_params(model),
        })
        checkpoints.save(0, {"params": params, "opt_state": opt_state}, loop)

    data_rng = np.random.default_rng()
    data_rng.bit_generator.state = loop["data_rng"]
    model_key = jax.random.key(settings.seed)
    eval_key = jax.random.key(HELD_OUT_SEED)
    log = MetricsLog(run_dir)
    budget_steps = settings.budget_steps()
    held_out = held_out_batch(task, loop["level"], levels[loop["level"]], settings.eval_batch_size)

    def save_checkpoint():
        loop["data_rng"] = data_rng.bit_generator.state
        checkpoints.save(loop["step"], {"params": params, "opt_state": opt_state}, loop)

    def set_learning_rate(state, lr):
        state.hyperparams["learning_rate"] = jnp.asarray(lr, dtype=state.hyperparams["learning_rate"].dtype)
        return state

    pending: list[dict] = []
    last: dict[str, float] = {}
    consecutive_skips = 0
    window_start = time.perf_counter()
    window_sequences = 0
    started = time.perf_counter() - loop["wall_time"]
    progress_bar = make_progress(console, progress)
    with progress_bar:
        bar = progress_bar.add_task(
            f"{settings.task}", total=budget_steps, completed=loop["step"],
            sequences=loop["sequences"], cost=float("nan"), errors=float("nan"),
            level=level_label(loop["level"], len(levels)), speed=0.0,
        )
        while loop["step"] < budget_steps and not loop["solved"]:
            batch = task.sample(data_rng, settings.batch_size, **levels[loop["level"]])
            params, opt_state, stats = train_step(params, opt_state, batch, jax.random.fold_in(model_key, loop["step"]))
            loop["step"] += 1
            loop["sequences"] += settings.batch_size
            window_sequences += settings.batch_size
            pending.append(stats)
            step = loop["step"]

            if step % settings.log_every == 0 or step == budget_steps:
                fetched = jax.device_get(pending)
                pending = []
                finite = [bool(s["finite"]) for s in fetched]
                for ok in finite:
                    consecutive_skips = 0 if ok else consecutive_skips + 1
                loop["skipped"] += finite.count(False)
                now = time.perf_counter()
                speed = window_sequences / max(now - window_start, 1e-9)
                window_start, window_sequences = now, 0
                loop["wall_time"] = now - started
                last = mean_of_finite(fetched)
                log.write({"step": step, "sequences": loop["sequences"], **last, "level": loop["level"],
                           "lr": loop["lr"], "skipped": loop["skipped"], "seq_per_s": speed,
                           "time": loop["wall_time"]})
                progress_bar.update(bar, completed=step, sequences=loop["sequences"], cost=last["cost"],
                                    errors=last["bit_errors"], speed=speed)
                if finite.count(False):
                    console.print(f"[yellow]step {step}: skipped {finite.count(False)} update(s) with a non-finite loss or gradient (total {loop['skipped']})")
                if consecutive_skips >= settings.nan_patience:
                    if loop["nan_restores"] >= MAX_NAN_RESTORES:
                        log.write({"step": step, "event": "diverged", "skipped": loop["skipped"]})
                        raise FloatingPointError(
                            f"training keeps producing non-finite values after {MAX_NAN_RESTORES} restores "
                            f"with lower learning rates; stopped at step {step}; checkpoints are kept in {run_dir}"
                        )
                    keep_step = {k: loop[k] for k in ("step", "sequences", "skipped", "wall_time", "lr", "nan_restores")}
                    keep_step["data_rng"] = data_rng.bit_generator.state
                    restored_step, state, meta = checkpoints.restore({"params": params, "opt_state": opt_state})
                    params, opt_state = state["params"], state["opt_state"]
                    loop.update(meta)
                    loop.update(keep_step)
                    loop["nan_restores"] += 1
                    loop["lr"] *= NAN_LR_FACTOR
                    opt_state = set_learning_rate(opt_state, loop["lr"])
                    consecutive_skips = 0
                    held_out = held_out_batch(task, loop["level"], levels[loop["level"]], settings.eval_batch_size)
                    message = (f"step {step}: {settings.nan_patience} non-finite steps in a row; restored the "
                               f"checkpoint of step {restored_step} and lowered the learning rate to {loop['lr']:.3g}")
                    console.print(f"[yellow]{message}")
                    log.write({"step": step, "event": "nan_restore", "restored_step": restored_step, "lr": loop["lr"]})

            if step % settings.eval_every == 0 and (settings.until_solved or len(levels) > 1):
                held = jax.device_get(eval_step(params, held_out, eval_key))
                held = {k: float(v) for k, v in held.items()}
                log.write({"step": step, "event": "held_out", "sequences": loop["sequences"],
                           "level": loop["level"], "cost": held["cost"], "bit_errors": held["bit_errors"]}, prefix="held_out")
                if task.solved(held["bit_errors"], held["cost"]):
                    if loop["level"] + 1 < len(levels):
                        loop["level"] += 1
                        held_out = held_out_batch(task, loop["level"], levels[loop["level"]], settings.eval_batch_size)
                        log.write({"step": step, "event": "level", "level": loop["level"], "sequences": loop["sequences"],
                                   "difficulty": levels[loop["level"]]})
                        progress_bar.update(bar, level=level_label(loop["level"], len(levels)))
                    elif settings.until_solved:
                        loop["solved"] = True
                        log.write({"step": step, "event": "solved", "sequences": loop["sequences"],
                                   "time": time.perf_counter() - started})

            if step % settings.checkpoint_every == 0:
                save_checkpoint()

    loop["wall_time"] = time.perf_counter() - started
    save_checkpoint()
    # One compile per distinct batch shape is expected (one per curriculum level); more is a bug.
    compiles = train_step._cache_size()
    log.write({"step": loop["step"], "event": "compiles", "train_step": compiles})
    log.close()
    checkpoints.close()
    return TrainResult(run_dir, loop["step"], loop["sequences"], loop["solved"], loop["wall_time"], loop["level"],
                       last, settings, compiles)
