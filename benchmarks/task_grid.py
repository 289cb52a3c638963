"""The experiments behind each task's default settings: train one configuration, or a grid in parallel.

    python benchmarks/task_grid.py run '{"task": "repeat_copy", "lr": 1e-3, "batch_size": 4}' --out DIR
    python benchmarks/task_grid.py grid GRID.json --out DIR --cores 0-15 --time-limit 540

A configuration is a dict of `TrainSettings` fields (model options and task options as their own
dicts) plus `name`. One run trains until its task is solved, or until the time limit, and writes
`DIR/NAME/metrics.jsonl` (window means of the training stats, every held-out check, the solve event)
and `DIR/NAME/params.npz` (the final parameters, for generalisation tables afterwards).

How "solved" is judged (stricter than the single 64-sequence batch of today's `ntm train`):
every `eval_every` steps a fixed screening batch (256 sequences at the hardest difficulty of the
current curriculum level) is scored; when it passes, 1,024 fresh sequences (4 chunks of 256, never
seen before) are scored, and only if they pass too is the run solved (or moves to the next level).
Pass means the task's own criterion (`task.solved`): bit errors per sequence under 0.01 (copy,
repeat copy, associative recall), under 1 % of the scored bits (priority sort), or cost within 2 bits
per 200 predicted bits of the Bayes-optimal cost of the same sequences (N-grams). Time to solve is
the training time (steps and batch sampling), with the held-out checks' time reported beside it.
Runs are pinned one per core by `grid` (XLA single-threaded), so many configurations share a machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SCREEN_SIZE = 256
CONFIRM_CHUNKS = 4
CONFIRM_SEED = 7_000_003
SCREEN_SEED = 5_000_011

RUN_KEYS = ("name", "eval_every", "time_limit", "max_sequences", "window", "weight_grad_clip", "lr_drops",
            "init_from", "init_step")


def scored_bits(batch) -> float:
    return float(np.asarray(batch.mask).sum(axis=1).mean())


def passes(task, stats: dict) -> bool:
    """The task's criterion, scaled to the difficulty judged (curriculum levels are shorter)."""
    if task.name == "ngrams":  # 2 bits per 200 predicted bits
        return stats["excess_cost"] < task.solve_threshold * stats["scored_bits"] / task.hardest()["max_length"]
    if task.name == "priority_sort":  # 1 % of the scored bits
        return stats["bit_errors"] < task.solve_threshold * stats["scored_bits"] / (
            task.difficulty["num_outputs"] * task.bits)
    return task.solved(stats)


