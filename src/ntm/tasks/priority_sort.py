"""The priority-sort task (Graves et al. 2014, section 4.5): output the highest-priority vectors, sorted.

With n items of W bits and k outputs (paper: 20 items of 8 bits, 16 outputs), T = n + 1 + k real steps:
  steps 0 .. n-1        inputs: the vectors on channels 0 .. W-1, each one's priority, uniform in
                        [-1, 1], on channel W
  step  n               inputs: 1 on the delimiter channel W+1
  steps n+1 .. n+k      inputs: zero; targets: the k highest-priority vectors, highest first; scored
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ntm.tasks.base import Batch, Task, binary_vectors, check_int

# Solved: wrong bits under 1% of the scored bits (1.28 per sequence at 16 x 8). The paper's NTM
# curve for this task does not reach zero, so the exact-output threshold of the other tasks is
# out of reach; LSTM stays near 50 bits of cost. The threshold is set at the configured difficulty.
SOLVED_ERROR_FRACTION = 0.01


class PrioritySortTask(Task):
    """Priority sort: 20 eight-bit vectors with priorities; the 16 highest, sorted."""

    name = "priority_sort"
    RANGES = (("min_items", "max_items", 1),)
    PAPER_DIFFICULTY = {"min_items": 20, "max_items": 20, "num_outputs": 16}
    generalisation_key = "items"
    DEFAULT_EVAL_VALUES = (10, 20, 30, 40)
    DIFFICULTY_HELP = {"min_items": "fewest items to sort in training", "max_items": "most items to sort in training",
                       "num_outputs": "items written out, highest priority first (at most --min-items)"}
    # A learned initial memory lets content addressing tell slots apart, so a head can write where an
    # item's priority points: 28 bit errors at 185,600 sequences (Adam 1e-3, batch 8) against 35-40 for
    # every constant-memory machine tried (more heads, two layers, feedforward, batch 32, a curriculum);
    # at Adam 3e-3 and batch 32, 13.8 at 276,800 (10 minutes) and still falling. None reached 1 %.
    # The step cap is ~20 minutes on one core of this project's CPU (~1,000 sequences/s with the checks).
    TRAINING_DEFAULTS = {"ntm": {"lr": 3e-3, "batch_size": 32, "max_steps": 36_000,
                                 "model_options": {"memory_init": "learned"}}}
    PAPER_LSTM_UNITS = 128
    PAPER_RESULTS = {"ntm": "far below the LSTM",
                     "lstm": "~50 bits/seq at 1,000,000 sequences"}
    # The paper's figure is at 1,000,000 sequences; one seed alone runs ~1,000 per second with its checks,
    # two per core ~650 each, so ~26 minutes.
    REPRODUCTION_BUDGET = {"ntm": {"sequences": 1_000_000, "minutes": 45}}

    def __init__(self, *, bits: int = 8, **difficulty: Any):
        self.bits = check_int("bits", bits)
        self.input_size = self.bits + 2  # + priority + delimiter
        self.output_size = self.bits
        super().__init__(difficulty)

    def _check_extra(self, d: dict[str, int]) -> None:
        check_int("num_outputs", d["num_outputs"])
        if d["num_outputs"] > d["min_items"]:
            raise ValueError(
                f"num_outputs ({d['num_outputs']}) must not exceed min_items ({d['min_items']}): "
                "a sequence cannot output more items than it holds"
            )

    def _max_steps(self, d: dict[str, int]) -> int:
        return d["max_items"] + 1 + d["num_outputs"]

    def _fill(self, rng: np.random.Generator, batch: Batch, d: dict[str, int]) -> None:
        size, _ = batch.mask.shape
        width, outputs, most = self.bits, d["num_outputs"], d["max_items"]
        counts = self._draw(rng, size, d, "min_items", "max_items")
        vectors = binary_vectors(rng, (size, most, width))
        priorities = rng.uniform(-1.0, 1.0, size=(size, most)).astype(np.float32)
        real = np.arange(most)[None, :] < counts[:, None]
        rows = np.arange(size)
        batch.inputs[:, :most, :width] = vectors * real[..., None]
        batch.inputs[:, :most, width] = priorities * real
        batch.inputs[rows, counts, width + 1] = 1.0
        # Highest priority first; padded items sort last and never reach the top k.
        order = np.argsort(np.where(real, -priorities, np.inf), axis=1)[:, :outputs]
        answer = counts[:, None] + 1 + np.arange(outputs)[None, :]
        batch.targets[rows[:, None], answer] = vectors[rows[:, None], order]
        batch.mask[rows[:, None], answer] = 1.0
        batch.lengths[:] = counts + 1 + outputs

    @staticmethod
    def _outputs_for(items: int, base: dict[str, int]) -> int:
        """Outputs for `items` items, keeping base's ratio num_outputs / min_items (16 of 20 -> 4 of 5)."""
        ratio = base["num_outputs"] / base["min_items"]
        return min(max(round(items * ratio), 1), items)

    def _scaled(self, fraction: float) -> dict[str, int]:
        scaled = super()._scaled(fraction)
        scaled["num_outputs"] = self._outputs_for(scaled["min_items"], self.difficulty)
        return scaled

    def _fixed(self, value: int, base: dict[str, int]) -> dict[str, int]:
        """`value` items, with outputs in base's proportion."""
        return {"min_items": value, "max_items": value, "num_outputs": self._outputs_for(value, base)}

    solve_reason = ("the paper's NTM curve levels off above 0 bits, so solved is under 1% of the scored "
                    "bits wrong, certified by a one-sided Student-t upper bound on the mean bit errors over 1,000 "
                    "fresh sequences (errors spread over many sequences, not rare events)")

    @property
    def solve_threshold(self) -> float:
        return SOLVED_ERROR_FRACTION * self.difficulty["num_outputs"] * self.bits

    @property
    def solve_description(self) -> str:
        return (
            f"fewer than {self.solve_threshold:g} bit errors per sequence "
            f"({SOLVED_ERROR_FRACTION:.0%} of the scored bits; the paper's curve does not reach 0)"
        )
