"""Benchmark of how a training step's time and memory grow with memory slots N, length T and batch B.

For each setting it compiles the training step of the default NTM (LSTM controller of 100 units,
slot width 20, one read and one write head) on copy-shaped data, times it, and reads the
compiled program's temporary memory from XLA's memory analysis, with and without
rematerialisation (`jax.checkpoint`, `--remat`). Prints tables and draws
benchmarks/results/scaling.png.

    python benchmarks/bench_scaling.py [--quick]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import numpy as np
from flax import nnx
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ntm import tasks
from ntm.runtime import tune_malloc, tune_xla
from ntm.training.loop import build_model
from ntm.training.settings import TrainSettings
from ntm.training.step import compile_step, make_apply_fn, make_grad_fn, make_optimizer

RESULTS = Path(__file__).parent / "results"


def measure(slots: int, length: int, batch_size: int, remat: bool, seconds: float = 1.0) -> dict:
    """Step time (ms) and XLA temporary memory (MB) at copy sequences of `length` items."""
    task = tasks.get("copy", min_length=length, max_length=length)
    settings = TrainSettings(batch_size=batch_size, model_options={"memory_slots": slots}, remat=remat)
    model, _ = build_model(settings, task)
    graphdef, params = nnx.split(model, nnx.Param)
    params = jax.tree.map(lambda leaf: leaf[None], params)  # one seed: K = 1
    tx = make_optimizer(settings)
    opt_state = jax.vmap(tx.init)(params)
    one = task.sample(np.random.default_rng(0), batch_size)
    batch = type(one)(*(np.asarray(field)[None] for field in one))
    keys, active = jax.random.key(0)[None], np.ones(1, bool)
    step = compile_step(make_grad_fn(graphdef, remat), make_apply_fn(tx), seeds=1, batch_size=batch_size)
    compiled = step.lower(params, opt_state, batch, keys, active).compile()
    memory = compiled.memory_analysis()
    temp_mb = (memory.temp_size_in_bytes if memory is not None else float("nan")) / 2**20
    params, opt_state, stats = compiled(params, opt_state, batch, keys, active)
    jax.block_until_ready(stats)
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds or runs < 2:
        params, opt_state, stats = compiled(params, opt_state, batch, keys, active)
        jax.block_until_ready(stats)
        runs += 1
    per_step = (time.perf_counter() - started) / runs
    return {"N": slots, "T": batch.inputs.shape[-2], "B": batch_size, "remat": remat,
            "ms": per_step * 1e3, "seq_per_s": batch_size / per_step, "temp_mb": temp_mb}


def print_table(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    print(f"{'N':>5} {'T':>5} {'B':>4} {'remat':>5} {'ms/step':>9} {'seq/s':>8} {'temp MB':>8}")
    for r in rows:
        print(f"{r['N']:>5} {r['T']:>5} {r['B']:>4} {str(r['remat']):>5} {r['ms']:>9.2f} {r['seq_per_s']:>8.0f} {r['temp_mb']:>8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer points (about a minute)")
    args = parser.parse_args()
    tune_malloc()
    tune_xla()
    slots = [32, 128, 512, 1024] if args.quick else [32, 128, 512, 1024, 2048, 4096]
    lengths = [5, 25, 100] if args.quick else [5, 12, 25, 50, 125, 250, 500]  # T = 2 * length + 1: 11 ... 1001
    batches = [1, 8, 32] if args.quick else [1, 4, 8, 16, 32, 64]
    by_slots = [measure(n, 20, 8, False) for n in slots]
    print_table("memory slots N (copy length 20, T = 41, batch 8)", by_slots)
    by_length = [measure(128, length, 8, remat) for length in lengths for remat in (False, True)]
    print_table("sequence length T (N = 128, batch 8), without and with remat", by_length)
    by_batch = [measure(128, 20, b, False) for b in batches]
    print_table("batch size B (N = 128, T = 41)", by_batch)

    RESULTS.mkdir(exist_ok=True)
    figure = Figure(figsize=(14, 4.2), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 3)
    axes[0].loglog([r["N"] for r in by_slots], [r["ms"] for r in by_slots], "o-")
    axes[0].set(xlabel="memory slots N", ylabel="ms per training step", title="copy, T = 41, batch 8")
    for remat, style in ((False, "o-"), (True, "s--")):
        rows = [r for r in by_length if r["remat"] == remat]
        axes[1].loglog([r["T"] for r in rows], [r["ms"] for r in rows], style, label=f"time, remat={remat}")
    twin = axes[1].twinx()
    for remat, style in ((False, "o:"), (True, "s:")):
        rows = [r for r in by_length if r["remat"] == remat]
        twin.loglog([r["T"] for r in rows], [r["temp_mb"] for r in rows], style, color="tab:red", alpha=0.7,
                    label=f"memory, remat={remat}")
    axes[1].set(xlabel="sequence length T (steps)", ylabel="ms per training step", title="N = 128, batch 8")
    twin.set_ylabel("XLA temporary memory (MB)", color="tab:red")
    axes[1].legend(loc="upper left", fontsize=8)
    twin.legend(loc="lower right", fontsize=8)
    axes[2].loglog([r["B"] for r in by_batch], [r["ms"] for r in by_batch], "o-", label="ms per step")
    axes[2].loglog([r["B"] for r in by_batch], [r["seq_per_s"] for r in by_batch], "s--", label="sequences per second")
    axes[2].set(xlabel="batch size B", title="N = 128, T = 41")
    axes[2].legend(fontsize=8)
    figure.suptitle(f"NTM training step scaling on {jax.default_backend()} (LSTM controller 100, M = 20)")
    figure.savefig(RESULTS / "scaling.png", dpi=110)
    print(f"\nfigure: {RESULTS / 'scaling.png'}")


if __name__ == "__main__":
    main()