def run(config: dict, out: Path) -> dict:
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from ntm import runtime, tasks
    from ntm.training import TrainSettings
    from ntm.training.loop import build_model
    from ntm.training.step import make_apply_fn, make_grad_fn, make_optimizer, seed_step

    runtime.tune_malloc()
    if "weight_grad_clip" in config:  # experiments on the N-gram NaN fix (ntm.addressing)
        from ntm.turing import addressing
        clip = config["weight_grad_clip"]
        addressing.PREVIOUS_WEIGHT_GRADIENT_CLIP = float("inf") if clip is None else float(clip)
    name = config.get("name", "run")
    eval_every = int(config.get("eval_every", 100))
    time_limit = float(config.get("time_limit", 540))
    max_sequences = int(config.get("max_sequences", 10**9))
    window = int(config.get("window", 50))
    # [[sequences, lr], ...]: set the learning rate to lr once this many sequences have been trained.
    lr_drops = sorted(config.get("lr_drops", []))
    settings = TrainSettings.from_dict({k: v for k, v in config.items() if k not in RUN_KEYS})
    task = tasks.get(settings.task, **settings.task_options)
    model, model_config = build_model(settings, task)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    tx = make_optimizer(settings)
    opt_state = tx.init(params)
    if "init_from" in config:  # start from a checkpoint of an `ntm train` run directory (params and optimizer)
        from ntm.rundir import Checkpoints

        saved = Checkpoints(Path(config["init_from"]), create=False)
        _, pure, opt_state, _ = saved.restore(nnx.to_pure_dict(params), opt_state, step=config.get("init_step"))
        saved.close()
        nnx.replace_by_pure_dict(params, pure)
        if "lr" in config:
            opt_state.hyperparams["learning_rate"] = jnp.asarray(config["lr"], jnp.float32)
    one_step = seed_step(make_grad_fn(graphdef, rest, settings.remat), make_apply_fn(tx))
    step_fn = jax.jit(lambda p, o, b, k: one_step(p, o, b, k, True), donate_argnums=(0, 1))

    @jax.jit
    def eval_fn(params, batch):
        logits = nnx.merge(graphdef, params, rest)(batch.inputs, lengths=batch.lengths)
        return task.sequence_stats(logits, batch)

    levels = task.curriculum_levels() if settings.curriculum == "levels" else [dict(task.difficulty)]

    def hardest(level: int) -> dict:
        return task.hardest(levels[level])

    def evaluate(batch) -> dict:
        out_stats = {k: np.asarray(v) for k, v in jax.device_get(eval_fn(params, batch)).items()}
        result = {k: float(v.mean()) for k, v in out_stats.items()}
        result["scored_bits"] = scored_bits(batch)
        reference = task.reference_costs(batch)
        if reference is not None:
            result["optimal"] = float(reference.mean())
            result["excess_cost"] = float((out_stats["cost"] - reference).mean())
        result["worst_bit_errors"] = float(out_stats["bit_errors"].max())
        if "end_marker_errors" in out_stats:
            result["end_marker_wrong_sequences"] = float((out_stats["end_marker_errors"] > 0).mean())
        return result

    def screen_batch(level: int):
        return task.sample(np.random.default_rng(SCREEN_SEED + level), SCREEN_SIZE, **hardest(level))

    run_dir = out / name
    run_dir.mkdir(parents=True, exist_ok=True)
    log = (run_dir / "metrics.jsonl").open("w")

    def write(row):
        log.write(json.dumps(row) + "\n")
        log.flush()

    write({"event": "config", **config, "parameters": int(sum(x.size for x in jax.tree.leaves(params))),
           "model_config": model_config.to_dict(), "levels": levels})
    rng = np.random.default_rng(settings.seed)
    key = jax.random.key(settings.seed)
    level, step, sequences, skipped, confirms = 0, 0, 0, 0, 0
    screen = screen_batch(level)
    train_time = eval_time = 0.0
    pending: list = []
    solved = False
    compile_start = time.perf_counter()
    # Compile outside the timed loop: one throwaway step on copies (the step donates its inputs), with
    # a batch of the shape of every training batch of this level.
    warm = task.sample(np.random.default_rng(0), settings.batch_size, **levels[level])
    # Twice: a restored checkpoint's arrays may differ in type from the step's own outputs.
    first = step_fn(*jax.tree.map(jnp.copy, (params, opt_state)), warm, key)
    jax.block_until_ready(step_fn(*first[:2], warm, key))
    write({"event": "compiled", "seconds": time.perf_counter() - compile_start})
    started = time.perf_counter()
    while not solved and train_time < time_limit and sequences < max_sequences:
        while lr_drops and sequences >= lr_drops[0][0]:
            rate = opt_state.hyperparams["learning_rate"]
            opt_state.hyperparams["learning_rate"] = jnp.asarray(lr_drops.pop(0)[1], rate.dtype)
            write({"event": "lr", "step": step, "sequences": sequences, "lr": float(opt_state.hyperparams["learning_rate"])})
        batch = task.sample(rng, settings.batch_size, **levels[level])
        params, opt_state, stats = step_fn(params, opt_state, batch, jax.random.fold_in(key, step))
        step += 1
        sequences += settings.batch_size
        pending.append(stats)
        if step % window == 0:
            fetched = jax.device_get(pending)
            pending = []
            finite = [bool(s["finite"]) for s in fetched]
            skipped += finite.count(False)
            good = [s for s in fetched if bool(s["finite"])]
            train_time = time.perf_counter() - started - eval_time
            row = {"step": step, "sequences": sequences, "level": level, "skipped": skipped, "train_time": train_time}
            for k in ("cost", "bit_errors", "grad_norm"):
                row[k] = float(np.mean([float(s[k]) for s in good])) if good else float("nan")
            write(row)
        if step % eval_every == 0:
            t1 = time.perf_counter()
            train_time = t1 - started - eval_time
            held = evaluate(screen)
            ok = passes(task, held)
            write({"event": "held_out", "step": step, "sequences": sequences, "level": level,
                   "train_time": train_time, **held, "passed": ok})
            if ok:
                confirms += 1
                rngc = np.random.default_rng(CONFIRM_SEED + 1000 * level + confirms)
                chunks = [evaluate(task.sample(rngc, SCREEN_SIZE, **hardest(level))) for _ in range(CONFIRM_CHUNKS)]
                confirm = {k: float(np.mean([c[k] for c in chunks])) for k in chunks[0]}
                confirm["worst_bit_errors"] = max(c["worst_bit_errors"] for c in chunks)
                ok = passes(task, confirm)
                write({"event": "confirm", "step": step, "sequences": sequences, "level": level,
                       "train_time": train_time, "n": SCREEN_SIZE * CONFIRM_CHUNKS, **confirm, "passed": ok})
                if ok:
                    if level + 1 < len(levels):
                        level += 1
                        screen = screen_batch(level)
                        write({"event": "level", "step": step, "sequences": sequences, "level": level,
                               "train_time": train_time, "difficulty": levels[level]})
                    else:
                        solved = True
            eval_time += time.perf_counter() - t1
    result = {"event": "end", "name": name, "solved": solved, "step": step, "sequences": sequences,
              "level": level, "train_time": train_time, "eval_time": eval_time,
              "total_time": time.perf_counter() - started, "skipped": skipped}
    write(result)
    log.close()
    leaves = jax.tree_util.tree_flatten_with_path(params.to_pure_dict())[0]
    flat = {"/".join(str(getattr(p, "key", getattr(p, "idx", p))) for p in path): np.asarray(leaf)
            for path, leaf in leaves}
    np.savez(run_dir / "params.npz", **flat)
    return result


