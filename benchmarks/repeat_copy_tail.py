"""Where a repeat-copy model's failing sequences are: by length and repeat count, end marker or copies.

Draws fresh sequences at every (length L, repeats R) of the training range of a repeat-copy run (or the
pretrained model) and prints per pair the share of sequences with any wrong bit, split into those wrong
only on the end-marker channel and those with a wrong copy bit, then the totals by R and by L.

    python benchmarks/repeat_copy_tail.py RUN_DIR_OR_PRETRAINED_NAME [--sequences 200] [--seed 123]
"""

from __future__ import annotations

import argparse

import numpy as np

import stepkit  # benchmarks/: shared by the benchmarks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a repeat_copy run directory or a pretrained model's name")
    parser.add_argument("--sequences", type=int, default=200, help="per (length, repeats) pair")
    parser.add_argument("--seed", type=int, default=123)
    args = parser.parse_args()
    model, task = stepkit.trained(args.model, "repeat_copy")
    rng, bits = np.random.default_rng(args.seed), task.bits
    d = task.difficulty
    lengths, repeats = range(d["min_length"], d["max_length"] + 1), range(d["min_repeats"], d["max_repeats"] + 1)
    marker_only = np.zeros((len(lengths), len(repeats)))
    copy_wrong = np.zeros_like(marker_only)
    for i, length in enumerate(lengths):
        for j, count in enumerate(repeats):
            batch = task.sample(rng, args.sequences, min_length=length, max_length=length, min_repeats=count,
                                max_repeats=count)
            logits = np.asarray(model(batch.inputs, lengths=batch.lengths))
            wrong = ((logits > 0) != (batch.targets > 0.5)) & (batch.mask[..., None] > 0)
            copies, marker = wrong[..., :bits].any(axis=(1, 2)), wrong[..., bits].any(axis=1)
            copy_wrong[i, j] = copies.mean()
            marker_only[i, j] = (marker & ~copies).mean()
    print(f"share of sequences failing, {args.sequences} per pair: end marker only / a copy bit wrong")
    print("L\\R " + " ".join(f"{count:>11d}" for count in repeats))
    for i, length in enumerate(lengths):
        print(f"{length:3d} " + " ".join(f"{m:5.3f}/{c:5.3f}" for m, c in zip(marker_only[i], copy_wrong[i])))
    print("by R: " + " ".join(f"{count}:{m:.3f}/{c:.3f}" for count, m, c in
                               zip(repeats, marker_only.mean(0), copy_wrong.mean(0))))
    print("by L: " + " ".join(f"{length}:{m:.3f}/{c:.3f}" for length, m, c in
                               zip(lengths, marker_only.mean(1), copy_wrong.mean(1))))
    print(f"all: end marker only {marker_only.mean():.4f}, a copy bit wrong {copy_wrong.mean():.4f}")


if __name__ == "__main__":
    main()
