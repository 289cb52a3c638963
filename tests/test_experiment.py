"""Tests of `ntm.experiment`'s one rule for the best seed of a run."""

import math
from pathlib import Path

from ntm.experiment import best_seed
from ntm.training import SeedResult


def seed(number, solved_sequences=None, cost=1.0):
    solved = solved_sequences is not None
    return SeedResult(number, Path(f"seed-{number}"), 100, 800, 10.0, solved, 50 if solved else None,
                      solved_sequences, 5.0 if solved else None, False, False, 0, {"cost": cost} if cost is not None else {},
                      None)


def test_the_best_seed_solved_with_the_fewest_sequences_then_the_lowest_cost():
    assert best_seed([seed(0, cost=0.1), seed(1, 800), seed(2, 400, cost=9.0)]).seed == 2
    assert best_seed([seed(0, cost=2.0), seed(1, cost=0.5), seed(2, cost=1.0)]).seed == 1
    # a seed without a finite cost (diverged, or never logged) never wins over one with a cost
    assert best_seed([seed(0, cost=math.nan), seed(1, cost=None), seed(2, cost=3.0)]).seed == 2
