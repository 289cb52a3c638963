"""The training state of K seeds, and one seed's progress: together exactly what a checkpoint stores.

  TrainState.params     nnx.State of the model's parameters, every leaf [K, ...]
  TrainState.opt_state  the optimizer state, every leaf [K, ...]; it holds each seed's learning rate,
                        the only place the learning rate lives (`learning_rate`, `with_learning_rate`),
                        and the scale of a one-time drop (`step_size`: the two together)
  Progress              one seed's loop state (counters, data stream, curriculum, replayed sequences) as JSON
A checkpoint of seed k holds `state.seed(k)` (params as a pure dict, enough to load the model, and the
optimizer state) and that seed's Progress. One seed is K = 1.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ntm.training.step import DropState


@dataclasses.dataclass
class Progress:
    """One seed's loop state: counters, data stream, curriculum and replay buffer, as JSON."""

    seed: int
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
    judged_sequences: int = 0  # held-out sequences judged so far (screens and attempts)
    solved_step: int | None = None
    solved_sequences: int | None = None
    solved_time: float | None = None
    diverged: bool = False
    outrun: bool = False  # stopped because another seed of a race was certified first
    replay: dict[str, Any] | None = None  # the failed held-out sequences kept to replay (`replay.ReplayBuffer`)

    @property
    def solved(self) -> bool:
        return self.solved_step is not None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Progress":
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in names})


class TrainState(NamedTuple):
    params: nnx.State  # [K, ...]
    opt_state: Any  # [K, ...]

    def seed(self, k: int) -> tuple[dict, Any]:
        """Seed k's params (a pure dict) and optimizer state, as a checkpoint stores them (sliced on the
        host: no compile per leaf shape)."""
        return nnx.to_pure_dict(unstack(self.params, k)), unstack(self.opt_state, k)

    def learning_rate(self, k: int) -> float:
        """Seed k's learning rate, as the optimizer holds it (`optax.inject_hyperparams`), written with the
        fewest digits that give back the same float32 (3e-3, not 0.003000000026077032)."""
        return shortest(np.float32(np.asarray(self.opt_state.hyperparams["learning_rate"])[k]))

    def step_size(self, k: int) -> float:
        """Seed k's learning rate times the scale of its one-time drop (`--lr-drop-below`/`-after`), if any:
        the rate its updates are taken at, as logged."""
        drops = [leaf for leaf in jax.tree.leaves(self.opt_state, is_leaf=lambda x: isinstance(x, DropState))
                 if isinstance(leaf, DropState)]
        scale = np.float32(np.asarray(drops[0].scale)[k]) if drops else np.float32(1)
        return shortest(np.float32(np.asarray(self.opt_state.hyperparams["learning_rate"])[k]) * scale)

    def with_learning_rate(self, k: int, lr: float) -> "TrainState":
        """This state with seed k's learning rate set to `lr`."""
        hyperparams = dict(self.opt_state.hyperparams)
        hyperparams["learning_rate"] = hyperparams["learning_rate"].at[k].set(lr)
        return self._replace(opt_state=self.opt_state._replace(hyperparams=hyperparams))

    def with_seed(self, k: int, params: nnx.State, opt_state: Any) -> "TrainState":
        """This state with seed k's params and optimizer state replaced (unstacked trees)."""

        def put(stacked, one):
            host = np.array(stacked)
            host[k] = np.asarray(one)
            return jnp.asarray(host)

        return self._replace(params=jax.tree.map(put, self.params, params),
                             opt_state=jax.tree.map(put, self.opt_state, opt_state))


def shortest(rate: np.float32) -> float:
    """A float32 written with the fewest digits that give it back (3e-3, not 0.003000000026077032)."""
    return float(np.format_float_positional(rate, unique=True))


def stack(trees: list[Any]) -> Any:
    """K trees of the same structure -> one tree with a leading axis K (stacked on the host)."""
    return jax.tree.map(lambda *leaves: jnp.asarray(np.stack([np.asarray(leaf) for leaf in leaves])), *trees)


def unstack(tree: Any, k: int) -> Any:
    """Seed k's slice of a stacked tree, as host arrays."""
    return jax.tree.map(lambda leaf: np.array(np.asarray(leaf)[k]), tree)
