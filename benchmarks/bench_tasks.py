"""Sampling time of every task: milliseconds per batch of 32 at the paper's training difficulty.

A compiled NTM training step takes tens of milliseconds, so sampling should stay well under 1 ms
(5% of a step). Run: `python benchmarks/bench_tasks.py [--batch-size 32] [--repeats 300]`.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import ntm.tasks as tasks


def time_sampling(task, batch_size: int, repeats: int) -> tuple[float, float]:
    """Median and best milliseconds per `task.sample` call, after one warm-up call."""
    rng = np.random.default_rng(0)
    task.sample(rng, batch_size)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        task.sample(rng, batch_size)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()
    if args.batch_size < 1 or args.repeats < 1:
        parser.error("--batch-size and --repeats must be at least 1")
    print(f"{'task':<20} {'T':>5} {'median ms':>10} {'best ms':>8}   (batch {args.batch_size})")
    for name in tasks.names():
        task = tasks.get(name)
        median, best = time_sampling(task, args.batch_size, args.repeats)
        print(f"{name:<20} {task.max_steps():>5} {median:>10.3f} {best:>8.3f}")


if __name__ == "__main__":
    main()
