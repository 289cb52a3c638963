"""The paper's repeat-copy generalisation tests on trained runs: 10 x 10 (the training hardest case),
20 x 10 (longer sequences) and 10 x 20 (more repeats), 1,000 fresh sequences each, with the copies'
bit errors and the end marker's errors reported apart (Graves et al. 2014, section 4.2).

    python benchmarks/repeat_copy_paper_tests.py RUN_DIR [RUN_DIR ...] [--sequences N] [--pictures DIR]

The repeat-count channel keeps the training normalisation, so 20 repeats is the value a model trained
on 1-10 would see. Writes one markdown row per run (stdout); with --pictures, one trace per test.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import numpy as np

from ntm.evaluate import load_run

TESTS = {"10 x 10": (10, 10), "20 x 10": (20, 10), "10 x 20": (10, 20), "15 x 10": (15, 10)}
CHUNK = 100


def paper_tests(run_dir: Path, sequences: int, pictures: Path | None) -> dict[str, tuple[float, float, float]]:
    run = load_run(run_dir)
    task, model = run.task, run.model
    bits = task.bits
    forward = jax.jit(lambda inputs, lengths: model(inputs, lengths=lengths))
    found = {}
    for name, (length, repeats) in TESTS.items():
        rng = np.random.default_rng(1000 + length * 100 + repeats)
        copy_errors, marker_errors, perfect = [], [], []
        for _ in range(sequences // CHUNK):
            batch = task.sample(rng, CHUNK, min_length=length, max_length=length, min_repeats=repeats,
                                max_repeats=repeats)
            logits = np.asarray(forward(batch.inputs, batch.lengths))
            wrong = ((logits > 0) != (batch.targets > 0.5)) * batch.mask[..., None]
            copy_errors.append(wrong[..., :bits].sum(axis=(1, 2)))
            marker_errors.append(wrong[..., bits].sum(axis=1))
            perfect.append(wrong.sum(axis=(1, 2)) == 0)
        found[name] = (float(np.mean(np.concatenate(copy_errors))), float(np.mean(np.concatenate(marker_errors))),
                       float(np.mean(np.concatenate(perfect))))
        if pictures is not None:
            from ntm import plots
            batch = task.sample(np.random.default_rng(7), 1, min_length=length, max_length=length,
                                min_repeats=repeats, max_repeats=repeats)
            logits, trace = model(batch.inputs, lengths=batch.lengths, trace=True)
            pictures.mkdir(parents=True, exist_ok=True)
            plots.plot_trace(batch, logits, trace, f"{run_dir.name}: {name}",
                             pictures / f"{run_dir.name}-{name.replace(' ', '')}.png")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--sequences", type=int, default=1000)
    parser.add_argument("--pictures", type=Path)
    args = parser.parse_args()
    print("| run | " + " | ".join(f"{name}: copy bits / end marker / all right" for name in TESTS) + " |")
    print("|---|" + "---|" * len(TESTS))
    for run_dir in args.runs:
        found = paper_tests(run_dir, args.sequences, args.pictures)
        print(f"| {run_dir} | " + " | ".join(f"{c:.3g} / {m:.3g} / {p:.1%}" for c, m, p in found.values()) + " |",
              flush=True)


if __name__ == "__main__":
    main()
