"""What a copy model's rare failing sequences look like: by length, and as shifted copies.

Draws fresh sequences at the training distribution of a copy run (or pretrained copy model) and, for
each sequence with any wrong bit, prints its length, its wrong output steps and how many of its output
vectors equal the input vector k places away (k = -3 .. +3): a sequence replayed from the wrong start
shows up as all of its vectors matching at k = +1 (or -1) and none at 0.

    python benchmarks/copy_tail.py RUN_DIR_OR_PRETRAINED_NAME [--sequences 20000] [--seed 123]
"""

from __future__ import annotations

import argparse

import numpy as np

import stepkit  # benchmarks/: shared by the benchmarks

SHIFTS = range(-3, 4)
CHUNK = 500


def shift_matches(output: np.ndarray, given: np.ndarray) -> dict[int, tuple[int, int]]:
    """For each shift k: (output vectors equal to the input vector k places on, vectors compared)."""
    length = len(given)
    return {k: (sum(np.array_equal(output[j], given[j + k]) for j in range(length) if 0 <= j + k < length),
                sum(1 for j in range(length) if 0 <= j + k < length)) for k in SHIFTS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a copy run directory or a pretrained model's name")
    parser.add_argument("--sequences", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=123)
    args = parser.parse_args()
    model, task = stepkit.trained(args.model, "copy")
    rng, failing, shifted = np.random.default_rng(args.seed), 0, 0
    width = task.output_size
    for _ in range(-(-args.sequences // CHUNK)):
        batch = task.sample(rng, CHUNK, pad_to=task.max_steps())
        logits = np.asarray(model(batch.inputs, lengths=batch.lengths))
        wrong = ((logits > 0) != (batch.targets > 0.5)) & (batch.mask[..., None] > 0)
        for i in np.nonzero(wrong.any(axis=(1, 2)))[0]:
            length = (int(batch.lengths[i]) - 1) // 2  # L inputs, a delimiter, L outputs
            given = batch.inputs[i, :length, :width] > 0.5
            output = logits[i, length + 1:2 * length + 1, :width] > 0
            matches = shift_matches(output, given)
            failing += 1
            whole_shift = [k for k, (hit, total) in matches.items() if k and total and hit >= total - 1]
            shifted += bool(whole_shift) and matches[0][0] == 0
            places = " ".join(f"{k:+d}:{hit}/{total}" for k, (hit, total) in matches.items())
            print(f"length {length:2d}: {int(wrong[i].sum()):3d} wrong bits on {int(wrong[i].any(-1).sum())} steps;"
                  f" equal to the input k places on: {places}")
    print(f"{failing} of {args.sequences} sequences with a wrong bit; {shifted} of them a whole copy from the "
          f"wrong start")


if __name__ == "__main__":
    main()
