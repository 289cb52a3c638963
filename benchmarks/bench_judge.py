"""How fast the judge certifies: held-out sequences per second, forward only, and what a certification costs.

For each exact-output task at its defaults: sequences per second of the judge's compiled forward pass at
several chunk sizes (one compile each), then the time of one granted certification attempt (the first
attempt's plan at every judged difficulty, with a model stand-in that never fails, so nothing stops it
early) against the time the task's training takes for the same number of sequences. With `--run DIR`
(a run directory of `ntm train`), the share of its wall time spent in held-out checks, read off its log.

    python benchmarks/bench_judge.py [--tasks copy,associative_recall] [--run runs/copy-...]
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
from flax import nnx

from ntm import tasks
from ntm.rundir import read_metrics
from ntm.training import TrainSettings, certify
from ntm.training.judge import Judge
from ntm.training.loop import build_model

CHUNKS = (100, 250, 500)
SECONDS = 3.0


def judge_speed(task, graphdef, params, rest, difficulty, chunk: int) -> float:
    judge = Judge(task, graphdef, rest, chunk=chunk, pad_to=task.max_steps(**difficulty))
    rng = np.random.default_rng(0)
    judge.chunk_stats(params, next(judge.chunks(rng, difficulty, 1)))  # compile
    started, sequences = time.perf_counter(), 0
    while time.perf_counter() - started < SECONDS:
        judge.chunk_stats(params, next(judge.chunks(rng, difficulty, 1)))
        sequences += chunk
    return sequences / (time.perf_counter() - started)


def check_share(run_dir: str) -> None:
    rows = read_metrics(run_dir)
    checks = [row for row in rows if row.get("event") == "held_out"]
    train = [row for row in rows if "event" not in row and "time" in row]
    if not checks or not train:
        print(f"{run_dir}: no held-out checks logged")
        return
    # a check's time: from the last logged training row before it to the check's own time stamp
    spent = 0.0
    for check in checks:
        before = [row["time"] for row in train if row["step"] <= check["step"]]
        spent += check["time"] - (before[-1] if before else 0.0)
    total = max(checks[-1]["time"], train[-1]["time"])
    print(f"{run_dir}: {len(checks)} checks, {sum(c['held_out_sequences'] for c in checks):,} held-out sequences, "
          f"{spent:.1f} s of {total:.1f} s ({spent / total:.0%}) in checks")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="copy,associative_recall")
    parser.add_argument("--run", action="append", default=[], help="a run directory whose check share to report")
    args = parser.parse_args()
    print(f"{'task':<20} {'chunk':>5} {'judge seq/s':>12}")
    for name in args.tasks.split(","):
        settings = TrainSettings.for_task(name)
        task = tasks.get(name, **settings.task_options)
        model, _ = build_model(settings, task)
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        stacked = jax.tree.map(lambda leaf: leaf[None], params)
        speeds = {chunk: judge_speed(task, graphdef, stacked, rest, task.hardest(), chunk) for chunk in CHUNKS}
        for chunk, speed in speeds.items():
            print(f"{name:<20} {chunk:>5} {speed:>12,.0f}")
        plan = certify.FailureRate().plan_size(certify.attempt_alpha(1))
        judged = len(task.judged_difficulties())
        seconds = plan * judged / speeds[settings.screen_sequences]
        print(f"{name}: one granted first attempt = {plan:,} x {judged} difficulties = {plan * judged:,} sequences, "
              f"{seconds:.2f} s at chunk {settings.screen_sequences}")
    for run_dir in args.run:
        check_share(run_dir)


if __name__ == "__main__":
    main()
