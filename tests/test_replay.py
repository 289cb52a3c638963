"""Tests of replaying failed held-out sequences (`--replay-share`): the buffer keeps the newest, mixes rows in
at the stated share without touching the data stream while empty, round-trips through a checkpoint, the
judge hands over exactly the sequences it failed, and a run with replay resumes exactly."""

import numpy as np
import pytest
from rich.console import Console

from ntm import tasks
from ntm.training import TrainSettings, train
from ntm.training.judge import Judge
from ntm.training.replay import PER_CHECK, ReplayBuffer, failed_rows

QUIET = Console(stderr=True, quiet=True)
COPY = tasks.get("copy", max_length=3)


def sequences(count, seed):
    return COPY.sample(np.random.default_rng(seed), count, pad_to=COPY.max_steps())


def test_the_buffer_keeps_the_newest_sequences_and_round_trips_through_json():
    buffer = ReplayBuffer(capacity=5)
    first, second = sequences(4, 1), sequences(3, 2)
    buffer.add(first)
    buffer.add(None)
    buffer.add(second)
    assert len(buffer) == 5  # the oldest two of `first` dropped
    np.testing.assert_array_equal(buffer.sequences.inputs[:2], first.inputs[2:])
    np.testing.assert_array_equal(buffer.sequences.inputs[2:], second.inputs)
    again = ReplayBuffer()
    again.load_state_dict(buffer.state_dict())
    assert again.capacity == 5
    for mine, theirs in zip(buffer.sequences, again.sequences):
        np.testing.assert_array_equal(mine, theirs)
        assert mine.dtype == theirs.dtype
    again.load_state_dict(None)
    assert len(again) == 0
    with pytest.raises(ValueError, match="do not fit"):
        buffer.add(tasks.get("copy", max_length=4).sample(np.random.default_rng(0), 1))


def test_mixing_replaces_rows_at_the_share_and_leaves_the_stream_alone_while_empty():
    batch, rng = sequences(8, 3), np.random.default_rng(11)
    state = rng.bit_generator.state
    assert ReplayBuffer().mix_into(batch, 0.5, rng) is batch and rng.bit_generator.state == state

    buffer = ReplayBuffer()
    kept = sequences(2, 4)
    buffer.add(kept)
    everything = buffer.mix_into(batch, 0.999999, rng)
    for row in range(8):  # every row is one of the two buffered sequences, whole
        assert any(np.array_equal(everything.inputs[row], kept.inputs[j])
                   and np.array_equal(everything.mask[row], kept.mask[j])
                   and everything.lengths[row] == kept.lengths[j] for j in range(2))
    np.testing.assert_array_equal(batch.inputs, sequences(8, 3).inputs)  # the drawn batch is not changed in place

    big = sequences(4000, 5)
    mixed = buffer.mix_into(big, 0.25, rng)
    replaced = np.mean([not np.array_equal(mixed.inputs[i], big.inputs[i]) for i in range(4000)])
    assert 0.22 < replaced < 0.28


def test_failed_rows_takes_the_first_failures_only():
    batch = sequences(10, 6)
    failing = np.zeros(10, bool)
    failing[[1, 4, 7]] = True
    picked = failed_rows(batch, failing, most=2)
    np.testing.assert_array_equal(picked.inputs, batch.inputs[[1, 4]])
    assert failed_rows(batch, np.zeros(10, bool)) is None


def test_the_judge_hands_over_the_sequences_it_failed():
    """A stand-in model that fails the sequences of length 3 (and only those): the verdict's failed
    sequences are sequences of length 3, at most PER_CHECK of them, and none where nothing failed."""
    judge = Judge(COPY, None, chunk=50, pad_to=COPY.max_steps())
    judge.chunk_stats = lambda params, batch: {
        "bit_errors": np.where(np.asarray(batch.lengths) == 7, 5.0, 0.0)[None, :],  # 2 * 3 + 1 steps
        "cost": np.zeros((1, len(batch.lengths)))}
    verdict = judge.certify(None, [COPY.hardest()], [1], np.random.default_rng(2))[0]
    assert not verdict.solved and verdict.failed is not None
    assert 1 <= len(verdict.failed.lengths) <= PER_CHECK and set(verdict.failed.lengths) == {7}
    judge.chunk_stats = lambda params, batch: {"bit_errors": np.zeros((1, len(batch.lengths))),
                                               "cost": np.zeros((1, len(batch.lengths)))}
    assert judge.certify(None, [COPY.hardest()], [1], np.random.default_rng(2))[0].failed is None


def replay_settings(**changes):
    values = dict(task="copy", task_options={"max_length": 3},
                  model_options={"memory_slots": 16, "memory_width": 8, "controller_units": 32}, batch_size=8,
                  steps=30, until_solved=False, log_every=5, checkpoint_every=10, judge_sequences=100,
                  screen_sequences=100, eval_every=10, replay_share=0.5)
    values.update(changes)
    return TrainSettings(**values)


def test_a_run_that_replays_resumes_exactly_and_trains_on_what_it_failed(tmp_path, monkeypatch):
    """Killed after its checkpoint at step 20 (the newer one lost), the run resumes with the buffer it had
    then, and ends where the uninterrupted run ended. (The tiny model never passes a screen in 30 steps,
    so it is taken to be in its tail from the start.)"""
    import shutil

    from ntm.training.seed import Seed

    monkeypatch.setattr(Seed, "in_tail", property(lambda seed: True))

    import jax
    from flax import nnx

    from ntm.evaluate import load_run

    def params(run_dir):
        return [np.asarray(leaf) for leaf in jax.tree.leaves(nnx.state(load_run(run_dir).model, nnx.Param))]

    train(replay_settings(), run_dir=tmp_path / "straight", console=QUIET, progress=False)
    shutil.copytree(tmp_path / "straight", tmp_path / "killed")
    newest = [path for path in (tmp_path / "killed").rglob("30") if path.is_dir()]
    assert len(newest) == 1
    shutil.rmtree(newest[0])
    result = train(run_dir=tmp_path / "killed", resume=True, budget={"steps": 30}, console=QUIET, progress=False)
    assert result.step == 30
    for a, b in zip(params(tmp_path / "straight"), params(tmp_path / "killed")):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # the untrained model failed its checks, so the buffer filled and the batches changed
    train(replay_settings(replay_share=0.0), run_dir=tmp_path / "plain", console=QUIET, progress=False)
    assert any(not np.allclose(a, b) for a, b in zip(params(tmp_path / "straight"), params(tmp_path / "plain")))


def test_replay_share_outside_zero_to_one_is_refused():
    for bad in (-0.1, 1.0, True, "half"):
        with pytest.raises(ValueError, match="replay_share must be in"):
            replay_settings(replay_share=bad)


def test_nothing_is_replayed_before_the_first_passed_screen(tmp_path):
    """An untrained model fails every check but has passed no screen: the run trains as without replay."""
    import jax
    from flax import nnx

    from ntm.evaluate import load_run

    def params(run_dir):
        return [np.asarray(leaf) for leaf in jax.tree.leaves(nnx.state(load_run(run_dir).model, nnx.Param))]

    train(replay_settings(steps=20), run_dir=tmp_path / "replay", console=QUIET, progress=False)
    train(replay_settings(steps=20, replay_share=0.0), run_dir=tmp_path / "plain", console=QUIET, progress=False)
    for a, b in zip(params(tmp_path / "replay"), params(tmp_path / "plain")):
        np.testing.assert_array_equal(a, b)
