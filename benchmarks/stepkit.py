"""Shared by the benchmarks: `ntm train`'s compiled step, built from the same pieces, and timing helpers.

`prepare(...)` builds K seeds of a model for a task the way `ntm.training.loop.train` does
(`TrainSettings.for_task`, `build_model`, `make_grad_fn`, `make_apply_fn`, `make_optimizer`) and
compiles the step with `ntm.training.parallel.compile_step`, so a benchmark can spread it over
devices or keep it on one. The returned `Bench` times steps either on one fixed batch (the step
alone) or, with `sample=True`, drawing a fresh batch for every seed at every step as the training
loop does (what a user waits for). `trained(name, task)` loads a run directory's or a pretrained
model with the task it was trained on, for the scripts that study a trained model.

Device counts must be set before JAX starts: scripts call `ntm.runtime.set_host_devices` first and
import this module after.
"""

from __future__ import annotations

import dataclasses
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import ntm
from ntm import saving, tasks
from ntm.rundir import RunDirectoryError
from ntm.training import parallel
from ntm.training.loop import build_model
from ntm.training.runs import load_run
from ntm.training.settings import TrainSettings
from ntm.training.state import stack
from ntm.training.step import make_apply_fn, make_grad_fn, make_optimizer


def stack_batches(batches):
    """K batches of [B,...] -> one batch of [K,B,...] (numpy, as the loop hands them to the step)."""
    return type(batches[0])(*(np.stack(field) for field in zip(*batches)))


@dataclasses.dataclass
class Bench:
    """A compiled step with its state; `seconds_per_step(n)` runs n steps and times them."""

    settings: TrainSettings
    task: object
    seeds: int
    mode: str
    compile_seconds: float
    step: object
    state: list
    batch: object
    keys: jax.Array
    active: jax.Array
    rngs: list
    sample: bool
    grad_fn: object  # one seed's (params, batch, key) -> (grads, stats), as compiled into `step`

    def flops_per_time_step(self) -> float:
        """XLA's count of floating-point operations of one seed's forward and backward pass, as compiled.

        XLA's cost analysis counts a loop's body once, not once per iteration, so for a recurrent model
        this is the work of one time step forward and one backward, plus the little outside the scan
        (the loss): the figure to compare the arithmetic of two models by.
        """
        one_seed = jax.tree.map(lambda a: a[0], (self.state[0], self.batch, self.keys))
        return float(jax.jit(self.grad_fn).lower(*one_seed).compile().cost_analysis()["flops"])

    def next_batch(self):
        if not self.sample:
            return self.batch
        B = self.settings.batch_size
        return stack_batches([self.task.sample(rng, B) for rng in self.rngs])

    def seconds_per_step(self, steps: int) -> float:
        params, opt_state = self.state
        started = time.perf_counter()
        for _ in range(steps):
            params, opt_state, stats = self.step(params, opt_state, self.next_batch(), self.keys, self.active)
        jax.block_until_ready((params, stats))
        self.state = [params, opt_state]
        return (time.perf_counter() - started) / steps

    @property
    def sequences_per_step(self) -> int:
        return self.seeds * self.settings.batch_size


def prepare(task_name: str = "copy", *, model: str = "ntm", batch_size: int = 8, seeds: int = 1,
            model_options: dict | None = None, devices=1, mode: str = "auto", remat: bool = False,
            sample: bool = False) -> Bench:
    """K seeds of `model` on `task_name` at the task's default settings (batch size and model options
    overridden), compiled for `devices` (a count, a list, or None for all) and warmed up."""
    settings = TrainSettings.for_task(task_name, model=model, batch_size=batch_size,
                                      model_options=model_options or {}, remat=remat)
    task = tasks.get(task_name, **settings.task_options)
    built = [build_model(settings, task, seed=s) for s in range(seeds)]
    graphdef, _, rest = nnx.split(built[0][0], nnx.Param, ...)
    params = stack([nnx.state(m, nnx.Param) for m, _ in built])
    tx = make_optimizer(settings)
    opt_state = jax.vmap(tx.init)(params)
    rngs = [np.random.default_rng(s) for s in range(seeds)]
    batch = stack_batches([task.sample(rng, batch_size) for rng in rngs])
    # "auto" splits whatever divides (to measure a split); "train" plans as `ntm train` does
    steps = batch.inputs.shape[-2] if mode == "train" else None
    chosen = parallel.plan(seeds, batch_size, devices, steps) if mode in ("auto", "train") else mode
    grad_fn = make_grad_fn(graphdef, rest, remat)
    step = parallel.compile_step(grad_fn, make_apply_fn(tx), seeds=seeds,
                                 batch_size=batch_size, devices=devices, mode=chosen)
    keys = jnp.stack([jax.random.key(s) for s in range(seeds)])
    active = jnp.ones(seeds, bool)
    started = time.perf_counter()
    params, opt_state, stats = step(params, opt_state, batch, keys, active)  # compiles
    jax.block_until_ready(stats)
    compile_seconds = time.perf_counter() - started
    bench = Bench(settings, task, seeds, chosen, compile_seconds, step, [params, opt_state], batch, keys, active,
                  rngs, sample, grad_fn)
    bench.seconds_per_step(3)
    return bench


def alternate(benches: dict, rounds: int, seconds: float) -> dict:
    """Median seconds per step of each bench, timed in turn over `rounds` so drift biases none."""
    import statistics

    times = {name: [] for name in benches}
    for _ in range(rounds):
        for name, bench in benches.items():
            steps = max(3, int(seconds / max(bench.seconds_per_step(1), 1e-6)))
            times[name].append(bench.seconds_per_step(steps))
    return {name: statistics.median(values) for name, values in times.items()}


def load_average() -> str:
    """The 1-minute load average, to print beside every figure (the machine is shared)."""
    try:
        with open("/proc/loadavg") as f:
            return f.read().split()[0]
    except OSError:
        return "n/a"


def trained(name: str, task_name: str):
    """(model, task) of a run directory or a pretrained model's name, trained on `task_name` (the task
    built with the options it was trained with); else one line on stderr saying what is wrong, and exit 2."""
    try:
        if name in saving.read_index():
            entry = saving.pretrained_entry(name)
            model, task = ntm.pretrained(name), tasks.get(entry["task"], **entry.get("task_options", {}))
        else:
            run = load_run(name)
            model, task = run.model, run.task
    except (ValueError, RunDirectoryError) as error:
        problem = f"{name}: {error}"
    else:
        if task.name == task_name:
            return model, task
        problem = f"{name} is a {task.name} model, not {task_name}"
    print(problem, file=sys.stderr)
    raise SystemExit(2)
