"""Benchmark of training K seeds at once (vmap) against K runs of one seed after another.

Both sides run the same compiled work per seed: the default NTM on copy (lengths 1-20) at the
default batch size. Sequential: one seed's step, timed, times K. Together: the vmapped step of
`ntm.multiseed` on K stacked models. Prints sequences per second of each and the speed-up.

    python benchmarks/bench_seeds.py [--seeds 8] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ntm import tasks
from ntm.runtime import tune_malloc, tune_xla
from ntm.multiseed import stack, stack_batches
from ntm.train import TrainSettings, build_model, make_optimizer, train_step_function


def time_calls(fn, state, args, seconds):
    state = fn(*state, *args)[:2]
    jax.block_until_ready(state)
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds or runs < 3:
        *state, stats = fn(*state, *args)
        runs += 1
    jax.block_until_ready(stats)
    return (time.perf_counter() - started) / runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=TrainSettings.batch_size)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--remat", action=argparse.BooleanOptionalAction, default=TrainSettings.remat)
    args = parser.parse_args()
    tune_malloc()
    tune_xla()
    task = tasks.get("copy")
    settings = TrainSettings(batch_size=args.batch_size, remat=args.remat)
    tx = make_optimizer(settings)
    models = [build_model(settings, task, seed=s)[0] for s in range(args.seeds)]
    graphdef = nnx.split(models[0], nnx.Param)[0]
    params = [nnx.split(m, nnx.Param)[1] for m in models]
    rngs = [np.random.default_rng(s) for s in range(args.seeds)]
    batches = [task.sample(rng, args.batch_size) for rng in rngs]

    stacked = stack(params)  # before the single-seed timing donates params[0]
    one = jax.jit(train_step_function(graphdef, tx, args.remat), donate_argnums=(0, 1))
    single = time_calls(one, (params[0], tx.init(params[0])), (batches[0], jax.random.key(0)), args.seconds)

    many = jax.jit(jax.vmap(train_step_function(graphdef, tx, args.remat)), donate_argnums=(0, 1))
    keys = jnp.stack([jax.random.key(s) for s in range(args.seeds)])
    active = jnp.ones(args.seeds, bool)
    together = time_calls(many, (stacked, jax.vmap(tx.init)(stacked)), (stack_batches(batches), keys, active),
                          args.seconds)
    sequential_rate = args.batch_size / single
    together_rate = args.seeds * args.batch_size / together
    print(f"backend {jax.default_backend()}; copy T = {task.max_steps()}, batch {args.batch_size}, "
          f"{args.seeds} seeds, remat {args.remat}")
    print(f"one seed at a time: {single * 1e3:8.2f} ms/step, {sequential_rate:8.0f} seq/s "
          f"({args.seeds} seeds one after another take {args.seeds} x as long)")
    print(f"{args.seeds} seeds at once:    {together * 1e3:8.2f} ms/step, {together_rate:8.0f} seq/s")
    print(f"speed-up of seeds at once over one after another: {together_rate / sequential_rate:.2f}x")


if __name__ == "__main__":
    main()