def parse_cores(text: str) -> list[int]:
    cores = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            cores.extend(range(int(a), int(b) + 1))
        else:
            cores.append(int(part))
    return cores


def grid(configs: list[dict], out: Path, cores: list[int], time_limit: float) -> None:
    """Run the configurations, one process per core, as cores free up."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"}
    queue = list(configs)
    running: dict[int, tuple[subprocess.Popen, dict]] = {}
    out.mkdir(parents=True, exist_ok=True)
    while queue or running:
        for core in cores:
            if core not in running and queue:
                config = {"time_limit": time_limit, **queue.pop(0)}
                log = (out / f"{config['name']}.log").open("w")
                process = subprocess.Popen(
                    ["taskset", "-c", str(core), sys.executable, __file__, "run", json.dumps(config), "--out", str(out)],
                    stdout=log, stderr=subprocess.STDOUT, env=env)
                running[core] = (process, config)
        time.sleep(2)
        for core in list(running):
            process, config = running[core]
            if process.poll() is not None:
                print(f"{config['name']}: exit {process.returncode}", flush=True)
                del running[core]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("run")
    one.add_argument("config")
    one.add_argument("--out", type=Path, required=True)
    many = sub.add_parser("grid")
    many.add_argument("grid", type=Path)
    many.add_argument("--out", type=Path, required=True)
    many.add_argument("--cores", default="0")
    many.add_argument("--time-limit", type=float, default=540)
    args = parser.parse_args(argv)
    if args.command == "run":
        print(json.dumps(run(json.loads(args.config), args.out)))
    else:
        grid(json.loads(args.grid.read_text()), args.out, parse_cores(args.cores), args.time_limit)


if __name__ == "__main__":
    main()
