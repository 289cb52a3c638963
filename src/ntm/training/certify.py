"""Certified verdicts: the statistics that let a run say "solved" with a stated confidence.

A task states what solved means as a `Criterion`:
  - `FailureRate` (copy, repeat copy, associative recall): at most `max_rate` of sequences (1 in 1,000)
    have any wrong bit. The test is a curtailed binomial test: draw up to `plan_size(alpha)` fresh
    sequences, refuse at the first failure beyond `allowed_failures`, grant when all are drawn. Its
    false-grant probability is exactly the one-sided Clopper-Pearson level: a model whose rate is
    `max_rate` or worse passes with probability at most alpha (zero failures in 2,995 sequences
    certify a rate under 1 in 1,000 at 95 %).
  - `MeanBelow` (N-grams' excess cost, priority sort's bit errors): the mean per sequence is below a
    threshold. These are means of many small contributions, not rare events, so the test is the
    one-sided Student-t upper bound on `sequences` fresh sequences (>= 1,000: the CLT holds well).

Training checks a model many times, and testing again and again until one check passes would make
a lucky pass likely. So a run spends its error budget over its certification attempts: attempt m
(counted from 1, only checks whose cheap screen passed start one) is tested at level
alpha * 1 / (m (m + 1)), which sums to alpha over every attempt a run can make. The probability that
a run ever stops on a model that does not meet its criterion is then at most alpha (5 %), however
long it trains. The screen uses its own sequences and can only refuse, so it costs no confidence.

Intervals printed beside figures are valid for their statistic: rates get the exact (Clopper-Pearson)
binomial interval, means a percentile bootstrap interval (never outside the data's range, so never
below 0 for counts; drawn fast for data that are mostly one value, see `bootstrap_means`); a mean of all-zero counts gets [0, upper rate bound x most errors a sequence
can have], since zero failures do not prove a zero rate.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
from scipy import stats as scipy_stats

# The error budget of a whole run: the chance that it ever certifies a model that fails its criterion.
RUN_ALPHA = 0.05
# Confidence of intervals printed beside figures (two-sided).
INTERVAL_CONFIDENCE = 0.95
# Bootstrap resamples per interval, and their fixed seed (intervals are reproducible).
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 20_141_020


def attempt_alpha(attempt: int, run_alpha: float = RUN_ALPHA) -> float:
    """The level of certification attempt `attempt` (1, 2, ...): run_alpha / (m (m + 1)), summing to run_alpha."""
    if attempt < 1:
        raise ValueError(f"certification attempts are counted from 1, got {attempt}")
    return run_alpha / (attempt * (attempt + 1))


def rate_upper_bound(failures: int, sequences: int, alpha: float) -> float:
    """One-sided Clopper-Pearson upper bound on a failure rate at confidence 1 - alpha."""
    if failures >= sequences:
        return 1.0
    return float(scipy_stats.beta.ppf(1 - alpha, failures + 1, sequences - failures))


def rate_interval(failures: int, sequences: int, confidence: float = INTERVAL_CONFIDENCE) -> tuple[float, float]:
    """Two-sided exact (Clopper-Pearson) interval of a failure rate; always within [0, 1]."""
    result = scipy_stats.binomtest(failures, sequences).proportion_ci(confidence, method="exact")
    return float(result.low), float(result.high)


def bootstrap_means(values: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Means of `resamples` resamples (with replacement) of `values`: the nonparametric bootstrap.

    Held-out figures are mostly one value (0 wrong bits) with a few others, so a resample is drawn as
    the number of its draws that land off the most common value (binomial) and those draws alone:
    the same distribution as resampling every index, at a small fraction of the cost.
    """
    n = len(values)
    uniques, counts = np.unique(values, return_counts=True)
    mode = uniques[np.argmax(counts)]
    others = values[values != mode]
    if len(others) > n // 4:
        return values[rng.integers(0, n, size=(resamples, n), dtype=np.int32)].mean(axis=1)
    hits = rng.binomial(n, len(others) / n, size=resamples)
    picks = others[rng.integers(0, max(len(others), 1), size=int(hits.sum()))] if len(others) else np.zeros(0)
    totals = np.zeros(resamples)
    np.add.at(totals, np.repeat(np.arange(resamples), hits), picks)
    return (mode * (n - hits) + totals) / n


