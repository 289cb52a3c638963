"""One seed of a training run: everything the loop keeps per seed, in one object.

A `Seed` owns its run directory's checkpoints and metrics log, its `Progress` (counters, and the state
of its data stream and curriculum, as a checkpoint stores them), its curriculum, its training data
stream, the step statistics since its last log row, and its last held-out verdict. The stacked
parameters and optimizer state of all K seeds stay together in the loop's `TrainState` (one compiled
step trains them); a Seed reads and writes its slice k of it. The learning rate lives in one place,
the optimizer state (`TrainState.learning_rate`), which the non-finite policy lowers.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable

import numpy as np
from flax import nnx
from rich.console import Console

from ntm import tasks
from ntm.training import curriculum as curricula
from ntm.training.judge import Verdict
from ntm.training.logs import MetricsLog
from ntm.training.replay import ReplayBuffer
from ntm.training.records import (
    Diverged,
    HeldOut,
    LevelUp,
    NanRestore,
    NonFinite,
    Outrun,
    Solved,
    StepStats,
    Training,
    window_means,
)
from ntm.training.runs import RunDirectory
from ntm.training.settings import TrainSettings
from ntm.training.state import Progress, TrainState, unstack

# The fraction of the learning rate kept each time repeated non-finite steps force a restore.
NAN_LR_FACTOR = 0.5


@dataclasses.dataclass
class SeedResult:
    seed: int
    run_dir: Path
    step: int
    sequences: int
    wall_time: float
    solved: bool
    solved_step: int | None
    solved_sequences: int | None
    solved_time: float | None
    diverged: bool
    outrun: bool  # stopped because another seed of its race was certified first
    level: int
    last: dict[str, float]  # window means of the last logged training steps
    verdict: Verdict | None  # the last held-out check


class Seed:
    """Seed k of a run: its data, curriculum, progress, checkpoints and log (see the module docstring)."""

    def __init__(self, k: int, settings: TrainSettings, task, directory: RunDirectory, identity: dict,
                 console: Console, on_held_out: Callable[[HeldOut, Progress], None] | None = None):
        self.k, self.settings, self.task, self.directory = k, settings, task, directory
        self.console, self.on_held_out = console, on_held_out
        self.curriculum = curricula.build(settings.curriculum, task)
        self.data = np.random.default_rng(settings.seed)
        self.replay = ReplayBuffer()  # failed held-out sequences, mixed into batches with --replay-share
        self.progress = Progress(seed=settings.seed, data_rng=self.data.bit_generator.state,
                                 curriculum=self.curriculum.state_dict())
        self.checkpoints = directory.checkpoints(keep=settings.keep, identity=identity)
        self.log: MetricsLog | None = None
        self.level = self.curriculum.judged_level  # of the batch being trained on
        self.window: list[StepStats] = []  # the steps since the last log row
        self.last: dict[str, float] = {}  # their means at the last log row
        self.verdict: Verdict | None = None
        self.check_due = False  # a held-out check is due after this step
        self.final_due = False  # the budget ended unsolved: a last, unscreened certification is due
        self.saved_at_check = False  # this step's due checkpoint was saved before its check was reported
        self.started = time.perf_counter()

    # ------------------------------------------------------------------ opening, saving, restoring

    def open(self, state: TrainState, resume: bool) -> TrainState:
        """Restore the newest checkpoint (resume) or save the first one; open the log; start the clock."""
        if resume:
            state = self.restore(state)
        self.log = self.directory.open_log()
        if not resume:
            self.save(state)
        self.started = time.perf_counter() - self.progress.wall_time
        return state

    def save(self, state: TrainState) -> None:
        self.progress.data_rng = self.data.bit_generator.state
        self.progress.curriculum = self.curriculum.state_dict()
        self.progress.replay = self.replay.state_dict()
        # "lr" is written beside the progress for whoever reads the checkpoint; training reads it from opt_state.
        self.checkpoints.save(self.progress.step, *state.seed(self.k),
                              {**self.progress.to_dict(), "lr": state.learning_rate(self.k)})

    @property
    def save_due(self) -> bool:
        return self.progress.step % self.settings.checkpoint_every == 0 or not self.active

    def save_if_due(self, state: TrainState) -> None:
        if self.save_due and not self.saved_at_check:
            self.save(state)

    def save_unless_saved(self, state: TrainState) -> None:
        if self.progress.step not in self.checkpoints.steps():
            self.save(state)

    def load_checkpoint(self, state: TrainState) -> tuple[int, TrainState, dict]:
        """The newest readable checkpoint put into seed k's slice: (its step, the state, its progress)."""
        template = unstack(state.params, self.k)
        step, params, opt_state, saved = self.checkpoints.restore(nnx.to_pure_dict(template),
                                                                  unstack(state.opt_state, self.k))
        nnx.replace_by_pure_dict(template, params)
        return step, state.with_seed(self.k, template, opt_state), saved

    def restore(self, state: TrainState) -> TrainState:
        """Resume: the newest checkpoint, its progress, data stream and curriculum; later metrics dropped."""
        step, state, saved = self.load_checkpoint(state)
        self.progress = Progress.from_dict(saved)
        self.data.bit_generator.state = self.progress.data_rng
        self.curriculum.load_state_dict(self.progress.curriculum)
        self.replay.load_state_dict(self.progress.replay)
        self.directory.truncate_records(step)
        self.console.print(f"resumed {self.directory.path} at step {step} ({saved['sequences']} sequences)")
        return state

    def close(self) -> None:
        if self.log is not None:
            self.log.close()
        self.checkpoints.close()

    # ------------------------------------------------------------------ one step

    @property
    def active(self) -> bool:
        p, settings = self.progress, self.settings
        out_of_time = settings.minutes is not None and p.wall_time >= 60 * settings.minutes
        return (p.step < settings.budget_steps() and not out_of_time and not p.diverged and not p.outrun
                and not (p.solved and settings.until_solved))

    @property
    def ended_unsolved(self) -> bool:
        """Whether this seed stopped training without a certificate and on its own (budget or time spent, not
        diverged, not outrun in a race): its verdict then comes from a last, unscreened certification."""
        p = self.progress
        return not self.active and not p.solved and not p.diverged and not p.outrun

    def outrun_by(self, winner: int) -> None:
        """Stop: seed `winner` of this race was certified solved first."""
        self.progress.outrun = True
        self.final_due = False
        self.log.write(Outrun(self.progress.step, winner=winner))

    def next_batch(self, pad_to: int) -> tasks.Batch:
        """A batch at the difficulty the curriculum chooses; all padding for a seed that no longer trains
        (its update is discarded anyway)."""
        size = self.settings.batch_size
        if not self.active:
            self.level = self.curriculum.judged_level
            return tasks.Batch(np.zeros((size, pad_to, self.task.input_size), np.float32),
                               np.zeros((size, pad_to, self.task.output_size), np.float32),
                               np.zeros((size, pad_to), np.float32), np.zeros(size, np.int32))
        self.level = self.curriculum.choose(self.data)
        batch = self.task.sample(self.data, size, pad_to=pad_to, **self.curriculum.levels[self.level])
        return self.replay.mix_into(batch, self.settings.replay_share, self.data)

    def after_step(self, state: TrainState, stats: StepStats, now: float, seq_per_s: float) -> TrainState:
        """Count the step, feed the curriculum, apply the non-finite policy, log; say if a check is due."""
        p, settings = self.progress, self.settings
        self.saved_at_check = False
        p.step += 1
        p.sequences += settings.batch_size
        p.wall_time = now - self.started
        self.curriculum.observe(self.level, stats)
        self.window.append(stats)
        if not stats.finite:
            p.skipped += 1
            p.skipped_in_a_row += 1
            self.log.write(NonFinite(p.step, skipped=p.skipped))
        else:
            p.skipped_in_a_row = 0
        if p.skipped_in_a_row >= settings.nan_patience:
            state = self.recover(state)
        if p.step % settings.log_every == 0 or not self.active:
            self.last, self.window = window_means(self.window), []
            self.log.write(Training(p.step, p.sequences, **self.last, level=self.curriculum.level,
                                    lr=state.step_size(self.k), skipped=p.skipped, time=p.wall_time,
                                    seq_per_s=seq_per_s))
        self.check_due = p.step % settings.eval_every == 0 and not p.diverged
        self.final_due = self.ended_unsolved
        return state

    def recover(self, state: TrainState) -> TrainState:
        """The non-finite policy's restore: the last checkpoint, at a lower learning rate; or diverged."""
        p, settings = self.progress, self.settings
        p.skipped_in_a_row = 0
        if p.restores >= settings.max_restores:
            p.diverged = True
            self.log.write(Diverged(p.step, skipped=p.skipped, restores=p.restores))
            self.console.print(f"[yellow]seed {p.seed}: still non-finite after {p.restores} restores; this seed "
                               f"stops (its checkpoints are kept)")
            return state
        lr = state.learning_rate(self.k) * NAN_LR_FACTOR
        restored_step, state, _ = self.load_checkpoint(state)
        state = state.with_learning_rate(self.k, lr)
        p.restores += 1
        self.console.print(f"[yellow]seed {p.seed}, step {p.step}: {settings.nan_patience} non-finite steps in a "
                           f"row; restored the checkpoint of step {restored_step} and lowered the learning rate "
                           f"to {lr:.3g}")
        self.log.write(NanRestore(p.step, restored_step=restored_step, lr=state.learning_rate(self.k)))
        return state

    @property
    def may_certify(self) -> bool:
        """Whether a passed screen may go on to a certification attempt: only while the held-out sequences
        judged so far are within `judge_share` of the training sequences, so that attempts refused deep
        into their count (a model failing 1 sequence in a few thousand) cannot crowd out training."""
        return self.progress.judged_sequences <= self.settings.judge_share * self.progress.sequences

    @property
    def in_tail(self) -> bool:
        """Whether this seed has passed a screen (made a certification attempt): from then on its failures are
        the rare ones worth replaying; before, replaying a plateau's failures only narrows its data."""
        return self.progress.certify_attempts > 0

    def held_out(self, verdict: Verdict, final: bool = False, state: TrainState | None = None) -> None:
        """Log a held-out verdict (`final`: the last, unscreened check of a budget); count a certification
        attempt; move the curriculum on or mark the seed solved when the certificate is granted. With
        `on_held_out`, a checkpoint due at this step is saved (from `state`) before the check is reported,
        so that whoever reads the report (a sweep's population-based training) finds the state it is of."""
        p, settings, plan = self.progress, self.settings, self.curriculum
        p.wall_time = time.perf_counter() - self.started  # the check's own time counts as training time
        self.verdict = verdict
        if verdict.attempt is not None:
            p.certify_attempts = verdict.attempt
        if settings.replay_share > 0 and self.in_tail:
            self.replay.add(verdict.failed)
        p.judged_sequences += verdict.sequences
        check = HeldOut(p.step, sequences=p.sequences, level=plan.judged_level, time=p.wall_time,
                        verdict={**verdict.row(), "final": final})
        self.log.write(check)
        passed = verdict.solved
        p.passes_in_a_row = p.passes_in_a_row + 1 if passed else 0
        if p.passes_in_a_row >= settings.judge_passes and not p.solved:
            p.passes_in_a_row = 0
            if not plan.passed():
                self.log.write(LevelUp(p.step, level=plan.level, sequences=p.sequences,
                                       difficulty=plan.levels[plan.level]))
            else:
                p.solved_step, p.solved_sequences = p.step, p.sequences
                p.solved_time = p.wall_time
                self.log.write(Solved(p.step, sequences=p.sequences, time=p.solved_time))
        # A time budget can run out during the check itself: the last, unscreened check then follows at once.
        self.final_due = not final and self.ended_unsolved
        if self.on_held_out is not None:
            if state is not None and self.save_due:
                self.save(state)
                self.saved_at_check = True
            self.on_held_out(check, p)

    def result(self) -> SeedResult:
        p = self.progress
        return SeedResult(p.seed, self.directory.path, p.step, p.sequences, p.wall_time, p.solved, p.solved_step,
                          p.solved_sequences, p.solved_time, p.diverged, p.outrun, self.curriculum.level, self.last,
                          self.verdict)
