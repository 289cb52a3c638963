"""Curricula: which difficulty each training batch is drawn from, and when training at it is done.

Every curriculum works on the task's difficulty levels (`task.curriculum_levels()`, easy to the
configured one; a single level without a curriculum). All batches are padded to the longest level,
so the compiled step never recompiles. The held-out check judges at the hardest case of
`judged_level`; when it passes, `passed()` says whether training is done or moves on.

  none     one level, the configured difficulty.
  levels   the levels in order: train on one until the held-out check passes at its hardest case.
  ramp     the task's ramp levels (`task.ramp_levels()`; repeat copy: more repeats) in order, moving on as soon as the running mean of training bit errors per
           sequence at the current level falls under RAMP_THRESHOLD (1 bit: loose, so no level is
           polished to 0.01), with RAMP_BELOW of the batches drawn uniformly from the levels below
           (Collier & Beel's "look back" curriculum); the held-out check always judges the hardest level.
  exp3s    the Exp3.S bandit of Graves et al. 2017 ("Automated curriculum learning"), one arm per
           level, rewarded by gradient prediction gain (the squared gradient norm of the step, which
           costs nothing extra), rescaled to [-1, 1] by the 20th and 80th percentiles of recent
           rewards; the held-out check always judges the hardest level.
A curriculum's state is plain JSON (`state_dict`) so it goes into each checkpoint's progress.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ntm.training.records import StepStats

# Exp3.S constants from Graves et al. 2017, section 5: step size, exploration, weight sharing.
EXP3S_ETA = 1e-3
EXP3S_EPSILON = 0.05
EXP3S_ALPHA = 1e-3
# Rewards kept for the percentile rescaling.
EXP3S_HISTORY = 1000
# ramp: move on under this many training bit errors per sequence (running mean at the level), after at
# least RAMP_MIN_STEPS steps there; the running mean forgets with RAMP_DECAY per step at the level.
RAMP_THRESHOLD = 1.0
RAMP_MIN_STEPS = 100
RAMP_DECAY = 0.99
RAMP_BELOW = 0.2


class Curriculum:
    """One level, the configured difficulty; subclasses add levels and a policy."""

    name = "none"

    def __init__(self, task):
        self.levels: list[dict[str, int]] = self.make_levels(task)
        self.level = 0

    def make_levels(self, task) -> list[dict[str, int]]:
        return [dict(task.difficulty)]

    @property
    def judged_level(self) -> int:
        return self.level

    def choose(self, rng: np.random.Generator) -> int:
        """The level of the next training batch."""
        return self.level

    def observe(self, level: int, stats: StepStats) -> None:
        """What the step on a batch of `level` measured."""

    def passed(self) -> bool:
        """The held-out check passed at the judged level: True if training is done, else move on."""
        if self.level + 1 < len(self.levels):
            self.level += 1
            return False
        return True

    def state_dict(self) -> dict[str, Any]:
        return {"level": self.level}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.level = int(state["level"])


class LevelsCurriculum(Curriculum):
    name = "levels"

    def make_levels(self, task) -> list[dict[str, int]]:
        return task.curriculum_levels()


class Exp3SCurriculum(Curriculum):
    name = "exp3s"

    def __init__(self, task):
        super().__init__(task)
        self.level = len(self.levels) - 1  # judged at the hardest level throughout
        self.weights = [0.0] * len(self.levels)
        self.rewards: list[float] = []

    def make_levels(self, task) -> list[dict[str, int]]:
        return task.curriculum_levels()

    def policy(self) -> np.ndarray:
        weights = np.asarray(self.weights)
        soft = np.exp(weights - weights.max())
        soft /= soft.sum()
        return (1 - EXP3S_EPSILON) * soft + EXP3S_EPSILON / len(self.levels)

    def choose(self, rng: np.random.Generator) -> int:
        return int(rng.choice(len(self.levels), p=self.policy()))

    def observe(self, level: int, stats: StepStats) -> None:
        gain = float(stats.grad_norm) ** 2
        if not (stats.finite and math.isfinite(gain)) or len(self.levels) == 1:
            return
        self.rewards = (self.rewards + [gain])[-EXP3S_HISTORY:]
        low, high = np.percentile(self.rewards, [20, 80])
        if gain < low:
            reward = -1.0
        elif gain > high or high == low:
            reward = 1.0 if gain > high else 0.0
        else:
            reward = 2 * (gain - low) / (high - low) - 1
        pulled = self.policy()[level]
        scaled = np.asarray(self.weights) + EXP3S_ETA * np.where(np.arange(len(self.levels)) == level,
                                                                 reward / pulled, 0.0)
        # Exp3.S: mix a little of every other arm's weight into each, so the policy can track a
        # changing best arm (log-sum-exp kept stable by subtracting the max).
        top = scaled.max()
        exp = np.exp(scaled - top)
        others = (exp.sum() - exp) / max(len(self.levels) - 1, 1)
        self.weights = list(np.log((1 - EXP3S_ALPHA) * exp + EXP3S_ALPHA * others) + top)

    def passed(self) -> bool:
        return True

    def state_dict(self) -> dict[str, Any]:
        return {"level": self.level, "weights": [float(w) for w in self.weights], "rewards": self.rewards}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.level = int(state["level"])
        self.weights = [float(w) for w in state["weights"]]
        self.rewards = [float(r) for r in state["rewards"]]


class RampCurriculum(Curriculum):
    name = "ramp"

    def __init__(self, task):
        super().__init__(task)
        self.errors, self.steps = 0.0, 0  # running mean (not bias-corrected) and steps at the current level

    def make_levels(self, task) -> list[dict[str, int]]:
        return task.ramp_levels()

    @property
    def judged_level(self) -> int:
        return len(self.levels) - 1

    def choose(self, rng: np.random.Generator) -> int:
        if self.level > 0 and rng.random() < RAMP_BELOW:
            return int(rng.integers(0, self.level))
        return self.level

    def observe(self, level: int, stats: dict[str, float]) -> None:
        errors = float(stats["bit_errors"])
        if level != self.level or not (stats.get("finite", True) and math.isfinite(errors)):
            return
        self.steps += 1
        self.errors = RAMP_DECAY * self.errors + (1 - RAMP_DECAY) * errors
        mean = self.errors / (1 - RAMP_DECAY ** self.steps)
        if self.steps >= RAMP_MIN_STEPS and mean < RAMP_THRESHOLD and self.level + 1 < len(self.levels):
            self.level += 1
            self.errors, self.steps = 0.0, 0

    def passed(self) -> bool:
        return True

    def state_dict(self) -> dict[str, Any]:
        return {"level": self.level, "errors": self.errors, "steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.level = int(state["level"])
        self.errors, self.steps = float(state["errors"]), int(state["steps"])


CURRICULA = {cls.name: cls for cls in (Curriculum, LevelsCurriculum, RampCurriculum, Exp3SCurriculum)}


def build(name: str, task) -> Curriculum:
    return CURRICULA[name](task)
