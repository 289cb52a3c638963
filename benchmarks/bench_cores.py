"""Benchmark of training spread over the cores (one XLA host device per core) against one core.

Each configuration runs in its own process, because the device count is fixed when JAX starts:
  - "one core": pinned with `taskset -c 0`, one device (what the machine gave before);
  - "spread": every core, `NTM_HOST_DEVICES` = the core count, the step spread by
    `ntm.training.parallel` (the batch split for one seed, the seeds split for several).
Configurations run in turn over rounds, and the ratios come from the same run. Sequences per
second count every seed's sequences, and include drawing a fresh batch per seed per step, as
training does.

By default a child process runs the training loop's own pieces (sample, compiled step) for a fixed
time (`--via loop`); `--via cli` times the `ntm train` command itself instead (its metrics.jsonl
seq/s rows after the first, which holds the compile), once the command spreads over devices.

    python benchmarks/bench_cores.py [--batch-sizes 8,32] [--seeds 1,2] [--rounds 3] [--via loop|cli]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def child(args) -> None:
    """One configuration in this process: print its sequences per second as JSON."""
    from ntm.runtime import set_host_devices, tune_malloc, tune_xla

    tune_malloc()
    tune_xla()
    devices = set_host_devices(args.batch_size, args.seed_count)
    sys.path.insert(0, str(HERE))
    import stepkit

    bench = stepkit.prepare(args.task, batch_size=args.batch_size, seeds=args.seed_count, devices=None, sample=True,
                            model_options={"memory_step": args.memory_step})
    steps = max(3, int(args.seconds / bench.seconds_per_step(2)))
    seconds = bench.seconds_per_step(steps)
    print(json.dumps({"seq_per_s": bench.sequences_per_step / seconds, "ms_per_step": seconds * 1e3,
                      "devices": devices, "mode": bench.mode}))


def run_loop(config: dict, args) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--task", args.task,
               "--batch-size", str(config["batch"]), "--seed-count", str(config["seeds"]),
               "--seconds", str(args.seconds), "--memory-step", args.memory_step]
    return _run(command, config)


def run_cli(config: dict, args) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        run_dir = Path(scratch) / "run"
        command = [sys.executable, "-m", "ntm.commands.cli", "train", args.task, "--batch-size", str(config["batch"]),
                   "--seeds", str(config["seeds"]), "--steps", str(args.cli_steps), "--no-until-solved",
                   "--log-every", "10", "--run-dir", str(run_dir), "--quiet", "--memory-step", args.memory_step]
        _run(command, config, parse=False)
        metrics = sorted(run_dir.rglob("metrics.jsonl"))
        rates = []
        for path in metrics:
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            per_seed = [row["seq_per_s"] for row in rows if "seq_per_s" in row][1:]  # the first holds the compile
            rates.append(statistics.median(per_seed))
        return {"seq_per_s": sum(rates), "devices": config["devices"], "mode": "cli"}


def _run(command, config, parse=True):
    env = {**os.environ, "NTM_HOST_DEVICES": str(config["devices"])}
    if config["pinned"]:
        command = ["taskset", "-c", "0", *command]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1]) if parse else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="copy")
    parser.add_argument("--batch-sizes", default="8,32")
    parser.add_argument("--seeds", default="1,2", help="seed counts to run (each against itself on one core)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0, help="timed seconds per configuration and round")
    parser.add_argument("--memory-step", default="fused")
    parser.add_argument("--via", choices=("loop", "cli"), default="loop")
    parser.add_argument("--cli-steps", type=int, default=300)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--seed-count", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    sys.path.insert(0, str(HERE))
    from stepkit import load_average

    from ntm.runtime import available_cores

    cores = available_cores()
    configs = []
    for batch in [int(b) for b in args.batch_sizes.split(",")]:
        for seeds in [int(k) for k in args.seeds.split(",")]:
            configs.append({"batch": batch, "seeds": seeds, "pinned": True, "devices": 1})
            configs.append({"batch": batch, "seeds": seeds, "pinned": False, "devices": cores})
    runner = run_cli if args.via == "cli" else run_loop
    rates = {i: [] for i in range(len(configs))}
    loads = [load_average()]
    for _ in range(args.rounds):
        for i, config in enumerate(configs):
            rates[i].append(runner(config, args)["seq_per_s"])
        loads.append(load_average())
    print(f"{args.task}, memory step {args.memory_step}, via {args.via}; {cores} cores; "
          f"load average (1 min) per round: {', '.join(loads)}")
    print(f"{'batch':>5} {'seeds':>5} {'where':>22} {'seq/s':>8} {'vs one core':>11} {'vs 1 seed, same place':>21}")
    medians = {i: statistics.median(r) for i, r in rates.items()}
    for i, config in enumerate(configs):
        base = next(j for j, c in enumerate(configs) if c["batch"] == config["batch"]
                    and c["seeds"] == config["seeds"] and c["pinned"])
        single = next((j for j, c in enumerate(configs) if c["batch"] == config["batch"] and c["seeds"] == 1
                       and c["pinned"] == config["pinned"]), None)
        where = "one core (taskset -c 0)" if config["pinned"] else f"{config['devices']} devices"
        versus_single = f"{medians[i] / medians[single]:.2f}x" if single is not None and config["seeds"] > 1 else ""
        print(f"{config['batch']:>5} {config['seeds']:>5} {where:>22} {medians[i]:>8.0f} "
              f"{medians[i] / medians[base]:>10.2f}x {versus_single:>21}")


if __name__ == "__main__":
    main()
