"""The training state: one typed object for K seeds, whose per-seed slice is exactly what a checkpoint stores.

  TrainState.params     nnx.State of the model's parameters, every leaf [K, ...]
  TrainState.opt_state  the optimizer state, every leaf [K, ...] (learning rate included)
  TrainState.progress   K `Progress` records: the loop's own state per seed (JSON)
A checkpoint of seed k holds `state.seed(k)`: params as a pure dict (enough to load the model),
the optimizer state, and `progress[k]`. One seed is K = 1.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


@dataclasses.dataclass
class Progress:
    """One seed's loop state: counters, learning rate, data stream and curriculum, as JSON."""

    seed: int
    lr: float
    data_rng: dict[str, Any]  # numpy bit-generator state of the training data stream
    curriculum: dict[str, Any]  # the curriculum's state_dict
    step: int = 0
    sequences: int = 0
    wall_time: float = 0.0  # seconds of training (compile and checks included), summed over resumes
    skipped: int = 0  # steps whose update was discarded as non-finite
    skipped_in_a_row: int = 0
    restores: int = 0  # times the non-finite policy restored the last checkpoint
    passes_in_a_row: int = 0  # held-out checks certified in a row at the judged level
    certify_attempts: int = 0  # checks whose screen passed: each spends part of the run's error budget
    solved_step: int | None = None
    solved_sequences: int | None = None
    solved_time: float | None = None
    diverged: bool = False

    @property
    def solved(self) -> bool:
        return self.solved_step is not None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Progress":
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in names})


class SeedCheckpoint(NamedTuple):
    """What one seed's checkpoint stores."""

    params: dict  # pure dict of the model's nnx.Param state
    opt_state: Any
    progress: dict[str, Any]


class TrainState(NamedTuple):
    params: nnx.State  # [K, ...]
    opt_state: Any  # [K, ...]
    progress: list[Progress]  # K

    @property
    def seeds(self) -> int:
        return len(self.progress)

    def seed(self, k: int) -> SeedCheckpoint:
        """Seed k's slice, as a checkpoint stores it (sliced on the host: no compile per leaf shape)."""
        params, opt_state = unstack(self.params, k), unstack(self.opt_state, k)
        return SeedCheckpoint(nnx.to_pure_dict(params), opt_state, self.progress[k].to_dict())

    def with_seed(self, k: int, params: nnx.State, opt_state: Any) -> "TrainState":
        """This state with seed k's params and optimizer state replaced (unstacked trees)."""

        def put(stacked, one):
            host = np.array(stacked)
            host[k] = np.asarray(one)
            return jnp.asarray(host)

        return self._replace(params=jax.tree.map(put, self.params, params),
                             opt_state=jax.tree.map(put, self.opt_state, opt_state))


def stack(trees: list[Any]) -> Any:
    """K trees of the same structure -> one tree with a leading axis K (stacked on the host)."""
    return jax.tree.map(lambda *leaves: jnp.asarray(np.stack([np.asarray(leaf) for leaf in leaves])), *trees)


def unstack(tree: Any, k: int) -> Any:
    """Seed k's slice of a stacked tree, as host arrays."""
    return jax.tree.map(lambda leaf: np.array(np.asarray(leaf)[k]), tree)
