"""The repeat-copy task (Graves et al. 2014, section 4.2): replay a sequence a given number of times.

Layout of one sequence of L vectors (B bits each) repeated R times, T = L + 1 + L*R + 1 real steps:
  steps 0 .. L-1          inputs: the vectors on channels 0 .. B-1
  step  L                 inputs: 1 on the delimiter channel B, the normalised R on channel B+1
  steps L+1 .. L+L*R      inputs: zero; targets: the vectors R times; scored
  step  L+1+L*R           targets: 1 on the end-marker output channel B; scored
The end-marker channel is scored (as 0) through the whole answer phase, so emitting it early is an
error. R is normalised to mean 0 and variance 1 over the configured (training) repeat range, and that
normalisation stays fixed for curriculum levels and generalisation tests, so a count means the same
input value whatever range a batch is drawn from.

With `one_pair_per_batch=1` every sequence of a batch has the same length and repeat count (drawn once
per batch), as in Collier & Beel's and the public PyTorch NTM's training; 0 (the default) draws them per
sequence.

The end marker is judged on its own as well (`end_marker_errors`): the paper's NTM replayed longer
sequences and more repeats correctly but emitted the marker after the 11th repeat, a failure that
is a single bit per sequence among hundreds and would vanish in the bit-error count.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ntm.tasks.base import Batch, ExactOutputTask, binary_vectors, check_int
from ntm.tasks.copy import replay_targets


class RepeatCopyTask(ExactOutputTask):
    """Repeat copy: 8-bit vectors, lengths 1-10 and 1-10 repeats in training."""

    name = "repeat_copy"
    RANGES = (("min_length", "max_length", 1), ("min_repeats", "max_repeats", 1))
    PAPER_DIFFICULTY = {"min_length": 1, "max_length": 10, "min_repeats": 1, "max_repeats": 10,
                        "one_pair_per_batch": 0}
    generalisation_key = "length"
    DEFAULT_EVAL_VALUES = (5, 10, 15, 20, 30)
    DIFFICULTY_HELP = {"min_length": "fewest vectors to repeat in training", "max_length": "most vectors to repeat in training",
                       "min_repeats": "fewest repeats in training", "max_repeats": "most repeats in training"}

    # Measured on this project's CPU (docs/experiments/tasks.md): with more than one sequence per batch
    # (Adam 3e-4 to 3e-3, batch 2 to 8, RMSProp batch 4) the NTM never left the plateau of ~300 bit
    # errors in 45,000-115,000 sequences; one sequence per step at Adam 1e-3 did, solving in ~26,000
    # sequences. On this CPU batch 1 costs about as much per sequence as batch 8 at these lengths. The
    # step cap is ~15 minutes on one core (191 sequences/s with the fused memory step, checks included).
    # Trimming each batch to its longest sequence is the same training (padding is inert: equal to 7
    # digits at 12,000 sequences) at 1.74x the sequences/s, as T = L + 2 + L x R runs from 4 to 112 steps.
    TRAINING_DEFAULTS = {
        "ntm": {"lr": 1e-3, "batch_size": 1, "max_steps": 150_000, "eval_every": 500,
                "checkpoint_every": 5000, "trim_padding": True},
    }
    PAPER_LSTM_UNITS = 512
    PAPER_RESULTS = {"ntm": "~0 by ~100,000 sequences; end marker wrong beyond 11 repeats",
                     "lstm": "~0 by ~300,000 sequences"}
    PICTURE_VALUES = (10, 20)
    # Twice the paper's ~100,000: ten seeds on the defaults left the plateau by 10,000-45,000 sequences and
    # then took 15,000-55,000 more to be certified (4 of 10 by 100,000). Four seeds side by side (two per
    # core, batch 1) trained only ~30-35 sequences/s each in the reproduction, as every step is padded to
    # the longest of the four seeds' sequences (a seed alone runs ~190/s), so 45 minutes ended them near
    # 65,000; 90 minutes reach ~150,000.
    REPRODUCTION_BUDGET = {"ntm": {"sequences": 200_000, "minutes": 90}}

    def __init__(self, *, bits: int = 8, **difficulty: Any):
        self.bits = check_int("bits", bits)
        self.input_size = self.bits + 2  # + delimiter + repeat count
        self.output_size = self.bits + 1  # + end marker
        super().__init__(difficulty)

    @property
    def repeat_mean(self) -> float:
        """Mean of the configured repeat count, uniform on [min_repeats, max_repeats]."""
        return (self.difficulty["min_repeats"] + self.difficulty["max_repeats"]) / 2

    @property
    def repeat_std(self) -> float:
        """Standard deviation of that count (1 when the count is fixed, to avoid dividing by 0)."""
        span = self.difficulty["max_repeats"] - self.difficulty["min_repeats"] + 1
        return math.sqrt((span * span - 1) / 12) or 1.0

    def normalise_repeats(self, repeats: np.ndarray) -> np.ndarray:
        """The repeat-count channel's value for these counts."""
        return (np.asarray(repeats, np.float32) - self.repeat_mean) / self.repeat_std

    def _check_extra(self, difficulty: dict[str, int]) -> None:
        if difficulty["one_pair_per_batch"] not in (0, 1):
            raise ValueError(f"one_pair_per_batch must be 0 or 1, got {difficulty['one_pair_per_batch']}")

    def _max_steps(self, d: dict[str, int]) -> int:
        return d["max_length"] * (d["max_repeats"] + 1) + 2

    def _fill(self, rng: np.random.Generator, batch: Batch, d: dict[str, int]) -> None:
        size, steps = batch.mask.shape
        drawn = 1 if d["one_pair_per_batch"] else size
        lengths = np.broadcast_to(self._draw(rng, drawn, d, "min_length", "max_length"), (size,))
        repeats = np.broadcast_to(self._draw(rng, drawn, d, "min_repeats", "max_repeats"), (size,))
        longest = d["max_length"]
        real = np.arange(longest)[None, :] < lengths[:, None]
        sequences = binary_vectors(rng, (size, longest, self.bits)) * real[..., None]
        rows = np.arange(size)
        batch.inputs[:, :longest, : self.bits] = sequences
        batch.inputs[rows, lengths, self.bits] = 1.0
        batch.inputs[rows, lengths, self.bits + 1] = self.normalise_repeats(repeats)
        targets, answer = replay_targets(sequences, lengths, repeats, lengths + 1, steps)
        end = lengths + 1 + lengths * repeats
        batch.targets[:, :, : self.bits] = targets
        batch.targets[rows, end, self.bits] = 1.0
        batch.mask[:] = answer
        batch.mask[rows, end] = 1.0
        batch.lengths[:] = end + 1

    def sequence_stats(self, logits, batch) -> dict[str, Any]:
        """Cost and bit errors of every output, plus `end_marker_errors`: wrong outputs of the end-marker
        channel alone (it must stay off through the answer and come on at its end), per sequence."""
        stats = super().sequence_stats(logits, batch)
        marker = self.bits
        wrong = (logits[..., marker] > 0) != (batch.targets[..., marker] > 0.5)
        stats["end_marker_errors"] = (wrong * batch.mask).sum(axis=1)
        return stats

    # The ramp curriculum's most repeats after its first level, as fractions of the configured most
    # (1-10: 2, 4, 7, 10).
    RAMP_REPEAT_FRACTIONS = (0.2, 0.4, 0.7, 1.0)

    def ramp_levels(self) -> list[dict[str, int]]:
        """First a copy (one repeat) of up to twice the configured length, which a controller cannot
        answer from its own state, so it learns to write and read the memory as in the copy task;
        then the configured lengths with the most repeats growing to the configured most."""
        d = self.difficulty
        levels = [self.resolve(max_length=2 * d["max_length"], min_repeats=1, max_repeats=1)]
        for fraction in self.RAMP_REPEAT_FRACTIONS:
            most = max(math.ceil(d["max_repeats"] * fraction), d["min_repeats"])
            level = self.resolve(max_repeats=most)
            if level != levels[-1]:
                levels.append(level)
        return levels

    def _fixed(self, value: int, base: dict[str, int]) -> dict[str, int]:
        """Length fixed at `value`, repeats fixed at the most that `base` (default: training) draws."""
        repeats = base["max_repeats"]
        return {"min_length": value, "max_length": value, "min_repeats": repeats, "max_repeats": repeats}
