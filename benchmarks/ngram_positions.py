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

import ntm
from ntm import tasks
from ntm.saving import read_index
from ntm.training.runs import load_run

BIN = 25


def load(name: str):
    """A run directory's model, or a pretrained model's by name."""
    return ntm.pretrained(name) if name in read_index() else load_run(name).model


def excess_per_bit(model, task, sequences: int, length: int, seed: int = 5) -> np.ndarray:
    """Mean excess cost [length] of each predicted bit over the Bayes-optimal estimator's."""
    batch = task.sample(np.random.default_rng(seed), sequences, min_length=length, max_length=length)
    logits = np.asarray(model(batch.inputs, lengths=batch.lengths))[..., 0]
    ones, scored = batch.targets[..., 0] > 0.5, batch.mask > 0
    model_cost = np.where(ones, np.logaddexp(0, -logits), np.logaddexp(0, logits)) / np.log(2) * scored
    # the optimal estimator's prediction at every step, as in NGramsTask.optimal_costs
    observed = batch.inputs[..., 0] > 0.5
    context = np.zeros(observed.shape, np.int64)
    for age in range(task.context_bits):
        context[:, age:] |= observed[:, : observed.shape[1] - age].astype(np.int64) << age
    seen = (context[..., None] == np.arange(2**task.context_bits)) & scored[..., None]
    seen_ones = seen & ones[..., None]
    count = np.take_along_axis(np.cumsum(seen, 1) - seen, context[..., None], 2)[..., 0]
    count_ones = np.take_along_axis(np.cumsum(seen_ones, 1) - seen_ones, context[..., None], 2)[..., 0]
    p_one = (count_ones + 0.5) / (count + 1.0)
    optimal_cost = -np.log2(np.where(ones, p_one, 1 - p_one)) * scored
    first = task.context_bits - 1  # the first scored step
    return (model_cost - optimal_cost)[:, first:first + length].mean(axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="run directories or pretrained model names")
    parser.add_argument("--length", type=int, default=400, help="predicted bits per sequence (a multiple of 25)")
    parser.add_argument("--sequences", type=int, default=500)
    args = parser.parse_args()
    task = tasks.get("ngrams")
    for name in args.models:
        excess = excess_per_bit(load(name), task, args.sequences, args.length)
        print(f"{name}: excess over optimal {excess[:200].sum():.2f} at 200 bits, {excess.sum():.2f} at "
              f"{args.length}")
        print("  per 25 bits: " + " ".join(f"{value:.2f}" for value in excess.reshape(-1, BIN).sum(axis=1)))


if __name__ == "__main__":
    main()
