"""An example of a task of one's own: running parity of a bit stream, trained by the whole ntm lab.

    ntm train docs.examples.parity:Parity                    # from the repository's root
    ntm train docs.examples.parity:Parity --max-length 16    # its difficulty options are flags
    ntm eval runs/parity-...  ;  ntm show runs/parity-... --length 40

Each sequence is L random bits, one per step; after every bit the target is the parity (xor) of all
bits so far. Lengths 1-10 in training; tested at lengths up to 40, which only a model that keeps one
bit of state (rather than counting) gets right. docs/using.md ("Your own task") walks through it;
tests/test_tasks.py trains it until the held-out check says solved.

Layout of one sequence of L bits, T = L real steps:
  step t (0 .. L-1)   input: bit b_t on channel 0; target: b_0 xor ... xor b_t; scored (mask 1)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ntm.tasks.base import Batch, ExactOutputTask


class Parity(ExactOutputTask):
    """Running parity: lengths 1-10 in training; tested at 5, 10, 20 and 40."""

    name = "parity"
    RANGES = (("min_length", "max_length", 1),)  # one range: each sequence's length is drawn from it
    PAPER_DIFFICULTY = {"min_length": 1, "max_length": 10}  # the default training difficulty
    generalisation_key = "length"  # what evaluation varies: min_length = max_length = the tested value
    DEFAULT_EVAL_VALUES = (5, 10, 20, 40)
    # solved: fewer than 0.01 wrong bits per sequence (ExactOutputTask), judged on fresh sequences

    def __init__(self, **difficulty: Any):
        self.input_size = 1
        self.output_size = 1
        super().__init__(difficulty)

    def _max_steps(self, d: dict[str, int]) -> int:
        return d["max_length"]

    def _fill(self, rng: np.random.Generator, batch: Batch, d: dict[str, int]) -> None:
        size, longest = len(batch.lengths), d["max_length"]
        lengths = rng.integers(d["min_length"], longest + 1, size=size)
        real = np.arange(longest)[None, :] < lengths[:, None]
        bits = rng.integers(0, 2, size=(size, longest)) * real
        batch.inputs[:, :longest, 0] = bits
        batch.targets[:, :longest, 0] = np.cumsum(bits, axis=1) % 2 * real
        batch.mask[:, :longest] = real
        batch.lengths[:] = lengths
