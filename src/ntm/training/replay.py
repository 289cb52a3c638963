"""Replaying failed held-out sequences: one seed's buffer of the sequences its recent checks got wrong.

A model in the tail of an exact-output task fails about one sequence in a few thousand (copy: a read head
that shifts one slot early on a rare input, `docs/experiments/certified-judge.md`); training meets such a
sequence that rarely, so the gradient that removes the failure arrives rarely too. With
`--replay-share P` each training sequence is, with probability P, one of the last `capacity` held-out
sequences that failed a check (uniformly), instead of a fresh draw. Failures are kept only once the seed
has passed a screen (`Seed.in_tail`): on associative recall, replaying the plateau's failures from the
start held seeds there (docs/experiments/certified-judge.md, run 7). The certificate stays valid: every
check draws its own fresh sequences, which the model has not trained on.

The buffer is part of the seed's progress (a checkpoint stores it), so a resumed run replays exactly
what the uninterrupted run would have.

  sequences  a tasks.Batch whose leading axis is the buffer ([n, T, ...], n <= capacity), oldest first
"""

from __future__ import annotations

import base64
import io
import zlib
from typing import Any

import numpy as np

from ntm import tasks

# Failed held-out sequences kept per seed, and taken from one check at most (a check early in training
# fails most of its sequences: the buffer should hold several checks' worth of the tail, not one chunk).
CAPACITY = 64
PER_CHECK = 8


class ReplayBuffer:
    """The last `capacity` failed held-out sequences of one seed (see the module docstring)."""

    def __init__(self, capacity: int = CAPACITY):
        self.capacity = capacity
        self.sequences: tasks.Batch | None = None

    def __len__(self) -> int:
        return 0 if self.sequences is None else len(self.sequences.lengths)

    def add(self, failed: tasks.Batch | None) -> None:
        """Append `failed` ([m, T, ...]), dropping the oldest beyond the capacity."""
        if failed is None or len(failed.lengths) == 0:
            return
        if self.sequences is None:
            joined = failed
        else:
            if self.sequences.inputs.shape[1:] != failed.inputs.shape[1:]:
                raise ValueError(f"failed sequences of shape {failed.inputs.shape[1:]} do not fit the buffer's "
                                 f"{self.sequences.inputs.shape[1:]}")
            joined = tasks.Batch(*(np.concatenate([old, new]) for old, new in zip(self.sequences, failed)))
        self.sequences = tasks.Batch(*(np.array(field[-self.capacity:]) for field in joined))

    def mix_into(self, batch: tasks.Batch, share: float, rng: np.random.Generator) -> tasks.Batch:
        """`batch` with each row, with probability `share`, replaced by a buffered sequence drawn uniformly.
        Draws from `rng` only while the buffer holds something, so an empty buffer leaves the stream as is."""
        if not len(self) or share <= 0:
            return batch
        rows = np.flatnonzero(rng.random(len(batch.lengths)) < share)
        if len(rows) == 0:
            return batch
        picks = rng.integers(len(self), size=len(rows))
        mixed = tasks.Batch(*(np.array(field) for field in batch))
        for field, source in zip(mixed, self.sequences):
            field[rows] = source[picks]
        return mixed

    # ------------------------------------------------------------------ as a checkpoint stores it

    def state_dict(self) -> dict[str, Any] | None:
        """JSON: the buffer's arrays as a compressed .npz in base64 (held-out bits compress ~20x)."""
        if self.sequences is None:
            return None
        packed = io.BytesIO()
        np.savez(packed, **self.sequences._asdict())
        return {"capacity": self.capacity, "npz": base64.b64encode(zlib.compress(packed.getvalue(), 9)).decode()}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        self.sequences = None
        if state is None:
            return
        self.capacity = int(state["capacity"])
        with np.load(io.BytesIO(zlib.decompress(base64.b64decode(state["npz"])))) as arrays:
            self.sequences = tasks.Batch(**{name: np.array(arrays[name]) for name in tasks.Batch._fields})


def failed_rows(batch: tasks.Batch, failing: np.ndarray, most: int = PER_CHECK) -> tasks.Batch | None:
    """The first `most` sequences of `batch` where `failing` ([B] bool) is set, or None if there are none."""
    rows = np.flatnonzero(failing)[:most]
    if len(rows) == 0:
        return None
    return tasks.Batch(*(np.array(np.asarray(field)[rows]) for field in batch))
