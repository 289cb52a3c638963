"""Benchmark of what many heads cost: training-step speed of the NTM with 1+1, 5+5 and 8+8 heads.

Issue 20 asks that a training step with 5 read + 5 write heads cost at most 2x the step of the
paper's 1 + 1 heads (the memory step is about a fifth of a 1 + 1 step, so five times its work
should cost about twice the step). This measures the compiled training step of `ntm train` on
copy (memory 128 x 20, LSTM controller of 100 units, T = 41 padded steps, one fixed batch, one
device) for each head count and batch size, timed in turn over rounds so a noisy machine biases
none of them, and prints sequences per second and each head count's step time over the 1 + 1
step's at the same batch size, all measured in the same run, beside the ratio of their arithmetic
(XLA's flop count of one time step, forward and backward): more heads also widen the controller's
input (R x M read values) and the heads' output layer, so 5 + 5 heads do about 3x the work of 1 + 1.
Times are the process's CPU time per step (median over rounds), which another process sharing the core does not inflate as it does
wall time; the wall time is printed beside it. Run on one core, e.g.

    flock /tmp/ntm-cpu0.lock taskset -c 0 python benchmarks/bench_heads.py [--heads 1+1,5+5,8+8]
        [--batch-sizes 8,32] [--memory-step fused] [--rounds 5] [--seconds 1]
"""

from __future__ import annotations

import argparse
import os
import sys


def parse_heads(text: str) -> list[tuple[int, int]]:
    """"1+1,5+5" -> [(1, 1), (5, 5)] (read heads + write heads)."""
    pairs = []
    for item in text.split(","):
        reads, _, writes = item.partition("+")
        pairs.append((int(reads), int(writes)))
    return pairs


def alternate_cpu_time(benches: dict, rounds: int, seconds: float) -> tuple[dict, dict]:
    """Median CPU seconds and wall seconds per step of each bench, timed in turn over `rounds`."""
    import statistics
    import time

    cpu = {name: [] for name in benches}
    wall = {name: [] for name in benches}
    for _ in range(rounds):
        for name, bench in benches.items():
            steps = max(3, int(seconds / max(bench.seconds_per_step(1), 1e-6)))
            started_cpu, started_wall = time.process_time(), time.perf_counter()
            bench.seconds_per_step(steps)
            cpu[name].append((time.process_time() - started_cpu) / steps)
            wall[name].append((time.perf_counter() - started_wall) / steps)
    return ({name: statistics.median(values) for name, values in cpu.items()},
            {name: statistics.median(values) for name, values in wall.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heads", default="1+1,5+5,8+8", help="read+write head counts; the first is the baseline")
    parser.add_argument("--batch-sizes", default="8,32")
    parser.add_argument("--memory-step", default="fused", help="NTMConfig.memory_step: fused or plain")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0, help="timed seconds per configuration and round")
    args = parser.parse_args()
    head_counts = parse_heads(args.heads)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]

    from ntm.runtime import set_host_devices, tune_malloc, tune_xla

    tune_malloc()
    tune_xla()
    set_host_devices(1, count=1)  # before JAX starts
    sys.path.insert(0, os.path.dirname(__file__))
    import jax

    import stepkit

    benches = {}
    for batch_size in batch_sizes:
        for reads, writes in head_counts:
            options = {"read_heads": reads, "write_heads": writes, "memory_step": args.memory_step}
            benches[(reads, writes, batch_size)] = stepkit.prepare("copy", batch_size=batch_size,
                                                                   model_options=options, devices=1)
    timings, walls = alternate_cpu_time(benches, args.rounds, args.seconds)
    print(f"backend {jax.default_backend()}; copy, T = 41, memory 128 x 20, LSTM 100, memory step "
          f"{args.memory_step}; median of {args.rounds} rounds; load average {stepkit.load_average()} (1 min) "
          f"at the end")
    baseline = head_counts[0]
    flops = {key: bench.flops_per_time_step() for key, bench in benches.items()}
    print(f"{'heads':>6} {'batch':>5} {'compile s':>9} {'cpu ms/step':>11} {'wall ms':>8} {'seq/s':>8} "
          f"{'time vs ' + f'{baseline[0]}+{baseline[1]}':>12} {'flops vs it':>11} {'time/flops':>10}")
    for key, bench in benches.items():
        reads, writes, batch_size = key
        seconds = timings[key]
        ratio = seconds / timings[(*baseline, batch_size)]
        work = flops[key] / flops[(*baseline, batch_size)]
        print(f"{f'{reads}+{writes}':>6} {batch_size:>5} {bench.compile_seconds:>9.1f} {seconds * 1e3:>11.2f} "
              f"{walls[key] * 1e3:>8.2f} {batch_size / seconds:>8.0f} {ratio:>11.2f}x {work:>10.2f}x "
              f"{ratio / work:>10.2f}")
    print("flops: XLA's count for one time step forward and backward (its cost analysis counts a loop's body "
          "once); time/flops over 1 means the step is slower than its extra arithmetic alone explains")


if __name__ == "__main__":
    main()
