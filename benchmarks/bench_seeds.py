"""Benchmark of training K seeds at once against one seed, on one device and spread over the cores.

The default NTM on copy (lengths 1-20) at the default batch size, one fixed batch per seed:
  - one seed, one device: the sequential baseline (K seeds one after another take K times as long);
  - K seeds at once on one device: one vmapped program (`ntm.training.parallel`, mode "none");
  - K seeds at once spread over every core (one XLA host device per core, mode "seeds"), when K
    divides among them.
Timed in turn over rounds in one process; prints sequences per second (all seeds counted) and the
speed-ups over one seed.

    python benchmarks/bench_seeds.py [--seeds 2] [--batch-size 8] [--memory-step fused]
"""

from __future__ import annotations

import argparse
import os
import sys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--memory-step", default="fused")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--remat", action="store_true")
    args = parser.parse_args()

    from ntm.runtime import available_cores, set_host_devices, tune_malloc, tune_xla

    tune_malloc()
    tune_xla()
    set_host_devices(1, args.seeds, count=available_cores())
    sys.path.insert(0, os.path.dirname(__file__))
    import jax

    import stepkit

    options = {"memory_step": args.memory_step}
    common = dict(batch_size=args.batch_size, model_options=options, remat=args.remat)
    benches = {"one seed, one device": stepkit.prepare("copy", seeds=1, devices=1, **common),
               f"{args.seeds} seeds at once, one device": stepkit.prepare("copy", seeds=args.seeds, devices=1,
                                                                            **common)}
    if jax.device_count() > 1 and args.seeds % jax.device_count() == 0:
        benches[f"{args.seeds} seeds at once, {jax.device_count()} devices"] = stepkit.prepare(
            "copy", seeds=args.seeds, devices=None, mode="seeds", **common)
    timings = stepkit.alternate(benches, args.rounds, args.seconds)
    print(f"backend {jax.default_backend()}, {jax.device_count()} device(s); copy, batch {args.batch_size}, "
          f"memory step {args.memory_step}, remat {args.remat}; load average {stepkit.load_average()} (1 min)")
    base = None
    for label, bench in benches.items():
        rate = bench.sequences_per_step / timings[label]
        base = base or rate
        print(f"{label:<32} {timings[label] * 1e3:8.2f} ms/step {rate:8.0f} seq/s  {rate / base:5.2f}x one seed")


if __name__ == "__main__":
    main()
