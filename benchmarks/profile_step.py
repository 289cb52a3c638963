"""Where a training step's time goes: the per-op profile of the compiled step, by op and by kind.

Runs the default NTM's training step on copy (one device, one fixed batch) under `jax.profiler`,
reads the trace back (`jax.profiler.ProfileData`) and prints the slowest ops with their shapes
and the JAX operation they came from, then the time per kind of work:
  memory step        addressing, reads and writes (ops under the `memory_step` name scope)
  scan bookkeeping   stacking per-step values for the backward pass and reading them back
                     (dynamic-update-slice / dynamic-slice), copies of loop state
  weight gradients   the per-time-step accumulation of gradients into the weights' (add_any)
  matrix products    the controller's, the heads' and the output layer's matmuls (dots), forward and
                     backward, weight gradients included
  other              everything else (activations, the optimizer, the loss)
Op times are XLA's thunk times, summed over the 41 time steps; on a loaded machine they include
time the op was preempted.

    python benchmarks/profile_step.py [--batch-size 32] [--memory-step fused] [--heads 1+1] [--top 25]
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import sys
import tempfile
from pathlib import Path


def kind_of(name: str, text: str) -> str:
    source = re.search(r'op_name="([^"]*)"', text)
    source = source.group(1) if source else ""
    if "add_any" in source:
        return "weight gradients"
    if "dynamic_update_slice" in source or "dynamic_slice" in source or "dynamic-update-slice" in name \
            or "dynamic-slice" in name or name.startswith("copy"):
        return "scan bookkeeping"
    if "memory_step" in source:
        return "memory step"
    if "dot" in name or "dot_general" in source:
        return "matrix products"
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--memory-step", default="fused")
    parser.add_argument("--heads", default="1+1", help="read heads + write heads")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()

    from ntm.runtime import tune_malloc, tune_xla

    tune_malloc()
    tune_xla()
    sys.path.insert(0, os.path.dirname(__file__))
    import jax

    import stepkit

    reads, _, writes = args.heads.partition("+")
    bench = stepkit.prepare("copy", batch_size=args.batch_size, devices=1,
                            model_options={"memory_step": args.memory_step, "read_heads": int(reads),
                                           "write_heads": int(writes)})
    bench.seconds_per_step(10)
    hlo = bench.step.lower(*bench.state, bench.batch, bench.keys, bench.active).compile().as_text()
    instructions = {}
    for line in hlo.splitlines():
        found = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = (.*)", line)
        if found:
            instructions.setdefault(found.group(1), found.group(2))
    with tempfile.TemporaryDirectory() as scratch:
        with jax.profiler.trace(scratch):
            seconds = bench.seconds_per_step(args.steps)
        trace = next(Path(scratch).rglob("*.xplane.pb"))
        profile = jax.profiler.ProfileData.from_file(str(trace))
    total, calls = collections.Counter(), collections.Counter()
    for plane in profile.planes:
        for line in plane.lines:
            if line.name == "python":
                continue
            for event in line.events:
                name = event.name
                # the executor's own spans and loops contain the ops below them: counting them twice is wrong
                if name.startswith(("ThunkExecutor", "while", "end: ")) or name not in instructions:
                    continue
                total[name] += event.duration_ns / args.steps
                calls[name] += 1 / args.steps
    print(f"copy, batch {args.batch_size}, heads {args.heads}, memory step {args.memory_step}: {seconds * 1e3:.2f} ms per step while "
          f"profiled; {sum(calls.values()):.0f} ops per step; load average {stepkit.load_average()} (1 min)")
    print(f"{'us/step':>9} {'calls':>6}  {'op':42} {'shape':34} from")
    for name, ns in total.most_common(args.top):
        text = instructions[name]
        shape = text.split(" ")[0][:34]
        source = re.search(r'op_name="([^"]*)"', text)
        print(f"{ns / 1e3:>9.1f} {calls[name]:>6.0f}  {name[:42]:42} {shape:34} "
              f"{(source.group(1)[-60:] if source else '')}")
    kinds = collections.Counter()
    for name, ns in total.items():
        kinds[kind_of(name, instructions[name])] += ns
    whole = sum(kinds.values())
    print("\nby kind of work (share of the summed op time):")
    for kind, ns in kinds.most_common():
        print(f"  {kind:18} {ns / 1e6:7.2f} ms per step  {100 * ns / whole:5.1f} %")


if __name__ == "__main__":
    main()
