"""Tests of the certified judge: the bounds are exact, the certificate is granted at the stated
confidence and no more often, a run's many checks stay within its error budget, intervals respect
their data, and the judge draws only while undecided, up to its plan."""

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import stats as scipy_stats

from ntm import tasks
from ntm.training import certify
from ntm.training.judge import Judge


class BernoulliModel:
    """A model stand-in that fails each held-out sequence with probability `rate`, by 8 wrong bits."""

    def __init__(self, rate: float, seed: int):
        self.rate, self.rng = rate, np.random.default_rng(seed)

    def __call__(self, chunk: int) -> dict[str, np.ndarray]:
        errors = np.where(self.rng.random(chunk) < self.rate, 8.0, 0.0)
        return {"cost": errors * 2.0, "bit_errors": errors}


def stand_in_judge(model, task, chunk=500, seeds=1) -> Judge:
    """A Judge whose chunks come from `model` (no network, no sampling): certify's logic alone."""
    judge = Judge(task, None, chunk=chunk, pad_to=task.max_steps())
    judge.chunks = lambda rng, difficulty, count: iter([None] * count)
    judge.chunk_stats = lambda params, batch: {name: np.repeat(value[None], seeds, axis=0)
                                               for name, value in model(chunk).items()}
    judge.most_errors = lambda batch: 8.0 * task.max_steps()
    return judge


def test_zero_failures_in_2995_sequences_certify_under_one_in_a_thousand_at_95_percent():
    criterion = certify.FailureRate(max_rate=1e-3)
    n = criterion.plan_size(0.05)
    assert n == 2995
    assert certify.rate_upper_bound(0, n, 0.05) < 1e-3 <= certify.rate_upper_bound(0, n - 1, 0.05)
    # With failures allowed, the plan is the smallest n whose binomial test has level 0.05.
    two = certify.FailureRate(max_rate=1e-3, allowed_failures=2)
    m = two.plan_size(0.05)
    assert scipy_stats.binom.cdf(2, m, 1e-3) <= 0.05 < scipy_stats.binom.cdf(2, m - 1, 1e-3)
    assert certify.rate_upper_bound(2, m, 0.05) < 1e-3


@pytest.mark.parametrize("rate, expected", [(1 / 500, "refused"), (1 / 1000, "refused"), (1 / 5000, "granted")])
def test_the_certificate_is_granted_in_the_share_of_trials_the_binomial_says(rate, expected):
    """A stand-in failing 1 in 500 or 1 in 1,000 is refused at 95 % confidence; 1 in 5,000 is granted
    in (1 - 1/5000)^2995 = 55 % of trials, as the exact test says."""
    task = tasks.get("copy", max_length=3)
    trials, granted = 300, 0
    for trial in range(trials):
        judge = stand_in_judge(BernoulliModel(rate, trial), task)
        verdict = judge.certify(None, [task.hardest()], [1], np.random.default_rng(0), screen=False,
                                alphas=[0.05])[0]
        granted += verdict.solved
    probability = (1 - rate) ** 2995
    assert probability <= 0.05 if expected == "refused" else probability > 0.5
    # granted / trials is binomial(trials, probability): within 4 standard deviations of it
    spread = 4 * math.sqrt(probability * (1 - probability) / trials) + 1 / trials
    assert abs(granted / trials - probability) <= spread, (granted, probability)
    if expected == "refused":
        assert granted / trials <= 0.05 + spread


def test_a_run_that_checks_again_and_again_stays_within_its_error_budget():
    """Attempt m is tested at alpha / (m (m + 1)): a model just at the limit rate, checked 100,000
    times, passes some check with probability under 5 % (checking at 5 % each time: almost surely)."""
    criterion = certify.FailureRate(max_rate=1e-3)
    ever = 1 - math.prod(1 - (1 - 1e-3) ** criterion.plan_size(certify.attempt_alpha(m)) for m in range(1, 100_001))
    assert ever <= 0.05
    naive = 1 - (1 - (1 - 1e-3) ** criterion.plan_size(0.05)) ** 100
    assert naive > 0.99
    assert certify.attempt_alpha(1) == 0.025 and sum(certify.attempt_alpha(m) for m in range(1, 10_000)) < 0.05
    with pytest.raises(ValueError, match="counted from 1"):
        certify.attempt_alpha(0)


def test_a_race_of_seeds_at_the_limit_rate_certifies_a_wrong_winner_at_most_at_the_stated_error():
    """In a race the run's model is whichever seed is certified first, so a wrong winner needs only one of
    the K seeds to pass some check: with each seed held to (1 - confidence) / K that stays under 5 % for
    8 seeds each checked 10,000 times; with the whole 5 % each, it would not."""
    from ntm.training import TrainSettings

    criterion, checks = certify.FailureRate(max_rate=1e-3), range(1, 10_001)

    def ever_passes(error: float) -> float:  # one seed failing exactly 1 in 1,000, at every attempt
        return 1 - math.prod(1 - (1 - 1e-3) ** criterion.plan_size(certify.attempt_alpha(m, error)) for m in checks)

    race = TrainSettings(task="copy", race=True)
    assert 1 - (1 - ever_passes(race.seed_error(8))) ** 8 <= 0.05
    assert 1 - (1 - ever_passes(race.replace(race=False).seed_error(8))) ** 8 > 0.2