def mean_interval(values: np.ndarray, most: float | None = None,
                  confidence: float = INTERVAL_CONFIDENCE) -> tuple[float, float]:
    """Interval of the mean of per-sequence values: a percentile bootstrap, inside the data's range.

    When every value is the same there is nothing to resample; for non-negative counts that are all
    zero, `most` (the largest value one sequence can have) turns the exact upper bound on the share
    of nonzero sequences into an upper bound on the mean.
    """
    values = np.asarray(values, np.float64)
    if len(values) == 0:
        raise ValueError("an interval needs at least one value")
    if np.all(values == values[0]):
        if values[0] == 0 and most is not None:
            return 0.0, rate_interval(0, len(values), confidence)[1] * float(most)
        return float(values[0]), float(values[0])
    means = bootstrap_means(values, BOOTSTRAP_RESAMPLES, np.random.default_rng(BOOTSTRAP_SEED))
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(max(low, values.min())), float(min(high, values.max()))


@dataclasses.dataclass(frozen=True)
class FailureRate:
    """Solved when at most `max_rate` of sequences have any wrong bit (`metric` > 0)."""

    max_rate: float = 1e-3
    allowed_failures: int = 0
    metric: str = "bit_errors"

    kind = "rate"

    def __post_init__(self) -> None:
        if not 0 < self.max_rate < 1:
            raise ValueError(f"max_rate must be in (0, 1), got {self.max_rate!r}")
        if self.allowed_failures < 0:
            raise ValueError(f"allowed_failures must be >= 0, got {self.allowed_failures!r}")

    def plan_size(self, alpha: float) -> int:
        """The fewest sequences whose test, granting with at most `allowed_failures` failures, passes a
        model at rate `max_rate` with probability <= alpha (the Clopper-Pearson bound is then < max_rate)."""
        c = self.allowed_failures
        if c == 0:  # closed form: (1 - rate)^n <= alpha
            return math.ceil(math.log(alpha) / math.log1p(-self.max_rate))
        low, high = c + 1, c + 1
        while scipy_stats.binom.cdf(c, high, self.max_rate) > alpha:
            high *= 2
        while low < high:  # the binomial cdf at c falls as n grows
            middle = (low + high) // 2
            if scipy_stats.binom.cdf(c, middle, self.max_rate) > alpha:
                low = middle + 1
            else:
                high = middle
        return low

    def failures(self, values: np.ndarray) -> int:
        return int(np.count_nonzero(np.asarray(values) > 0))

    def screen(self, values: np.ndarray) -> bool:
        """The cheap screen: no more failures than the test allows, in its own small sample."""
        return self.failures(values) <= self.allowed_failures

    def refused_early(self, values: np.ndarray, alpha: float) -> bool:
        return self.failures(values) > self.allowed_failures

    def decided(self, values: np.ndarray, alpha: float) -> bool:
        return self.refused_early(values, alpha) or len(values) >= self.plan_size(alpha)

    def granted(self, values: np.ndarray, alpha: float) -> bool:
        return len(values) >= self.plan_size(alpha) and not self.refused_early(values, alpha)

    def bound(self, values: np.ndarray, alpha: float) -> float:
        """The certified upper bound on the failure rate at confidence 1 - alpha."""
        return rate_upper_bound(self.failures(values), len(values), alpha)

    @property
    def limit(self) -> float:
        return self.max_rate

    def description(self) -> str:
        return f"fewer than 1 in {1 / self.max_rate:,.0f} sequences with any wrong bit"


@dataclasses.dataclass(frozen=True)
class MeanBelow:
    """Solved when the mean of `metric` per sequence is below `threshold`."""

    threshold: float
    metric: str
    sequences: int = 1000

    kind = "mean"

    def plan_size(self, alpha: float) -> int:
        return self.sequences

    def screen(self, values: np.ndarray) -> bool:
        return float(np.mean(values)) < self.threshold

    def refused_early(self, values: np.ndarray, alpha: float) -> bool:
        return False

    def decided(self, values: np.ndarray, alpha: float) -> bool:
        return len(values) >= self.sequences

    def granted(self, values: np.ndarray, alpha: float) -> bool:
        return len(values) >= self.sequences and self.bound(values, alpha) < self.threshold

    def bound(self, values: np.ndarray, alpha: float) -> float:
        """One-sided Student-t upper bound on the mean at confidence 1 - alpha."""
        values = np.asarray(values, np.float64)
        if len(values) < 2:
            return math.inf
        spread = float(values.std(ddof=1)) / math.sqrt(len(values))
        return float(values.mean()) + float(scipy_stats.t.ppf(1 - alpha, len(values) - 1)) * spread

    @property
    def limit(self) -> float:
        return self.threshold

    def description(self) -> str:
        return f"mean {self.metric.replace('_', ' ')} per sequence under {self.threshold:g}"


Criterion = FailureRate | MeanBelow


@dataclasses.dataclass
class Finding:
    """What one certification found at one difficulty."""

    difficulty: dict[str, int]
    sequences: int
    failures: int | None  # sequences with any wrong bit (rate criteria)
    bound: float  # the certified upper bound (rate, or mean) at the attempt's confidence
    granted: bool

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
