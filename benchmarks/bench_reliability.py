"""Kill anywhere: SIGKILL `ntm train` at many random moments, resume each time, and measure what held.

    python benchmarks/bench_reliability.py --kills 20 --steps 200 --checkpoint-every 1

Kills land uniformly over the run's life: start-up, compile, training steps, held-out checks and
checkpoint writes (with a checkpoint every step, most kills fall inside or near a write). After the
last resume the script checks that the logs parse with every step once, how many steps each kill
lost (at most one checkpoint interval is allowed), and, with a checkpoint every step, that the final
parameters equal an uninterrupted run's. Prints one table; exit status 1 if anything did not hold.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
from flax import nnx
from rich.console import Console
from rich.table import Table

from ntm.evaluate import load_run
from ntm.rundir import Checkpoints, read_metrics
from ntm.training import TrainSettings, train

TINY = ["--max-length", "3", "--memory-slots", "16", "--memory-width", "8", "--controller-units", "32",
        "--batch-size", "8", "--judge-sequences", "100", "--eval-every", "7", "--log-every", "1"]
EVAL = ["--eval-lengths", "2", "--eval-sequences", "100", "--quiet"]


def ntm(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ntm.commands.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--checkpoint-every", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    work = Path(tempfile.mkdtemp(prefix="ntm-kill-"))
    run_dir = work / "killed"
    first = ["train", "copy", *TINY, "--steps", str(args.steps), "--no-until-solved", "--checkpoint-every",
             str(args.checkpoint_every), "--run-dir", str(run_dir), *EVAL]
    lost, kills, started = [], 0, time.perf_counter()
    while True:
        process = ntm(*(first if not (run_dir / "config.json").exists() else
                        ["train", "--resume", str(run_dir), *EVAL]))
        if kills < args.kills:
            time.sleep(rng.uniform(1.0, 12.0))
            if process.poll() is None:
                logged = max([row["step"] for row in read_metrics(run_dir) if "event" not in row], default=0)
                process.send_signal(signal.SIGKILL)
                process.wait()
                kills += 1
                saved = Checkpoints(run_dir).steps() if (run_dir / "checkpoints").is_dir() else [0]
                lost.append(max(logged - max(saved, default=0), 0))
                continue
        _, error = process.communicate()
        if process.returncode != 0:
            print(error, file=sys.stderr)
            return 1
        break
    elapsed = time.perf_counter() - started
    steps = [row["step"] for row in read_metrics(run_dir) if "event" not in row]
    every_step_once = steps == list(range(1, args.steps + 1))
    same = None
    if args.checkpoint_every == 1:
        straight = work / "straight"
        train(TrainSettings.for_task("copy", task_options={"max_length": 3}, batch_size=8, judge_sequences=100,
                                     eval_every=7, log_every=1, steps=args.steps, until_solved=False,
                                     checkpoint_every=1, screen_sequences=100,
                                     model_options={"memory_slots": 16, "memory_width": 8, "controller_units": 32}),
              run_dir=straight, console=Console(quiet=True), progress=False)
        pairs = zip(jax.tree.leaves(nnx.state(load_run(run_dir).model, nnx.Param)),
                    jax.tree.leaves(nnx.state(load_run(straight).model, nnx.Param)))
        same = all(np.allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6) for a, b in pairs)
    table = Table(title=f"kill anywhere: {kills} SIGKILLs over {args.steps} steps, {elapsed:.0f} s")
    for column in ("kills", "resumes", "most steps lost by a kill", "checkpoint interval", "logs: every step once",
                   "final params = uninterrupted run"):
        table.add_column(column, justify="right")
    table.add_row(str(kills), str(kills), str(max(lost, default=0)), str(args.checkpoint_every),
                  "yes" if every_step_once else "NO", {None: "-", True: "yes", False: "NO"}[same])
    Console().print(table)
    held = every_step_once and max(lost, default=0) <= args.checkpoint_every and same is not False
    return 0 if held else 1


if __name__ == "__main__":
    sys.exit(main())
