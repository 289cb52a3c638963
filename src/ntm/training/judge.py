"""Judging a model on fresh held-out sequences: the stop rule's certificate and the final table's rows.

`Judge.certify` is the one test behind "solved". For K seeds at once it
  1. screens (optional): one chunk at the hardest difficulty, its own sequences; a seed that fails
     it is refused at once (cheap) and spends no confidence;
  2. certifies each seed that passed at every judged difficulty with the task's criterion
     (`certify.FailureRate` or `certify.MeanBelow`) at the level of its certification attempt,
     drawing fresh chunks only while some seed is undecided (a rate test stops at its first failure
     beyond those allowed), up to the criterion's plan size;
and returns one `Verdict` per seed: a table row per difficulty (means, 95 % intervals valid for
each statistic, failures, the certified bound, whether it was granted) and `solved` when every row
is. The stop rule, the final table and `ntm eval` all read these rows, so they cannot disagree.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import numpy as np
from flax import nnx

from ntm import tasks
from ntm.training import certify
from ntm.training.replay import PER_CHECK, failed_rows

# Held-out sequences come from their own seeds, far from any training seed's stream.
HELD_OUT_SEED = 1_000_003


def judged_row(task, criterion, stats: dict[str, np.ndarray], alpha: float | None, most: float,
               difficulty: dict[str, int] | None = None) -> dict[str, Any]:
    """One table row from per-sequence statistics at one difficulty: means, their 95 % intervals, and
    the certificate at level `alpha` (None: a screen or a plain measurement, never certified)."""
    values = stats[criterion.metric]
    row: dict[str, Any] = {"sequences": int(len(values))}
    if difficulty is not None and f"max_{task.generalisation_key}" in difficulty:
        row[task.generalisation_key] = int(difficulty[f"max_{task.generalisation_key}"])
    for name, series in stats.items():
        row[name] = float(np.mean(series))
        counts = name.endswith("errors")
        row[f"{name}_interval"] = list(certify.mean_interval(series, most if counts else None))
    if criterion.kind == "rate":
        failures = criterion.failures(values)
        row["failures"] = failures
        row["failure_rate"] = failures / len(values)
        row["failure_rate_interval"] = list(certify.rate_interval(failures, len(values)))
    row["alpha"] = alpha
    row["bound"] = criterion.bound(values, alpha) if alpha is not None else None
    row["certified"] = bool(alpha is not None and criterion.granted(values, alpha))
    return row


@dataclasses.dataclass
class Verdict:
    """One seed's held-out check: a row per judged difficulty and whether the certificate was granted."""

    rows: list[dict[str, Any]]  # judged_row()s, hardest difficulty first (only the screen's if it failed)
    solved: bool  # certified at every judged difficulty
    screened: bool  # the screen passed (or there was none), so this check was a certification attempt
    attempt: int | None  # which certification attempt of the run this was
    alpha: float | None  # the attempt's level: the chance it certifies a model that fails the criterion
    deferred: bool = False  # passed the screen, but judging had used up its share of the run: no attempt
    failed: tasks.Batch | None = None  # up to PER_CHECK of the sequences it failed (a rate criterion), to replay

    @property
    def sequences(self) -> int:
        return sum(row["sequences"] for row in self.rows)

    @property
    def means(self) -> dict[str, float]:
        """Means at the hardest difficulty (what the learning curves plot)."""
        return {name: value for name, value in self.rows[0].items()
                if isinstance(value, float) and name not in ("alpha", "bound")}

    def row(self) -> dict[str, Any]:
        """The held_out event of metrics.jsonl: the hardest difficulty's means, and every row."""
        return {"held_out_sequences": self.sequences, **self.means, "solved": self.solved, "screened": self.screened,
                "attempt": self.attempt, "alpha": self.alpha, "deferred": self.deferred, "rows": self.rows}


