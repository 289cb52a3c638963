"""Where in an N-gram sequence a model's excess over the Bayes-optimal cost lies.

Samples sequences of L predicted bits (default 400, twice the training length), and prints, per model,
the mean excess (model cost minus the Bayes-optimal cost of the same bit, in bits) summed over bins of
25 predicted bits, plus the totals over the first 200 and all L bits. A model whose counters lose
precision as counts grow shows a rising row; one that tracks the optimal estimator stays flat.

    python benchmarks/ngram_positions.py RUN_DIR_OR_PRETRAINED_NAME ... [--length 400] [--sequences 500]
"""

from __future__ import annotations

import argparse

import numpy as np
import optax

import stepkit  # benchmarks/: shared by the benchmarks

BIN = 25


def excess_per_bit(model, task, sequences: int, length: int, seed: int = 5) -> np.ndarray:
    """Mean excess cost [length] of each predicted bit over the Bayes-optimal estimator's."""
    batch = task.sample(np.random.default_rng(seed), sequences, min_length=length, max_length=length)
    logits = np.asarray(model(batch.inputs, lengths=batch.lengths))[..., 0]
    model_cost = np.asarray(optax.sigmoid_binary_cross_entropy(logits, batch.targets[..., 0])) / np.log(2) * batch.mask
    optimal_cost = task.optimal_step_costs(batch)
    first = task.context_bits - 1  # the first scored step
    return (model_cost - optimal_cost)[:, first:first + length].mean(axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="run directories or pretrained model names")
    parser.add_argument("--length", type=int, default=400, help="predicted bits per sequence (a multiple of 25)")
    parser.add_argument("--sequences", type=int, default=500)
    args = parser.parse_args()
    for name in args.models:
        model, task = stepkit.trained(name, "ngrams")
        excess = excess_per_bit(model, task, args.sequences, args.length)
        print(f"{name}: excess over optimal {excess[:200].sum():.2f} at 200 bits, {excess.sum():.2f} at "
              f"{args.length}")
        print("  per 25 bits: " + " ".join(f"{value:.2f}" for value in excess.reshape(-1, BIN).sum(axis=1)))


if __name__ == "__main__":
    main()
