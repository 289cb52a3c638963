"""Judging a model on fresh held-out sequences: enough of them that one lucky batch cannot pass.

`Judge.measure` runs K seeds' parameters over N fresh sequences in fixed-size chunks (one compile)
and returns every sequence's statistics (`task.sequence_stats`, plus `excess_cost` where the task
knows the best achievable cost of each sequence). `summarize` turns them into means with a 95 %
interval and the task's verdict. `Judge.check` is the stop rule: a first chunk (the screen) is
judged alone, and only seeds that pass it are judged on all `judge_sequences`; a run is solved only
on the full count.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import numpy as np
from flax import nnx

# Held-out sequences come from their own seeds, far from any training seed's stream.
HELD_OUT_SEED = 1_000_003
# Two-sided 95 % normal quantile.
Z95 = 1.959964


@dataclasses.dataclass
class Verdict:
    """Means per sequence over `sequences` fresh sequences, their 95 % intervals, and the task's verdict."""

    sequences: int
    means: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    solved: bool

    def row(self) -> dict[str, Any]:
        return {"held_out_sequences": self.sequences, **self.means, "solved": self.solved,
                **{f"{name}_interval": list(bounds) for name, bounds in self.intervals.items()}}


def interval95(values: np.ndarray) -> tuple[float, float]:
    """95 % interval of the mean of per-sequence values (normal approximation, n >= 100 here)."""
    values = np.asarray(values, np.float64)
    mean = float(values.mean())
    half = Z95 * float(values.std(ddof=1)) / math.sqrt(len(values)) if len(values) > 1 else math.inf
    return mean - half, mean + half


def summarize(task, stats: dict[str, np.ndarray]) -> Verdict:
    """The verdict on one seed's per-sequence statistics."""
    means = {name: float(np.mean(values)) for name, values in stats.items()}
    intervals = {name: interval95(values) for name, values in stats.items()}
    return Verdict(len(next(iter(stats.values()))), means, intervals, bool(task.solved(means)))


class Judge:
    """Held-out evaluation of K seeds at once, in chunks of `chunk` sequences padded to `pad_to` steps."""

    def __init__(self, task, graphdef, rest=None, *, chunk: int, pad_to: int):
        """`rest`: the model's state besides its parameters, held fixed (see `step.make_grad_fn`)."""
        self.task, self.chunk, self.pad_to = task, chunk, pad_to

        def seed_stats(params, batch, key):
            logits = nnx.merge(graphdef, params, *([rest] if rest is not None else []))(batch.inputs, lengths=batch.lengths, rngs=key)
            return task.sequence_stats(logits, batch)

        self.stats_fn = jax.jit(jax.vmap(seed_stats, in_axes=(0, None, None)))
        self.key = jax.random.key(HELD_OUT_SEED)

    def chunks(self, rng: np.random.Generator, difficulty: dict[str, int], count: int):
        """Fresh held-out batches of `self.chunk` sequences, `count` of them."""
        for _ in range(count):
            yield self.task.sample(rng, self.chunk, pad_to=self.pad_to, **difficulty)

    def chunk_stats(self, params, batch) -> dict[str, np.ndarray]:
        """Per-sequence statistics of every seed on one batch: {name: [K, chunk]}."""
        stats = {name: np.asarray(value, np.float64) for name, value in
                 jax.device_get(self.stats_fn(params, batch, self.key)).items()}
        reference = self.task.reference_costs(batch)
        if reference is not None:
            stats["excess_cost"] = stats["cost"] - np.asarray(reference, np.float64)[None, :]
        return stats

    def measure(self, params, difficulty: dict[str, int], sequences: int, rng: np.random.Generator) -> list[dict]:
        """Every seed's per-sequence statistics over `sequences` fresh sequences (rounded up to chunks)."""
        parts = [self.chunk_stats(params, batch)
                 for batch in self.chunks(rng, difficulty, max(1, math.ceil(sequences / self.chunk)))]
        seeds = next(iter(parts[0].values())).shape[0]
        return [{name: np.concatenate([part[name][k] for part in parts]) for name in parts[0]} for k in range(seeds)]

    def check(self, params, difficulties: list[dict[str, int]], judge_sequences: int, check_id: int,
              judged: list[bool]) -> list[Verdict | None]:
        """The stop rule for the seeds with `judged[k]`: the screen (the first chunk at the first, hardest
        difficulty), then, for seeds that pass it, `judge_sequences` fresh sequences at every difficulty.
        A seed passes only if it is solved at each; its verdict's means are over all sequences judged.
        Seeds not judged get None."""
        rng = np.random.default_rng([HELD_OUT_SEED, check_id])
        chunks = max(1, math.ceil(judge_sequences / self.chunk))
        first = self.chunk_stats(params, next(self.chunks(rng, difficulties[0], 1)))
        passed = [judged[k] and summarize(self.task, {n: v[k] for n, v in first.items()}).solved
                  for k in range(len(judged))]
        screened = list(passed)
        parts = [first]
        if any(passed):
            for index, difficulty in enumerate(difficulties):
                here = ([first] if index == 0 else []) + [
                    self.chunk_stats(params, batch) for batch in self.chunks(rng, difficulty, chunks - (index == 0))]
                parts += here[1:] if index == 0 else here
                for k in range(len(judged)):
                    stats = {n: np.concatenate([p[n][k] for p in here]) for n in first}
                    passed[k] = passed[k] and summarize(self.task, stats).solved
        verdicts: list[Verdict | None] = []
        for k, is_judged in enumerate(judged):
            if not is_judged:
                verdicts.append(None)
                continue
            used = parts if screened[k] else parts[:1]
            verdict = summarize(self.task, {n: np.concatenate([p[n][k] for p in used]) for n in first})
            verdicts.append(dataclasses.replace(verdict, solved=passed[k]))
        return verdicts