def test_the_judge_draws_only_while_undecided_and_stops_at_its_plan():
    task = tasks.get("copy", max_length=3)
    perfect = stand_in_judge(BernoulliModel(0.0, 0), task, chunk=500)
    verdict = perfect.certify(None, [task.hardest()], [1], np.random.default_rng(0), screen=False)[0]
    plan = certify.FailureRate().plan_size(certify.attempt_alpha(1))
    assert plan == math.ceil(math.log(0.025) / math.log(1 - 1e-3))
    assert verdict.solved and verdict.rows[0]["sequences"] == plan  # the cap, not a chunk more
    broken = stand_in_judge(BernoulliModel(1.0, 0), task, chunk=500)
    verdict = broken.certify(None, [task.hardest(), task.eval_difficulty(2)], [1], np.random.default_rng(0),
                             screen=False)[0]
    assert not verdict.solved and verdict.sequences == 500 and len(verdict.rows) == 1  # refused at once
    figures = broken.certify(None, [task.hardest(), task.eval_difficulty(2)], [1], np.random.default_rng(0),
                             screen=False, min_sequences=1000)[0]
    assert [row["sequences"] for row in figures.rows] == [1000, 1000]  # a table's rows: figures for each
    screened_out = broken.certify(None, [task.hardest()], [3], np.random.default_rng(0))[0]
    assert not screened_out.screened and screened_out.attempt is None and screened_out.sequences == 500


def test_mean_criteria_are_certified_by_a_one_sided_bound_at_the_stated_level():
    """Normal excess costs whose true mean is the threshold: granted in at most 5 % of trials."""
    criterion = certify.MeanBelow(threshold=2.0, metric="excess_cost", sequences=1000)
    rng = np.random.default_rng(0)
    grants = [criterion.granted(rng.normal(2.0, 3.0, 1000), 0.05) for _ in range(2000)]
    assert 0.03 <= np.mean(grants) <= 0.07
    assert criterion.granted(rng.normal(1.0, 3.0, 1000), 0.05)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 40), min_size=1, max_size=400), st.integers(1, 200))
def test_no_interval_goes_below_zero_and_each_holds_its_estimate(counts, most):
    values = np.asarray(counts, np.float64)
    low, high = certify.mean_interval(values, most=max(most, values.max()))
    assert 0 <= low <= values.mean() + 1e-12 and values.mean() - 1e-12 <= high
    failures = int(np.count_nonzero(values))
    rate_low, rate_high = certify.rate_interval(failures, len(values))
    assert 0 <= rate_low <= failures / len(values) <= rate_high <= 1


def test_zero_failures_do_not_prove_a_zero_rate():
    low, high = certify.mean_interval(np.zeros(1000), most=160)
    assert low == 0 and high == pytest.approx(certify.rate_interval(0, 1000)[1] * 160) and high > 0.5
    assert certify.rate_interval(0, 1000)[1] == pytest.approx(1 - 0.025 ** (1 / 1000))


@pytest.mark.parametrize("failures", [0, 3, 40, 600])
def test_the_fast_bootstrap_draws_from_the_same_distribution_as_resampling_every_index(failures):
    rng = np.random.default_rng(failures)
    values = np.zeros(2000)
    values[:failures] = rng.integers(1, 60, failures)
    fast = certify.bootstrap_means(values, 4000, np.random.default_rng(1))
    plain = values[np.random.default_rng(2).integers(0, len(values), size=(4000, len(values)))].mean(axis=1)
    assert fast.mean() == pytest.approx(plain.mean(), abs=4 * plain.std() / 60 + 1e-12)
    assert fast.std() == pytest.approx(plain.std(), rel=0.1, abs=1e-12)
    assert np.quantile(fast, 0.975) == pytest.approx(np.quantile(plain, 0.975), rel=0.1, abs=1e-12)


def test_a_seed_over_its_judging_share_gets_the_screen_only():
    """Judging is kept a share of training: a passed screen is deferred, not certified, until training
    has caught up; a deferred check spends no attempt."""
    task = tasks.get("copy", max_length=3)
    perfect = stand_in_judge(BernoulliModel(0.0, 0), task, chunk=100, seeds=2)
    verdicts = perfect.certify(None, [task.hardest()], [4, 4], np.random.default_rng(0), may_certify=[False, True])
    assert verdicts[0].deferred and not verdicts[0].solved and verdicts[0].attempt is None
    assert verdicts[0].sequences == 100
    assert not verdicts[1].deferred and verdicts[1].solved and verdicts[1].attempt == 4
    assert verdicts[1].sequences == certify.FailureRate().plan_size(certify.attempt_alpha(4))
