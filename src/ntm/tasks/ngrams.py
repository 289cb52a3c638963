"""The dynamic N-grams task (Graves et al. 2014, section 4.4): predict bits of a fresh random 6-gram source.

Every sequence gets its own table of 2^(N-1) probabilities (paper: N = 6, 32 entries), each drawn from
Beta(1/2, 1/2): P(next bit = 1 | previous N-1 bits). With C = N-1 context bits and L predicted bits
(paper: L = 200), a sequence is C warm-up bits (fair coins) followed by L bits drawn from the table,
c[0 .. C+L-1], laid out as T = C + L - 1 real steps:
  step t       inputs: c[t] on channel 0;  targets: c[t+1]
  scored       steps C-1 .. C+L-2, exactly the L table-drawn bits, each with a full context
The warm-up bits are not scored: they carry no information about the table, and with them unscored
the Bayes-optimal cost is ~131.3 bits per 200-bit sequence (20,000 sequences), matching the paper's
~131-132.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ntm.tasks.base import Batch, Task, check_int

# Solved: within 2 bits of the Bayes-optimal cost per 200 predicted bits, measured on the same
# sequences. The paper reads ~131-132 for the Bayes-optimal estimator, ~133-134 for the NTM (about 2
# above) and ~137 for LSTM (about 5 above).
SOLVED_EXCESS_PER_BIT = 2 / 200


class NGramsTask(Task):
    """Dynamic 6-grams: 200 predicted bits per sequence, a new Beta(1/2, 1/2) table for each.

    Shorter sequences are no easier per bit (fewer counts per context), so the curriculum levels
    (50 ... 200 bits) only shorten the steps; the solve threshold, a cost per sequence at the
    configured length, is met at once on the shorter levels, so training moves on to the full length.
    """

    name = "ngrams"
    RANGES = (("min_length", "max_length", 1),)
    PAPER_DIFFICULTY = {"min_length": 200, "max_length": 200}
    generalisation_key = "length"  # the number of predicted bits
    DEFAULT_EVAL_VALUES = (100, 200, 400, 1000)
    DIFFICULTY_HELP = {"min_length": "fewest predicted bits per sequence in training",
                       "max_length": "most predicted bits per sequence in training"}
    # 64 memory slots hold the 32 contexts' counts at half the memory traffic of 128 and came closest
    # to optimal (5 bits above at 50,000 sequences; 128 slots: 9-24 at 24,000, 32 slots: 9.5 at 60,000).
    # An 8-wide trainable address per slot lets a head find a context's slot by content: 1 of 3 seeds
    # certified within 15 minutes (46,400 sequences), 0 of 3 without; 3 of 5 seeds in all, at 46,400-76,000
    # (docs/experiments/addresses.md).
    # The step cap is ~15 minutes on one core of this project's CPU (~250 sequences/s).
    TRAINING_DEFAULTS = {"ntm": {"lr": 3e-3, "batch_size": 8, "max_steps": 30_000,
                                 "model_options": {"memory_slots": 64, "address_size": 8}}}
    PAPER_LSTM_UNITS = 128
    PAPER_RESULTS = {"ntm": "~133-134 bits/seq (Bayes-optimal ~131-132)",
                     "lstm": "~137 bits/seq"}
    # One seed was 2.9 bits above optimal at 176,000 sequences (15 minutes) and still improving; 500,000
    # take ~45 minutes at ~190 sequences/s per seed (two seeds per core), within the hour's cap.
    REPRODUCTION_BUDGET = {"ntm": {"sequences": 500_000, "minutes": 60}}

    def __init__(self, *, order: int = 6, **difficulty: Any):
        self.order = check_int("order", order, 2)
        self.context_bits = self.order - 1
        self.input_size = 1
        self.output_size = 1
        super().__init__(difficulty)

    def _max_steps(self, d: dict[str, int]) -> int:
        return self.context_bits + d["max_length"] - 1

    def sample_with_tables(
        self, rng: np.random.Generator, batch_size: int, *, pad_to: int | None = None, **difficulty: Any
    ) -> tuple[Batch, np.ndarray]:
        """As `sample`, plus the tables [B, 2^(N-1)] the sequences were drawn from.

        Table index: the context bits read as a binary number, oldest bit most significant.
        """
        return self._sample(rng, batch_size, pad_to, difficulty)

    def _fill(self, rng: np.random.Generator, batch: Batch, d: dict[str, int]) -> np.ndarray:
        size, _ = batch.mask.shape
        context_bits, contexts = self.context_bits, 2**self.context_bits
        lengths = self._draw(rng, size, d, "min_length", "max_length")
        longest = d["max_length"]
        tables = rng.beta(0.5, 0.5, size=(size, contexts))
        uniforms = rng.random((size, longest))
        bits = np.zeros((size, context_bits + longest), np.float32)
        bits[:, :context_bits] = rng.integers(0, 2, size=(size, context_bits))

        # Markov in its context, so time is a loop; each step is vectorised over the batch.
        probabilities = tables.ravel()
        row_start = np.arange(size) * contexts
        context = bits[:, :context_bits].astype(np.int64) @ (1 << np.arange(context_bits - 1, -1, -1))
        for step in range(longest):
            bit = uniforms[:, step] < probabilities[row_start + context]
            bits[:, context_bits + step] = bit
            context = ((context << 1) | bit) & (contexts - 1)

        steps = context_bits + lengths - 1
        time = np.arange(context_bits + longest - 1)[None, :]
        real = time < steps[:, None]
        scored = real & (time >= context_bits - 1)
        span = time.shape[1]
        batch.inputs[:, :span, 0] = bits[:, :-1] * real
        batch.targets[:, :span, 0] = bits[:, 1:] * scored
        batch.mask[:, :span] = scored
        batch.lengths[:] = steps
        return tables

    def optimal_step_costs(self, batch: Batch) -> np.ndarray:
        """Cost in bits of each step [B, T] under the Bayes-optimal estimator (0 where not scored).

        It predicts P(1 | context) = (N1 + 1/2) / (N1 + N0 + 1), with N1 and N0 the ones and zeros
        seen after that context earlier in the same sequence (scored steps only), the posterior mean
        under the Beta(1/2, 1/2) prior.
        """
        observed = np.asarray(batch.inputs)[..., 0] > 0.5
        following = np.asarray(batch.targets)[..., 0] > 0.5
        scored = np.asarray(batch.mask) > 0
        context = np.zeros(observed.shape, np.int64)
        for age in range(self.context_bits):  # bit t-age of the history sits at place 2^age
            context[:, age:] |= observed[:, : observed.shape[1] - age].astype(np.int64) << age
        seen = (context[..., None] == np.arange(2**self.context_bits)) & scored[..., None]
        seen_ones = seen & following[..., None]
        before = np.cumsum(seen, axis=1, dtype=np.int32) - seen
        before_ones = np.cumsum(seen_ones, axis=1, dtype=np.int32) - seen_ones
        count = np.take_along_axis(before, context[..., None], axis=2)[..., 0]
        count_ones = np.take_along_axis(before_ones, context[..., None], axis=2)[..., 0]
        p_one = (count_ones + 0.5) / (count + 1.0)
        p_actual = np.where(following, p_one, 1.0 - p_one)
        return -(np.log2(p_actual) * scored)

    def optimal_costs(self, batch: Batch) -> np.ndarray:
        """Cost in bits of each sequence [B] under the Bayes-optimal estimator (`optimal_step_costs`)."""
        return self.optimal_step_costs(batch).sum(axis=1)

    def optimal_cost(self, batch: Batch) -> float:
        """Bayes-optimal cost in bits per sequence, averaged over the batch."""
        return float(self.optimal_costs(batch).mean())

    solve_metric = "excess_cost"
    solve_reason = ("no predictor beats the Bayes-optimal cost, and the paper's NTM comes within about 2 bits "
                    "of it per 200-bit sequence (LSTM about 5); judged against the optimal cost of the same "
                    "sequences, so the table's sampling noise cancels, and certified by a one-sided "
                    "Student-t upper bound on the mean excess over 1,000 fresh sequences (a sum of 200 small "
                    "terms per sequence, so the mean is close to normal)")

    def reference_costs(self, batch: Batch) -> np.ndarray:
        return self.optimal_costs(batch)

    @property
    def solve_threshold(self) -> float:
        """2 bits per 200 predicted bits, scaled to the configured mean length."""
        return self.threshold_at(self.difficulty)

    @staticmethod
    def threshold_at(difficulty: dict[str, Any]) -> float:
        """2 bits per 200 predicted bits at this difficulty's mean length."""
        return SOLVED_EXCESS_PER_BIT * (difficulty["min_length"] + difficulty["max_length"]) / 2

    def criterion_at(self, difficulty: dict[str, Any]):
        """Every row is judged per predicted bit: 2 bits above optimal per 200 at its own length (1 at 100,
        4 at 400), so training on a range of lengths judges 200 bits as the paper does."""
        return dataclasses.replace(self.criterion, threshold=self.threshold_at(self.resolve(**difficulty)))

    @property
    def solve_description(self) -> str:
        return ("cost within 2 bits per 200 predicted bits of the Bayes-optimal cost of the same sequences "
                "(the paper's NTM is ~2 above optimal, LSTM ~5)")

    @property
    def axis_label(self) -> str:
        return "predicted bits per sequence"
