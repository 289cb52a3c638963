"""Benchmark of the compiled training step: compile time, sequences per second and GFLOP/s.

Measures the copy task at the paper's configuration (memory 128 x 20, LSTM controller of 100
units, 1 read and 1 write head, lengths 1-20, so T = 41 padded steps) for several models and
batch sizes, alternating the configurations over rounds so a noisy machine biases none of them.
Run on an otherwise idle machine:

    python benchmarks/bench_train_step.py [--batch-sizes 1,8,32] [--models ntm,lstm] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import numpy as np
import optax
from flax import nnx

from ntm import tasks
from ntm.runtime import tune_malloc, tune_xla
from ntm.train import TrainSettings, build_model, make_optimizer, make_train_step


def flops_of(compiled) -> float:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost.get("flops", float("nan"))) if cost else float("nan")


def sequence_flops(step, tx, params, opt_state, batch, key) -> float:
    """FLOPs of one training step on `batch`, from XLA's cost analysis.

    XLA counts a scan's body once, whatever its trip count, so the step is analysed on the batch
    cut to one time step; the optimizer update (outside the scan) is analysed alone, and the
    rest, one time step of the model forward and backward, is multiplied by T.
    """
    steps = batch.inputs.shape[1]
    one_step = type(batch)(batch.inputs[:, :1], batch.targets[:, :1], batch.mask[:, :1],
                           np.minimum(batch.lengths, 1))
    whole = flops_of(step.lower(params, opt_state, one_step, key).compile())

    def update(grads, opt_state, params):
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    optimizer = flops_of(jax.jit(update).lower(params, opt_state, params).compile())
    return (whole - optimizer) * steps + optimizer


def prepare(model_name: str, batch_size: int, task, model_options: dict):
    settings = TrainSettings(task="copy", model=model_name, batch_size=batch_size, model_options=model_options)
    model, _ = build_model(settings, task)
    graphdef, params = nnx.split(model, nnx.Param)
    tx = make_optimizer(settings)
    opt_state = tx.init(params)
    step = make_train_step(graphdef, tx)
    batch = task.sample(np.random.default_rng(0), batch_size)
    key = jax.random.key(0)
    started = time.perf_counter()
    compiled = step.lower(params, opt_state, batch, key).compile()
    compile_seconds = time.perf_counter() - started
    flops = sequence_flops(step, tx, params, opt_state, batch, key)
    state = {"params": params, "opt_state": opt_state}

    def run(steps: int) -> float:
        params, opt_state = state["params"], state["opt_state"]
        started = time.perf_counter()
        for _ in range(steps):
            params, opt_state, stats = compiled(params, opt_state, batch, key)
        jax.block_until_ready(stats)
        state["params"], state["opt_state"] = params, opt_state
        return (time.perf_counter() - started) / steps

    run(3)  # warm-up
    return compile_seconds, flops, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-tune-malloc", action="store_true", help="leave glibc's malloc thresholds alone")
    parser.add_argument("--batch-sizes", default="1,8,32")
    parser.add_argument("--models", default="ntm,lstm")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per configuration and round")
    args = parser.parse_args()
    tuned = False if args.no_tune_malloc else tune_malloc()
    tune_xla()
    task = tasks.get("copy")
    configs = [(m, int(b)) for m in args.models.split(",") for b in args.batch_sizes.split(",")]
    prepared, timings = {}, {}
    # One model at a time, its batch sizes alternating over rounds: another model's buffers
    # left in the heap would change the allocation pattern a real run sees.
    for model_name in args.models.split(","):
        mine = [config for config in configs if config[0] == model_name]
        runs = {}
        for config in mine:
            options = {"layers": 3, "units": 256} if model_name == "lstm" else {}
            compile_seconds, flops, runs[config] = prepare(model_name, config[1], task, options)
            prepared[config] = (compile_seconds, flops)
            timings[config] = []
        for _ in range(args.rounds):
            for config in mine:
                per_step = runs[config](1)
                steps = max(3, int(args.seconds / max(per_step, 1e-6)))
                timings[config].append(runs[config](steps))
        del runs
    print(f"backend {jax.default_backend()}, {jax.device_count()} device(s); copy task, T = {task.max_steps()}; "
          f"malloc tuned: {tuned}")
    print(f"{'model':6} {'batch':>5} {'compile s':>9} {'ms/step':>8} {'seq/s':>8} {'MFLOP/seq':>10} {'GFLOP/s':>8}")
    for config in configs:
        compile_seconds, flops = prepared[config]
        per_step = statistics.median(timings[config])
        model_name, batch_size = config
        print(f"{model_name:6} {batch_size:>5} {compile_seconds:>9.1f} {per_step * 1e3:>8.2f} "
              f"{batch_size / per_step:>8.0f} {flops / batch_size / 1e6:>10.1f} {flops / per_step / 1e9:>8.2f}")


if __name__ == "__main__":
    main()
