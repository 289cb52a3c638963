"""Training speed per task: sequences per second of the default NTM at each task's default batch, before and after.

For every task (copy, repeat copy, associative recall, N-grams, priority sort) at its default
training settings (`--batch-size` overrides every task's), times the training loop's own work (a
fresh batch from `ntm.tasks.get(name)` per step, then the compiled step) for:
  - before: the plain memory step on one device (what training ran before the fused step);
  - fused, one device;
  - after: the fused memory step as `ntm train TASK` runs it with one XLA host device per core: the
    batch split over them where that pays (`ntm.training.parallel.plan`), else one device;
  - seeds: as many seeds as devices, one per device (`ntm train TASK --seeds K`), all seeds counted.
All configurations run in one process with the devices asked for before JAX starts, timed in turn
over rounds; ratios come from the same run.

    python benchmarks/bench_task_speed.py [--tasks copy,ngrams] [--batch-size 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import sys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="copy,repeat_copy,associative_recall,ngrams,priority_sort")
    parser.add_argument("--batch-size", type=int, default=None, help="default: each task's own")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per configuration and round")
    parser.add_argument("--devices", type=int, default=None, help="devices for 'after' (default: one per core)")
    args = parser.parse_args()

    from ntm.runtime import available_cores, set_host_devices, tune_malloc, tune_xla

    tune_malloc()
    tune_xla()
    set_host_devices(args.batch_size or 2, count=args.devices or available_cores())
    sys.path.insert(0, os.path.dirname(__file__))
    import jax

    import stepkit

    from ntm.training.settings import TrainSettings

    spread = jax.device_count()
    configs = {"before (plain, 1 device)": ("plain", 1, 1), "fused, 1 device": ("fused", 1, 1),
               f"after (fused, {spread} devices)": ("fused", spread, 1),
               f"{spread} seeds, {spread} devices": ("fused", spread, spread)}
    names = args.tasks.split(",")
    batch_sizes = {name: args.batch_size or TrainSettings.for_task(name).batch_size for name in names}
    benches = {}
    for name in names:
        for label, (memory_step, devices, seeds) in configs.items():
            benches[name, label] = stepkit.prepare(name, batch_size=batch_sizes[name], devices=devices, seeds=seeds,
                                                   sample=True, model_options={"memory_step": memory_step},
                                                   mode="train")
    timings = stepkit.alternate(benches, args.rounds, args.seconds)
    print(f"backend {jax.default_backend()}, {spread} device(s); default NTM and batch per task; "
          f"load average {stepkit.load_average()} (1 min) at the end")
    labels = list(configs)
    print(f"{'task':<20} {'T':>4} {'batch':>5} " + " ".join(f"{label:>26}" for label in labels)
          + f" {'after/before':>12} {'seeds/before':>12}")
    for name in names:
        steps = benches[name, labels[0]].batch.inputs.shape[-2]
        rates = [benches[name, label].sequences_per_step / timings[name, label] for label in labels]
        print(f"{name:<20} {steps:>4} {batch_sizes[name]:>5} " + " ".join(f"{rate:>20.0f} seq/s" for rate in rates)
              + f" {rates[2] / rates[0]:>11.2f}x {rates[3] / rates[0]:>11.2f}x")

if __name__ == "__main__":
    main()