class Judge:
    """Held-out evaluation of K seeds at once, in chunks of `chunk` sequences padded to `pad_to` steps."""

    def __init__(self, task, graphdef, rest=None, *, chunk: int, pad_to: int, judge_sequences: int = 1000,
                 max_failure_rate: float | None = None):
        """`rest`: the model's state besides its parameters, held fixed (see `step.make_grad_fn`).
        `judge_sequences`: the sample of a mean criterion; `max_failure_rate` overrides a rate criterion's."""
        self.task, self.chunk, self.pad_to = task, chunk, pad_to
        self.judge_sequences, self.max_failure_rate = judge_sequences, max_failure_rate
        if graphdef is None:  # a stand-in whose chunk_stats is replaced (tests)
            return

        def seed_stats(params, batch, key):
            logits = nnx.merge(graphdef, params, *([rest] if rest is not None else []))(batch.inputs, lengths=batch.lengths, rngs=key)
            return task.sequence_stats(logits, batch)

        self.stats_fn = jax.jit(jax.vmap(seed_stats, in_axes=(0, None, None)))
        self.key = jax.random.key(HELD_OUT_SEED)

    def criterion_at(self, difficulty: dict[str, int]):
        """The task's criterion for a row at `difficulty`, with this judge's sample (a mean criterion) or
        largest failure rate (a rate criterion)."""
        criterion = self.task.criterion_at(difficulty)
        if criterion.kind == "mean":
            return dataclasses.replace(criterion, sequences=self.judge_sequences)
        if self.max_failure_rate is not None:
            return dataclasses.replace(criterion, max_rate=self.max_failure_rate)
        return criterion

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

    def most_errors(self, batch) -> float:
        """The most wrong bits one sequence of this batch could have (bounds a mean of all-zero counts)."""
        return float(np.max(np.asarray(batch.mask).reshape(len(batch.lengths), -1).sum(axis=1))
                     * (1 if np.asarray(batch.mask).ndim == 3 else self.task.output_size))

    def measure(self, params, difficulty: dict[str, int], sequences: int, rng: np.random.Generator) -> list[dict]:
        """Every seed's per-sequence statistics over `sequences` fresh sequences (rounded up to chunks)."""
        parts = [self.chunk_stats(params, batch)
                 for batch in self.chunks(rng, difficulty, max(1, math.ceil(sequences / self.chunk)))]
        seeds = next(iter(parts[0].values())).shape[0]
        return [{name: np.concatenate([part[name][k] for part in parts]) for name in parts[0]} for k in range(seeds)]

    def certify(self, params, difficulties: list[dict[str, int]], attempts: list[int | None],
                rng: np.random.Generator, *, screen: bool = True, min_sequences: int = 0,
                run_alpha: float = certify.RUN_ALPHA, alphas: list[float] | None = None,
                may_certify: list[bool] | None = None) -> list[Verdict | None]:
        """The certificate of every seed k with `attempts[k]` (its attempt number if the screen passes;
        None: not judged). `alphas` fixes each seed's level instead (a one-off test such as `ntm eval`).
        `min_sequences`: draw at least this many at every difficulty even after a refusal (for a table's
        figures); 0 stops a refused seed at once. A seed with `may_certify[k]` False gets the screen only
        (its verdict is `deferred` if it passes: judging has used up its share for now)."""
        K, criterion = len(attempts), self.criterion_at(difficulties[0])
        metric = criterion.metric
        judged = [attempt is not None for attempt in attempts]
        level = [None if not judged[k] else (alphas[k] if alphas is not None
                                             else certify.attempt_alpha(attempts[k], run_alpha)) for k in range(K)]
        rows: list[list[dict]] = [[] for _ in range(K)]
        failed: list[list[tasks.Batch]] = [[] for _ in range(K)]

        def keep_failed(k: int, batch, values: np.ndarray) -> None:
            """Seed k's failing sequences of this chunk, up to PER_CHECK per check."""
            room = PER_CHECK - sum(len(part.lengths) for part in failed[k])
            if criterion.kind == "rate" and room > 0 and batch is not None:  # None: a stand-in's chunks
                part = failed_rows(batch, values > 0, room)  # rows past len(values) are never failing
                if part is not None:
                    failed[k].append(part)

        going = list(judged)
        if screen:
            batch = next(self.chunks(rng, difficulties[0], 1))
            stats = self.chunk_stats(params, batch)
            for k in np.flatnonzero(judged):
                keep_failed(k, batch, stats[metric][k])
                if not criterion.screen(stats[metric][k]):
                    going[k] = False
                    rows[k].append(judged_row(self.task, criterion, {n: v[k] for n, v in stats.items()}, None,
                                              self.most_errors(batch), difficulties[0]))
        deferred = [False] * K
        if may_certify is not None:
            for k in np.flatnonzero(going):
                if not may_certify[k]:
                    going[k], deferred[k] = False, True
                    rows[k].append(judged_row(self.task, criterion, {n: v[k] for n, v in stats.items()}, None,
                                              self.most_errors(batch), difficulties[0]))
        screened = list(going)
        solved = list(going)
        for difficulty in difficulties:
            criterion = self.criterion_at(difficulty)
            collected: list[list[dict]] = [[] for _ in range(K)]
            counts, most = [0] * K, 0.0

            def wanted(k: int) -> int:
                """How many more sequences seed k needs at this difficulty."""
                values = np.concatenate([part[metric] for part in collected[k]]) if collected[k] else np.zeros(0)
                target = max(min_sequences, 0 if criterion.refused_early(values, level[k]) else
                             criterion.plan_size(level[k]))
                return max(target - counts[k], 0)

            while any(going[k] and wanted(k) > 0 for k in range(K)):
                needs = [wanted(k) if going[k] else 0 for k in range(K)]
                batch = next(self.chunks(rng, difficulty, 1))
                most = max(most, self.most_errors(batch))
                stats = self.chunk_stats(params, batch)
                for k in np.flatnonzero(needs):
                    collected[k].append({n: v[k][:needs[k]] for n, v in stats.items()})
                    keep_failed(k, batch, stats[metric][k][:needs[k]])
                    counts[k] += min(needs[k], self.chunk)
            for k in np.flatnonzero(going):
                merged = {n: np.concatenate([part[n] for part in collected[k]]) for n in collected[k][0]}
                row = judged_row(self.task, criterion, merged, level[k], most, difficulty)
                rows[k].append(row)
                solved[k] = solved[k] and row["certified"]
                going[k] = solved[k] or min_sequences > 0
        return [Verdict(rows[k], bool(solved[k]), screened[k], attempts[k] if screened[k] and alphas is None else None,
                        level[k] if screened[k] else None, deferred[k],
                        tasks.Batch(*(np.concatenate(f) for f in zip(*failed[k]))) if failed[k] else None)
                if judged[k] else None for k in range(K)]
