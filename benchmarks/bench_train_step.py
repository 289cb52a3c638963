"""Benchmark of the compiled training step: ms per step and sequences per second, fused or plain, 1 or more devices.

Measures the copy task at the paper's configuration (memory 128 x 20, LSTM controller of 100
units, 1 read and 1 write head, lengths 1-20, so T = 41 padded steps) on one fixed batch, for
each memory step (`NTMConfig.memory_step`: fused or plain), batch size and device count, timed in
turn over rounds so a noisy machine biases none of them; ratios are against the plain step on one
device at the same batch size, measured in the same run. More than one device on a CPU means XLA
host devices (one per core), asked for before JAX starts. Run on an otherwise idle machine:

    python benchmarks/bench_train_step.py [--batch-sizes 1,8,32] [--memory-steps fused,plain]
        [--devices 1,2] [--models ntm,lstm] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import sys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", default="1,8,32")
    parser.add_argument("--memory-steps", default="fused,plain", help="NTM memory steps to compare")
    parser.add_argument("--devices", default="1", help="device counts to compare, e.g. 1,2")
    parser.add_argument("--models", default="ntm")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0, help="timed seconds per configuration and round")
    args = parser.parse_args()
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    device_counts = [int(d) for d in args.devices.split(",")]

    from ntm.runtime import set_host_devices, tune_malloc, tune_xla

    tune_malloc()
    tune_xla()
    available = set_host_devices(1, count=max(device_counts))  # before JAX starts
    sys.path.insert(0, os.path.dirname(__file__))
    import jax

    import stepkit

    if jax.device_count() < max(device_counts):
        parser.error(f"asked for {max(device_counts)} devices, JAX has {jax.device_count()} ({available} requested)")
    benches, labels = {}, {}
    for model in args.models.split(","):
        steps = args.memory_steps.split(",") if model == "ntm" else ["-"]
        for memory_step in steps:
            # the NTM's memory step; the paper's copy LSTM (3 x 256); the DNC on its own defaults
            options = {"ntm": {"memory_step": memory_step}, "lstm": {"layers": 3, "units": 256}}.get(model, {})
            for batch_size in batch_sizes:
                for devices in device_counts:
                    bench = stepkit.prepare("copy", model=model, batch_size=batch_size, model_options=options,
                                            devices=devices)
                    if devices > 1 and bench.mode == "none":
                        continue  # nothing to split
                    key = (model, memory_step, batch_size, devices)
                    benches[key] = bench
    timings = stepkit.alternate(benches, args.rounds, args.seconds)
    print(f"backend {jax.default_backend()}, {jax.device_count()} device(s); copy, T = 41; "
          f"load average {stepkit.load_average()} (1 min) at the end")
    print(f"{'model':6} {'memory step':11} {'batch':>5} {'devices':>8} {'compile s':>9} {'ms/step':>8} {'seq/s':>8} "
          f"{'vs plain, 1 device':>18}")
    for key, bench in benches.items():
        model, memory_step, batch_size, devices = key
        seconds = timings[key]
        base = timings.get((model, "plain", batch_size, 1))
        ratio = f"{base / seconds:.2f}x" if base else ""
        where = f"{devices} ({bench.mode})" if devices > 1 else "1"
        print(f"{model:6} {memory_step:11} {batch_size:>5} {where:>8} {bench.compile_seconds:>9.1f} "
              f"{seconds * 1e3:>8.2f} {batch_size / seconds:>8.0f} {ratio:>18}")


if __name__ == "__main__":
    main()
